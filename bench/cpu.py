"""CPU benchmarks through the workbench's local backend, each against bare ``isaaclab train`` in the same run.

Runs alternate between the two sides (A B, B A, ...) so that load from other work on the machine falls on both.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable
from pathlib import Path

from bench.jobs import run_bare, run_workbench, training_spec
from bench.watch import RunTiming


def _summary(t: RunTiming) -> dict:
    return {"first_iteration_s": _r(t.first_iteration_s), "solved_s": _r(t.solved_s),
            "solved_iteration": t.solved_iteration, "wall_s": _r(t.wall_s), "returncode": t.returncode,
            "iterations": len(t.iterations), "median_steps_per_s": t.median_steps_per_second()}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


Side = Callable[[int], RunTiming]
"""One side of a comparison: the n-th run."""


def _pairs(pairs: int, workbench: Side, bare: Side) -> list[dict]:
    """``pairs`` alternating (workbench, bare) measurements."""
    out = []
    for n in range(pairs):
        order = [("workbench", workbench), ("bare", bare)]
        if n % 2:
            order.reverse()
        pair = {name: _summary(fn(n)) for name, fn in order}
        pair["order"] = [name for name, _ in order]
        out.append(pair)
        print(f"[bench] pair {n}: {pair}", flush=True)
    return out


def overhead(work: Path, pairs: int = 2, num_envs: int = 64, iterations: int = 25, concurrent: bool = True) -> dict:
    """(a) Training throughput through the workbench over bare ``isaaclab train``, warm kernel cache.

    ``concurrent``: both sides of a pair train at the same time, so they see the same load (use it on a shared
    machine whose load drifts within a pair); otherwise they alternate.
    """
    home = work / "home-warm"
    spec = training_spec(num_envs, iterations)
    run_workbench(training_spec(16, 1), home, stop_after_first_iteration=True)  # fill the kernel cache
    wb = lambda n: run_workbench(spec, home)  # noqa: E731
    bare = lambda n: run_bare(spec, home, work / f"bare-{n}")  # noqa: E731
    results = [_together(wb, bare, n) for n in range(pairs)] if concurrent else _pairs(pairs, wb, bare)
    ratios = [p["workbench"]["median_steps_per_s"] / p["bare"]["median_steps_per_s"] for p in results
              if p["workbench"]["median_steps_per_s"] and p["bare"]["median_steps_per_s"]]
    walls = [p["bare"]["wall_s"] / p["workbench"]["wall_s"] for p in results]
    return {"num_envs": num_envs, "iterations": iterations, "concurrent": concurrent, "pairs": results,
            "throughput_ratio_median": _median(ratios), "throughput_ratios": [round(r, 3) for r in ratios],
            "wall_ratio_bare_over_workbench_median": _median(walls)}


def startup(work: Path, cold_pairs: int = 2, warm_pairs: int = 3, num_envs: int = 16) -> dict:
    """(b) Submit to first iteration, empty and filled kernel cache, workbench and bare."""
    spec = training_spec(num_envs, 5)

    def fresh(name: str) -> Path:
        home = work / name
        shutil.rmtree(home, ignore_errors=True)
        return home

    cold = _pairs(cold_pairs, lambda n: run_workbench(spec, fresh(f"cold-wb-{n}"), stop_after_first_iteration=True),
                  lambda n: run_bare(spec, fresh(f"cold-bare-{n}"), work / f"bare-cold-{n}",
                                     stop_after_first_iteration=True))
    home = work / "cold-wb-0"
    warm = _pairs(warm_pairs, lambda n: run_workbench(spec, home, stop_after_first_iteration=True),
                  lambda n: run_bare(spec, home, work / f"bare-warm-{n}", stop_after_first_iteration=True))

    def side(runs: list[dict], name: str) -> float | None:
        return _median([p[name]["first_iteration_s"] for p in runs])

    return {"num_envs": num_envs, "cold": cold, "warm": warm,
            "first_iteration_s": {"cold": side(cold, "workbench"), "warm": side(warm, "workbench")},
            "bare_first_iteration_s": {"cold": side(cold, "bare"), "warm": side(warm, "bare")}}


def solved(work: Path, pairs: int = 1, num_envs: int = 256, max_iterations: int = 400, concurrent: bool = True) -> dict:
    """(c) Submit to a solved Isaac-Cartpole-Direct policy on CPU (mean episode length >= 95% of 300).

    ``concurrent``: the workbench and the bare run train at the same time (one pair shares the machine's load
    exactly, at the price of each slowing the other); otherwise they alternate.
    """
    home = work / "home-warm"
    spec = training_spec(num_envs, max_iterations)
    run_workbench(training_spec(16, 1), home, stop_after_first_iteration=True)  # fill the kernel cache
    wb = lambda n: run_workbench(spec, home, stop_when_solved=True, timeout_s=3000)  # noqa: E731
    bare = lambda n: run_bare(spec, home, work / f"bare-solved-{n}", stop_when_solved=True, timeout_s=3000)  # noqa: E731
    if concurrent:
        results = [_together(wb, bare, n) for n in range(pairs)]
    else:
        results = _pairs(pairs, wb, bare)
    return {"num_envs": num_envs, "concurrent": concurrent, "pairs": results,
            "time_to_solved_s": _median([p["workbench"]["solved_s"] for p in results]),
            "bare_time_to_solved_s": _median([p["bare"]["solved_s"] for p in results])}


def _together(workbench: Side, bare: Side, n: int) -> dict:
    """Run both sides at once; their summaries."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        futures = {"workbench": pool.submit(workbench, n), "bare": pool.submit(bare, n)}
        pair = {name: _summary(f.result()) for name, f in futures.items()}
    pair["order"] = ["together"]
    print(f"[bench] pair {n}: {pair}", flush=True)
    return pair
