"""``python -m bench [SUITE ...]``: run CPU benchmark suites, save each to ``bench/results/<suite>.json``, then
rebuild ``docs/benchmarks.json`` from every saved result (``python -m bench report`` only rebuilds).

Suites: export, logs, overhead, startup, solved, image (default: all). The GPU suites run on a GPU
machine: ``python -m bench.gpu solved|packing --out DIR``; copy DIR's JSON files to ``bench/results/gpu/``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.machine import describe

RESULTS = Path(__file__).parent / "results"
SUITES = ("export", "logs", "overhead", "startup", "solved", "image")


def run_suite(name: str, work: Path) -> dict:
    if name == "export":
        from bench.export import bench_export
        return bench_export(work)
    if name == "image":
        from bench.image import bench_image
        return bench_image(work)
    if name == "logs":
        from bench.logstream import log_latency
        return {**log_latency(work), "with_poll_interval_0.1s": log_latency(work, poll_interval_s=0.1)}
    from bench import cpu
    return {"overhead": cpu.overhead, "startup": cpu.startup, "solved": cpu.solved}[name](work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"{', '.join(SUITES)} or report")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary one)")
    args = parser.parse_args()
    unknown = set(args.suites) - {*SUITES, "report"}
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    suites = [s for s in args.suites if s != "report"] if args.suites else list(SUITES)
    work = args.work or Path(tempfile.mkdtemp(prefix="workbench-bench-"))
    RESULTS.mkdir(exist_ok=True)
    for name in suites:
        started = time.monotonic()
        result = run_suite(name, work / name)
        record = {"suite": name, "machine": describe(), "duration_s": round(time.monotonic() - started, 1),
                  "result": result}
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"[bench] {name}: {json.dumps(result)[:2000]}", flush=True)
    from bench.report import write_summary
    print(json.dumps(write_summary(), indent=1))


if __name__ == "__main__":
    main()
