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
    return {"value": value, "machine": label(machine), "date": machine["date"], "python": machine["python"],
            "packages": machine["packages"], **extra}


def gpu_runs() -> tuple[dict, dict | None]:
    """Every GPU run by name (all phases merged) and the machine record of the first phase."""
    runs: dict = {}
    first = None
    for name in ("solved", "packing", "repeat", "jitcache", "cubin"):
        record = _load(RESULTS / "gpu" / f"gpu_{name}.json")
        if record:
            first = first or record
            runs.update(record["runs"])
    return runs, first


def gpu_figures() -> dict:
    runs, record = gpu_runs()
    if not record:
        return {}
    warm = [r for n, r in runs.items() if n.startswith("warm_") and n[5:].isdigit()]
    cold = [r for n, r in runs.items() if n.startswith("cold_")]
    packing: dict[str, list[float]] = {}
    for name, r in runs.items():
        if name.startswith("packing_") and isinstance(r, dict) and r.get("aggregate_steps_per_s"):
            packing.setdefault(str(r["k"]), []).append(r["aggregate_steps_per_s"])
    base = statistics.median(packing["1"]) if "1" in packing else None
    speedup = {k: round(statistics.median(v) / base, 2) for k, v in sorted(packing.items(), key=lambda kv: int(
        kv[0]))} if base else {}
    note = "bare `isaaclab train`, Isaac-Cartpole-Direct, rsl_rl, 4096 envs (the workbench was not run on the GPU)"
    return {
        "time_to_solved_s": _figure(_median([r["solved_s"] for r in warm]), record, runs=len(warm),
                                    kernel_cache="warm", cold_run_s=_median([r["solved_s"] for r in cold]),
                                    measured=note),
        "first_iteration_s": {
            "warm": _figure(_median([r["first_iteration_s"] for r in warm]), record, runs=len(warm), measured=note),
            "cold": _figure(_median([r["first_iteration_s"] for r in cold]), record, runs=len(cold), measured=note,
                            note="cold_1 had an empty CUDA driver JIT cache too; the others only an empty Warp cache"),
        },
        "gpu_packing_speedup": {**speedup, "machine": label(record["machine"]), "date": record["machine"]["date"],
                                "aggregate_steps_per_s": {k: round(statistics.median(v)) for k, v in packing.items()},
                                "runs": {k: len(v) for k, v in packing.items()}, "measured": note},
    }


def write_summary() -> dict:
    summary: dict = {}
    if overhead := _load(RESULTS / "overhead.json"):
        r = overhead["result"]
        summary["overhead_ratio_cpu"] = _figure(r["throughput_ratio_median"], overhead, pairs=len(r["pairs"]),
                                                num_envs=r["num_envs"], iterations=r["iterations"],
                                                wall_ratio_bare_over_workbench=r["wall_ratio_bare_over_workbench_median"])
    gpu = gpu_figures()
    first: dict = {}
    if startup := _load(RESULTS / "startup.json"):
        r = startup["result"]
        for kind in ("cold", "warm"):
            first[kind] = _figure(r["first_iteration_s"][kind], startup, baseline_bare=r["bare_first_iteration_s"][kind],
                                  num_envs=r["num_envs"], measured="workbench local backend, submit to first iteration")
    if gpu:
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
                                                   function=r["function"], event_file_mib=r["event_file_mib"])
    if logs := _load(RESULTS / "logs.json"):
        r = logs["result"]
        summary["log_latency_ms_p50"] = _figure(r["p50_ms"], logs, p95_ms=r["p95_ms"], lines=r["lines"])
    if gpu:
        summary["gpu_packing_speedup"] = gpu["gpu_packing_speedup"]
    SUMMARY.parent.mkdir(exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
