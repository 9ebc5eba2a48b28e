"""Run one training command and time its output: first iteration, solved policy, per-iteration throughput.

Each output line is timestamped on arrival (the child runs with ``PYTHONUNBUFFERED=1``). rsl_rl prints one block
per iteration: ``Learning iteration N/M``, ``Total steps``, ``Steps per second`` and ``Mean episode length``;
the workbench runner's ``WORKBENCH_PROGRESS`` lines are understood too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ITERATION = re.compile(r"Learning iteration (\d+)/(\d+)")
TOTAL_STEPS = re.compile(r"Total steps:\s+(\d+)")
STEPS_PER_SECOND = re.compile(r"Steps per second:\s+([\d.]+)")
EPISODE_LENGTH = re.compile(r"Mean episode length:\s+([\d.]+)")
PROGRESS = re.compile(r"WORKBENCH_PROGRESS (\{.*\})")

CARTPOLE_MAX_EPISODE_LENGTH = 300
"""Isaac-Cartpole-Direct: 5 s episodes at dt 1/120 with decimation 2."""
SOLVED_FRACTION = 0.95


@dataclass
class Iteration:
    """One training iteration as printed, with the seconds since launch when its block arrived."""

    t: float
    iteration: int
    total_steps: int | None = None
    steps_per_second: float | None = None
    mean_episode_length: float | None = None


@dataclass
class RunTiming:
    """What one watched run gave."""

    command: list[str]
    returncode: int | None = None
    wall_s: float = 0.0
    first_iteration_s: float | None = None
    solved_s: float | None = None
    solved_iteration: int | None = None
    stopped_early: bool = False
    iterations: list[Iteration] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)

    def median_steps_per_second(self, skip: int = 1) -> float | None:
        """Median of the printed per-iteration rates, skipping the first ``skip`` (warm-up) iterations."""
        rates = sorted(i.steps_per_second for i in self.iterations[skip:] if i.steps_per_second)
        return rates[len(rates) // 2] if rates else None

    def to_json(self) -> dict:
        return asdict(self)


def solved_threshold(max_episode_length: int = CARTPOLE_MAX_EPISODE_LENGTH) -> float:
    return SOLVED_FRACTION * max_episode_length


def watch(
    command: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    stop_when_solved: bool = False,
    stop_after_first_iteration: bool = False,
    timeout_s: float = 600.0,
    log_path: Path | None = None,
    solved_at: float | None = None,
    t0: float | None = None,
) -> RunTiming:
    """Start ``command`` in its own process group and time its output until it exits (or the stop condition)."""
    cwd.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    threshold = solved_at if solved_at is not None else solved_threshold()
    start = t0 if t0 is not None else time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    timing = RunTiming(command=command)
    log = log_path.open("w") if log_path else None
    timer = threading.Timer(timeout_s, _stop, args=(proc,))
    timer.start()
    try:
        assert proc.stdout is not None
        lines = ((time.monotonic() - start, ANSI.sub("", raw.rstrip("\n"))) for raw in proc.stdout)
        if log:
            lines = _logged(lines, log)
        follow_lines(lines, timing, threshold, stop=lambda: _stop(proc), stop_when_solved=stop_when_solved,
                     stop_after_first_iteration=stop_after_first_iteration)
        timing.returncode = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            _stop(proc)
        if log:
            log.close()
    timing.wall_s = time.monotonic() - start
    return timing


def follow_lines(lines: Iterable[tuple[float, str]], timing: RunTiming, threshold: float, stop: Callable[[], None],
                 stop_when_solved: bool = False,
                 stop_after_first_iteration: bool = False) -> None:
    """Fill ``timing`` from ``(seconds, line)`` pairs; call ``stop()`` once the stop condition is met."""
    current: Iteration | None = None
    stopped = False
    for now, line in lines:
        timing.tail = (timing.tail + [line])[-40:]
        current = _parse(line, now, timing, current)
        if current is None:
            continue
        if timing.first_iteration_s is None:
            timing.first_iteration_s = current.t
        length = current.mean_episode_length
        if timing.solved_s is None and length is not None and length >= threshold:
            timing.solved_s, timing.solved_iteration = current.t, current.iteration
        done = (stop_when_solved and timing.solved_s is not None) or (
            stop_after_first_iteration and current.steps_per_second is not None)
        if done and not stopped:
            stopped = timing.stopped_early = True
            stop()


def _logged(lines: Iterable[tuple[float, str]], log: TextIO) -> Iterator[tuple[float, str]]:
    for now, line in lines:
        log.write(f"{now:9.3f} {line}\n")
        yield now, line


def _parse(line: str, now: float, timing: RunTiming, current: Iteration | None) -> Iteration | None:
    if m := ITERATION.search(line):
        current = Iteration(t=now, iteration=int(m.group(1)))
        timing.iterations.append(current)
        return current
    if m := PROGRESS.search(line):
        data = json.loads(m.group(1))
        if "iteration" in data:
            current = Iteration(t=now, iteration=int(data["iteration"]),
                                steps_per_second=data.get("steps_per_second"),
                                mean_episode_length=data.get("mean_episode_length"))
            timing.iterations.append(current)
        return current
    if current is None:
        return None
    if m := TOTAL_STEPS.search(line):
        current.total_steps = int(m.group(1))
    elif m := STEPS_PER_SECOND.search(line):
        current.steps_per_second = float(m.group(1))
    elif m := EPISODE_LENGTH.search(line):
        current.mean_episode_length = float(m.group(1))
    return current


def _stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGINT the whole process group, then SIGKILL it after a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def aggregate_steps_per_second(runs: list[RunTiming], steps_per_iteration: int) -> float | None:
    """Aggregate env-steps/s of concurrent runs over the window in which all of them were training.

    The window runs from the latest first iteration to the earliest last iteration; each iteration that ended
    inside it counts ``steps_per_iteration`` steps.
    """
    if not runs or any(len(r.iterations) < 2 for r in runs):
        return None
    start = max(r.iterations[0].t for r in runs)
    end = min(r.iterations[-1].t for r in runs)
    if end <= start:
        return None
    done = sum(1 for r in runs for i in r.iterations if start < i.t <= end)
    return done * steps_per_iteration / (end - start)
