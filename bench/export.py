"""Metrics export of a 100k-iteration rsl_rl event file: ``workbench.runner.outputs.export_metrics`` timed.

The event file is synthetic but shaped like rsl_rl's: the same scalar tags, one value per tag per iteration
(the ``/time`` tags at rsl_rl's integer-seconds step), written with ``torch.utils.tensorboard`` as rsl_rl does.
It is written once under ``--work`` and reused.
"""

from __future__ import annotations

import math
import statistics
import time
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


def bench_export(work: Path, iterations: int = 100_000, repeats: int = 3) -> dict:
    from workbench.runner.outputs import export_metrics

    t = time.monotonic()
    run_dir = write_events(work / f"events-{iterations}", iterations)
    written_s = time.monotonic() - t
    times, rows = [], 0
    for n in range(repeats):
        dest = work / f"metrics-{n}.csv"
        t = time.monotonic()
        rows = len(export_metrics(run_dir, "rsl_rl", dest))
        times.append(time.monotonic() - t)
        dest.unlink()
    size = sum(p.stat().st_size for p in run_dir.glob("events.out.tfevents.*"))
    return {
        "iterations": iterations, "scalars_per_iteration": len(TAGS) + len(TIME_TAGS), "event_file_mib": round(
            size / 2**20, 1), "rows_exported": rows, "export_s": [round(x, 2) for x in times],
        "export_s_median": round(statistics.median(times), 2), "write_s": round(written_s, 1),
        "function": "workbench.runner.outputs.export_metrics",
    }
