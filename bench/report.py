"""``docs/benchmarks.json``: the latest figures from ``bench/results/`` (CPU suites) and ``bench/results/gpu/``
(the GPU phases), each with the machine it was measured on."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.machine import label

RESULTS = Path(__file__).parent / "results"
SUMMARY = Path(__file__).parent.parent / "docs" / "benchmarks.json"


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def _figure(value: object, record: dict, **extra: object) -> dict:
    machine = record["machine"]
    return {"value": value, "machine": label(machine), "date": machine["date"], **extra}


def gpu_phases() -> dict[str, dict]:
    """The GPU phase records by name (``bench/results/gpu/gpu_<phase>.json``)."""
    phases = {}
    for name in ("solved", "packing", "repeat", "jitcache", "cubin", "workbench", "pyc", "warmstart",
                 "warmstart_overhead"):
        if record := _load(RESULTS / "gpu" / f"gpu_{name}.json"):
            phases[name] = record
    return phases


def packing_speedups(phases: dict[str, dict]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """k -> median over phases of aggregate(k) / aggregate(1), each ratio within one phase (one machine session)."""
    ratios: dict[str, list[float]] = {}
    rates: dict[str, list[float]] = {}
    for record in phases.values():
        packs = {str(r["k"]): r["aggregate_steps_per_s"] for n, r in record["runs"].items()
                 if n.startswith("packing_") and isinstance(r, dict) and r.get("aggregate_steps_per_s")}
        for k, rate in packs.items():
            rates.setdefault(k, []).append(rate)
            if "1" in packs:
                ratios.setdefault(k, []).append(rate / packs["1"])
    order = sorted(ratios, key=int)
    return {k: round(statistics.median(ratios[k]), 2) for k in order}, {k: rates[k] for k in sorted(rates, key=int)}


def gpu_figures() -> dict:
    phases = gpu_phases()
    if not phases:
        return {}
    record = next(iter(phases.values()))
    runs = {n: r for p in phases.values() for n, r in p["runs"].items()}
    warm = [r for n, r in runs.items() if n.startswith("warm_") and n[5:].isdigit()]
    cold_fresh = [runs[n] for n in ("cold_1",) if n in runs]
    cold_warp = [r for n, r in runs.items() if n in ("cold_2", "cold_3", "cold_4")]
    warp_only = [r for n, r in runs.items() if n.startswith("warm_warp_empty_cuda_")]
    speedup, rates = packing_speedups(phases)
    measured = "bare `isaaclab train`, Isaac-Cartpole-Direct, rsl_rl, 4096 envs, submit to first iteration"

    def first(rs: list[dict], note: str) -> dict:
        return _figure(_median([r["first_iteration_s"] for r in rs]), record, runs=len(rs), measured=measured,
                       caches=note)

    warmstart = phases.get("warmstart", record)
    startup = warmstart["runs"].get("startup", {})
    pairs = [p for name in ("warmstart", "warmstart_overhead") if name in phases
             for p in phases[name]["runs"].get("overhead", {}).get("pairs", [])]
    ratios = [p["workbench"]["median_steps_per_s"] / p["bare"]["median_steps_per_s"] for p in pairs
              if p["workbench"]["median_steps_per_s"] and p["bare"]["median_steps_per_s"]]
    through = "workbench local backend, job forked from the warm process, 4096 envs"
    return {
        "overhead_ratio_h100": _figure(_median(ratios), warmstart, pairs=len(ratios), ratios=[round(r, 3) for r in ratios],
                                       measured=f"median steps/s, {through}, over bare; alternating pairs, "
                                                "100 iterations"),
        "time_to_solved_s": _figure(_median([p["workbench"]["solved_s"] for p in pairs]), warmstart, runs=len(pairs),
                                    baseline_bare=_median([p["bare"]["solved_s"] for p in pairs]),
                                    bare_5_runs_other_session=_median([r["solved_s"] for r in warm]),
                                    bare_cold_s=_median([r["solved_s"] for r in cold_fresh]),
                                    measured=f"{through}, warm caches, submit to solved"),
        "workbench_first_iteration_s": {
            "warm": _figure(startup.get("first_iteration_s", {}).get("warm"), warmstart,
                            runs=len(startup.get("warm", [])),
                            baseline_bare=startup.get("bare_first_iteration_s", {}).get("warm"),
                            measured=f"{through}, warm caches, submit to first iteration"),
            "fresh_process_caches_filled": _figure(
                startup.get("first_iteration_s", {}).get("warm_fresh_process"), warmstart,
                runs=len(startup.get("warm", [])),
                caches="Warp and CUDA JIT caches filled, no warm process: a new container with its caches on EFS"),
            "cold": _figure(startup.get("first_iteration_s", {}).get("cold"), warmstart, runs=1,
                            caches="Warp and CUDA JIT caches empty, no warm process (a fresh machine)"),
        },
        "startup_experiments": {
            "torch_bytecode_compiled": {
                "before_s": _median([r["first_iteration_s"] for n, r in runs.items() if n.startswith("warm_before_pyc")]),
                "after_s": _median([r["first_iteration_s"] for n, r in runs.items() if n.startswith("warm_after_pyc")]),
                "note": "the device image's torch has no .pyc; compileall once, then warm bare starts"},
            "cubin_warm_warp_cache_empty_cuda_cache_s": _median(
                [r["first_iteration_s"] for n, r in runs.items() if n.startswith("cubin_warm_warp_empty_cuda")]),
            "cubin_cold_s": runs.get("cubin_cold", {}).get("first_iteration_s"),
            "fork_server_prototype": _load(RESULTS / "gpu" / "gpu_zygote.json"),
        },
        "first_iteration_s": {
            "warm": first(warm, "Warp kernel cache and CUDA driver JIT cache filled"),
            "cold": first(cold_fresh, "both empty (a fresh machine)"),
            "cold_warp_cache_only": first(cold_warp, "Warp kernel cache empty, CUDA JIT cache filled"),
            "warp_cache_without_cuda_cache": first(warp_only, "Warp kernel cache filled, CUDA JIT cache empty "
                                                   "(a fresh container with only the Warp cache on EFS)"),
        },
        "gpu_packing_speedup": {**speedup, "machine": label(record["machine"]), "date": record["machine"]["date"],
                                "aggregate_steps_per_s": {k: [round(x) for x in v] for k, v in rates.items()},
                                "measured": "k concurrent bare `isaaclab train` (4096 envs, 100 iterations each); "
                                            "ratio to k=1 within each session, median over sessions"},
        "machine": record["machine"],
    }


def write_summary() -> dict:
    summary: dict = {}
    if overhead := _load(RESULTS / "overhead.json"):
        r = overhead["result"]
        summary["overhead_ratio_cpu"] = _figure(r["throughput_ratio_median"], overhead, pairs=len(r["pairs"]),
                                                ratios=r["throughput_ratios"], concurrent=r.get("concurrent", False),
                                                num_envs=r["num_envs"], iterations=r["iterations"],
                                                wall_ratio_bare_over_workbench=r["wall_ratio_bare_over_workbench_median"],
                                                alternating_pairs_ratios=r.get("alternating", {}).get("throughput_ratios"))
    gpu = gpu_figures()
    first: dict = {}
    if startup := _load(RESULTS / "startup.json"):
        r = startup["result"]
        for kind, how in (("cold", "a new workbench home: caches empty, no warm process"),
                          ("warm", "job forked from the warm process, caches filled")):
            first[kind] = _figure(r["first_iteration_s"][kind], startup, baseline_bare=r["bare_first_iteration_s"][kind],
                                  runs=len(r[kind]) or 1, num_envs=r["num_envs"],
                                  measured=f"workbench local backend, {how}, submit to first iteration")
        first["warm"]["fresh_process"] = r["first_iteration_s"].get("warm_fresh_process")
    if gpu:
        first["h100_workbench"] = gpu["workbench_first_iteration_s"]
        first["h100_bare"] = gpu["first_iteration_s"]
    summary["first_iteration_s"] = first
    solved: dict = {}
    if cpu := _load(RESULTS / "solved.json"):
        r = cpu["result"]
        solved["cpu"] = _figure(r["time_to_solved_s"], cpu, baseline_bare=r["bare_time_to_solved_s"],
                                num_envs=r["num_envs"], measured="workbench local backend, submit to solved")
    if gpu:
        solved["h100"] = gpu["time_to_solved_s"]
    summary["time_to_solved_s"] = solved
    if export := _load(RESULTS / "export.json"):
        r = export["result"]
        summary["metrics_export_s_100k"] = _figure(r["export_s_median"], export, runs=len(r["export_s"]),
                                                   function=r["function"], event_file_mib=r["event_file_mib"],
                                                   direct_reader_10k=r.get("direct_reader_10k"))
    if logs := _load(RESULTS / "logs.json"):
        r = logs["result"]
        summary["log_latency_ms_p50"] = _figure(r["p50_ms"], logs, p95_ms=r["p95_ms"], lines=r["lines"],
                                                with_poll_interval_0_1_s=r.get("with_poll_interval_0.1s"))
    if image := _load(RESULTS / "image.json"):
        r = image["result"]
        summary["job_image"] = _figure(r["image_size_gb"], image, unit="GB (uncompressed)", cold_build_s=r["cold_build_s"],
                                       cached_build_s=r["cached_build_s"], measured=r.get("measured"))
    if gpu:
        summary["overhead_ratio_h100"] = gpu["overhead_ratio_h100"]
        summary["gpu_packing_speedup"] = gpu["gpu_packing_speedup"]
        summary["startup_experiments_h100"] = gpu["startup_experiments"]
    summary["machines"] = {label(r["machine"]): r["machine"] for r in (overhead, startup, cpu, export, logs, image)
                           if r} | ({label(gpu["machine"]): gpu["machine"]} if gpu else {})
    SUMMARY.parent.mkdir(exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
