"""Metrics export of a 100k-iteration rsl_rl event file: ``workbench.outputs.metrics.export_metrics`` timed.

The event file is synthetic but shaped like rsl_rl's: the same scalar tags, one value per tag per iteration
(the ``/time`` tags at rsl_rl's integer-seconds step), written with ``torch.utils.tensorboard`` as rsl_rl does.
It is written once under ``--work`` and reused.
"""

from __future__ import annotations

import math
import statistics
import struct
import time
from collections.abc import Iterator
from pathlib import Path

TAGS = (
    "Loss/value_function", "Loss/surrogate", "Loss/entropy", "Loss/learning_rate", "Policy/mean_std",
    "Perf/total_fps", "Perf/collection_time", "Perf/learning_time", "Train/mean_reward",
    "Train/mean_episode_length", "Episode_Reward/alive", "Episode_Reward/terminating", "Episode_Reward/pole_pos",
    "Episode_Reward/cart_vel", "Episode_Reward/pole_vel", "Episode_Termination/time_out",
    "Episode_Termination/cart_out_of_bounds",
)
TIME_TAGS = ("Train/mean_reward/time", "Train/mean_episode_length/time")


def write_events(run_dir: Path, iterations: int) -> Path:
    """Write (once) an rsl_rl-shaped event file with ``iterations`` iterations; returns the run dir."""
    marker = run_dir / f".complete-{iterations}"
    if marker.exists():
        return run_dir
    from torch.utils.tensorboard import SummaryWriter

    run_dir.mkdir(parents=True, exist_ok=True)
    for old in run_dir.glob("events.out.tfevents.*"):
        old.unlink()
    writer = SummaryWriter(log_dir=str(run_dir), flush_secs=30)
    for it in range(iterations):
        x = it / iterations
        for n, tag in enumerate(TAGS):
            writer.add_scalar(tag, math.sin(x * (n + 1)) + n, it)
        for tag in TIME_TAGS:
            writer.add_scalar(tag, x * 300, int(it * 0.3))
    writer.close()
    marker.write_text("")
    return run_dir


def records(path: Path) -> Iterator[bytes]:
    """The records of a TFRecord file (u64 length, u32 length CRC, data, u32 data CRC; CRCs not checked); a
    record still being written at the end is left out."""
    data = path.read_bytes()
    pos, end = 0, len(data)
    while pos + 12 <= end:
        (length,) = struct.unpack_from("<Q", data, pos)
        start = pos + 12
        if start + length + 4 > end:
            return
        yield data[start:start + length]
        pos = start + length + 4


def read_scalars_direct(run_dir: Path, skip: tuple[str, ...] = ("/time",)) -> dict[int, dict[str, float]]:
    """Candidate replacement for ``outputs.read_scalars``: the same rows, read straight from the records with
    protobuf (no EventAccumulator, no pure-Python CRC)."""
    from tensorboard.compat.proto import event_pb2

    rows: dict[int, dict[str, float]] = {}
    for path in sorted(run_dir.rglob("events.out.tfevents.*")):
        for raw in records(path):
            event = event_pb2.Event.FromString(raw)
            for value in event.summary.value:
                if value.tag.endswith(skip):
                    continue
                if value.HasField("simple_value"):
                    number = value.simple_value
                elif value.HasField("tensor") and value.tensor.float_val:
                    number = value.tensor.float_val[0]
                else:
                    continue
                row = rows.setdefault(event.step, {})
                row["wall_time"] = max(row.get("wall_time", 0.0), event.wall_time)
                row[value.tag] = number
    return rows


def bench_export(work: Path, iterations: int = 100_000, repeats: int = 3) -> dict:
    """``export_metrics`` and the direct reader, alternating; wall and CPU seconds (CPU time is what load on
    a shared machine changes least)."""
    from workbench.libraries import library
    from workbench.outputs.metrics import ScalarReader, export_metrics, metrics_csv
    from workbench.transport.atomic import write_text_atomic

    t = time.monotonic()
    run_dir = write_events(work / f"events-{iterations}", iterations)
    written_s = time.monotonic() - t
    sides = {
        "export_metrics": lambda dest: len(export_metrics(ScalarReader(run_dir, "rsl_rl"), dest)),
        "direct_reader": lambda dest: len(_write(read_scalars_direct(run_dir), dest, run_dir)),
    }

    def _write(rows: dict, dest: Path, run_dir: Path) -> dict:
        write_text_atomic(dest, metrics_csv(rows, "rsl_rl", library("rsl_rl").steps_per_iteration(run_dir)))
        return rows

    wall: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    rows: dict[str, int] = {}
    for n in range(repeats):
        for name in (list(sides) if n % 2 == 0 else list(reversed(sides))):
            dest = work / f"metrics-{name}-{n}.csv"
            t, c = time.monotonic(), time.process_time()
            rows[name] = sides[name](dest)
            wall[name].append(time.monotonic() - t)
            cpu[name].append(time.process_time() - c)
            print(f"[bench] export {name} #{n}: {wall[name][-1]:.1f} s wall, {cpu[name][-1]:.1f} s CPU", flush=True)
    same = (work / "metrics-export_metrics-0.csv").read_bytes() == (work / "metrics-direct_reader-0.csv").read_bytes()
    size = sum(p.stat().st_size for p in run_dir.glob("events.out.tfevents.*"))
    med = {name: round(statistics.median(v), 2) for name, v in wall.items()}
    med_cpu = {name: round(statistics.median(v), 2) for name, v in cpu.items()}
    return {
        "iterations": iterations, "scalars_per_iteration": len(TAGS) + len(TIME_TAGS),
        "event_file_mib": round(size / 2**20, 1), "rows_exported": rows, "write_s": round(written_s, 1),
        "export_s": [round(x, 2) for x in wall["export_metrics"]], "export_s_median": med["export_metrics"],
        "cpu_s_median": med_cpu, "wall_s_median": med, "identical_csv": same,
        "direct_over_export_cpu_ratio": round(med_cpu["direct_reader"] / med_cpu["export_metrics"], 3),
        "function": "workbench.outputs.metrics.export_metrics",
    }
