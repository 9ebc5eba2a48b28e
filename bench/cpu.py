"""CPU benchmarks through the workbench's local backend, each against bare ``isaaclab train`` in the same run.

Runs rotate between the sides (A B, B A, ...) so that load from other work on the machine falls on all of them.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable
from pathlib import Path

from bench.jobs import run_bare, run_workbench, start_warm_process, stop_warm_process, training_spec
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


def _rounds(rounds: int, sides: dict[str, Side]) -> list[dict]:
    """``rounds`` measurements of every side, the order rotating by one each round (A B C, B C A, ...)."""
    names = list(sides)
    out = []
    for n in range(rounds):
        order = names[n % len(names):] + names[:n % len(names)]
        result = {name: _summary(sides[name](n)) for name in order}
        result["order"] = order
        out.append(result)
        print(f"[bench] round {n}: {result}", flush=True)
    return out


def overhead(work: Path, pairs: int = 2, num_envs: int = 64, iterations: int = 25, concurrent: bool = False,
             home: Path | None = None) -> dict:
    """(a) Training throughput through the workbench over bare ``isaaclab train``, warm kernel cache.

    ``concurrent``: both sides of a pair train at the same time, so they see the same load (use it on a shared
    machine whose load drifts within a pair); otherwise they alternate. ``home``: a workbench home whose caches are
    filled already (default: a new one, filled first). The workbench side forks from the home's warm process.
    """
    home = home or _filled_home(work)
    spec = training_spec(num_envs, iterations)
    results = _against_bare(home, pairs, concurrent, lambda n: run_workbench(spec, home),
                            lambda n: run_bare(spec, home, work / f"bare-{n}"))
    ratios = [p["workbench"]["median_steps_per_s"] / p["bare"]["median_steps_per_s"] for p in results
              if p["workbench"]["median_steps_per_s"] and p["bare"]["median_steps_per_s"]]
    walls = [p["bare"]["wall_s"] / p["workbench"]["wall_s"] for p in results]
    return {"num_envs": num_envs, "iterations": iterations, "concurrent": concurrent, "pairs": results,
            "throughput_ratio_median": _median(ratios), "throughput_ratios": [round(r, 3) for r in ratios],
            "wall_ratio_bare_over_workbench_median": _median(walls)}


def startup(work: Path, cold_pairs: int = 2, warm_rounds: int = 3, num_envs: int = 16) -> dict:
    """(b) Submit to first iteration, empty and filled caches.

    Cold: a new workbench home (Warp and CUDA caches empty, no warm process) against bare with an empty cache.
    Warm, in rotating order: the job forked from the warm process (the default), the job as a fresh process with
    the caches filled (what a new container with its caches on EFS sees), and bare ``isaaclab train``.
    Without cold pairs, one workbench job fills the caches first.
    """
    spec = training_spec(num_envs, 5)

    def fresh(name: str) -> Path:
        home = work / name
        shutil.rmtree(home, ignore_errors=True)
        return home

    cold = _rounds(cold_pairs, {
        "workbench": lambda n: run_workbench(spec, fresh(f"cold-wb-{n}"), stop_after_first_iteration=True,
                                             warm_start=False),
        "bare": lambda n: run_bare(spec, fresh(f"cold-bare-{n}"), work / f"bare-cold-{n}",
                                   stop_after_first_iteration=True),
    })
    home = work / "cold-wb-0"
    fill = None
    if not cold:
        fill = _summary(run_workbench(spec, fresh("cold-wb-0"), stop_after_first_iteration=True, warm_start=False))
    imports_s = start_warm_process(home)
    try:
        warm = _rounds(warm_rounds, {
            "warm_process": lambda n: run_workbench(spec, home, stop_after_first_iteration=True),
            "fresh_process": lambda n: run_workbench(spec, home, stop_after_first_iteration=True, warm_start=False),
            "bare": lambda n: run_bare(spec, home, work / f"bare-warm-{n}", stop_after_first_iteration=True),
        })
    finally:
        stop_warm_process(home)

    def side(runs: list[dict], name: str) -> float | None:
        return _median([r[name]["first_iteration_s"] for r in runs])

    return {"num_envs": num_envs, "cold": cold, "cold_fill": fill, "warm": warm, "warm_process_imports_s": imports_s,
            "first_iteration_s": {"cold": side(cold, "workbench") if cold else fill["first_iteration_s"],
                                  "warm": side(warm, "warm_process"),
                                  "warm_fresh_process": side(warm, "fresh_process")},
            "bare_first_iteration_s": {"cold": side(cold, "bare"), "warm": side(warm, "bare")}}


def solved(work: Path, pairs: int = 1, num_envs: int = 256, max_iterations: int = 400, concurrent: bool = False) -> dict:
    """(c) Submit to a solved Isaac-Cartpole-Direct policy on CPU (mean episode length >= 95% of 300).

    ``concurrent``: the workbench and the bare run train at the same time (one pair shares the machine's load
    exactly, at the price of each slowing the other); otherwise they alternate.
    """
    home = _filled_home(work)
    spec = training_spec(num_envs, max_iterations)
    results = _against_bare(
        home, pairs, concurrent, lambda n: run_workbench(spec, home, stop_when_solved=True, timeout_s=3000),
        lambda n: run_bare(spec, home, work / f"bare-solved-{n}", stop_when_solved=True, timeout_s=3000))
    return {"num_envs": num_envs, "concurrent": concurrent, "pairs": results,
            "time_to_solved_s": _median([p["workbench"]["solved_s"] for p in results]),
            "bare_time_to_solved_s": _median([p["bare"]["solved_s"] for p in results])}


def _filled_home(work: Path) -> Path:
    """A workbench home whose kernel caches one tiny training has filled."""
    home = work / "home-warm"
    run_workbench(training_spec(16, 1), home, stop_after_first_iteration=True)
    return home


def _against_bare(home: Path, pairs: int, concurrent: bool, workbench: Side, bare: Side) -> list[dict]:
    """``pairs`` workbench/bare comparisons, together or alternating; the workbench side forks from ``home``'s warm
    process (started here, stopped after)."""
    start_warm_process(home)
    try:
        if concurrent:
            return [_together(workbench, bare, n) for n in range(pairs)]
        return _rounds(pairs, {"workbench": workbench, "bare": bare})
    finally:
        stop_warm_process(home)


def _together(workbench: Side, bare: Side, n: int) -> dict:
    """Run both sides at once; their summaries."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        futures = {"workbench": pool.submit(workbench, n), "bare": pool.submit(bare, n)}
        pair = {name: _summary(f.result()) for name, f in futures.items()}
    pair["order"] = ["together"]
    print(f"[bench] pair {n}: {pair}", flush=True)
    return pair
