"""The two sides of every comparison: a training through the workbench's local backend, and bare
``isaaclab train`` with the arguments the runner would give it (``workbench.runner.commands.train_arguments``),
the same Warp and CUDA caches and the same asset root (``job_environment``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.watch import RunTiming, follow_lines, solved_threshold, watch
from workbench.backends.local import LocalBackend
from workbench.runner.commands import isaaclab_command, job_environment, train_arguments
from workbench.spec.devices import resolve_device
from workbench.spec.document import JobSpec, parse_spec

TASK = "Isaac-Cartpole-Direct"


def training_spec(num_envs: int, max_iterations: int, seed: int = 42, device: str = "auto") -> JobSpec:
    return parse_spec({"trainingConfig": {
        "mode": "train", "task": TASK, "rlLibrary": "rsl_rl", "numEnvs": num_envs, "maxIterations": max_iterations,
        "seed": seed, "device": device,
    }, "computeConfig": {}})


def use_home(home: Path) -> None:
    """Point this process (and the runners it starts) at ``home`` as the workbench home."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ["WORKBENCH_HOME"] = str(home)


def run_workbench(spec: JobSpec, home: Path, stop_when_solved: bool = False,
                  stop_after_first_iteration: bool = False, timeout_s: float = 900.0,
                  warm_start: bool = True) -> RunTiming:
    """Submit ``spec`` to the local backend and time its job log from the moment of submission.

    ``warm_start``: the job's child is forked from the home's warm process when one serves (the default for users);
    off, it is a fresh process (and no warm process is started afterwards).
    """
    use_home(home)
    start = time.monotonic()
    job = LocalBackend(warm_start=warm_start).submit(spec)
    timing = RunTiming(command=["workbench", "local", job.job_id])

    def lines():
        for line in job.logs(follow=True, poll_interval=0.1):
            now = time.monotonic() - start
            if now > timeout_s:
                job.cancel("benchmark time limit")
                return
            yield now, line

    follow_lines(lines(), timing, solved_threshold(), stop=lambda: job.cancel("benchmark stop condition met"),
                 stop_when_solved=stop_when_solved, stop_after_first_iteration=stop_after_first_iteration)
    status = job.status()
    while not status.state.is_terminal:
        time.sleep(0.2)
        status = job.status()
    timing.wall_s = time.monotonic() - start
    timing.returncode = 0 if status.state.value == "SUCCEEDED" else 1
    return timing


def start_warm_process(home: Path, timeout_s: float = 300.0) -> float:
    """``workbench warm start`` for ``home``; returns the seconds its imports took."""
    use_home(home)
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "warm", "start"], capture_output=True, text=True,
                          timeout=timeout_s, check=True)
    return float(re.search(r"imports took ([\d.]+) s", done.stdout).group(1))


def stop_warm_process(home: Path) -> None:
    from workbench.runner.warm import client as warmstart

    warmstart.stop(warmstart.Endpoint.for_home(home), wait_s=30)


def run_bare(spec: JobSpec, home: Path, cwd: Path, stop_when_solved: bool = False,
             stop_after_first_iteration: bool = False, timeout_s: float = 900.0) -> RunTiming:
    """``isaaclab train`` with the runner's arguments, caches and asset root, in a fresh ``cwd``."""
    use_home(home)
    env = job_environment(spec.task, "offline")
    shutil.rmtree(cwd, ignore_errors=True)
    arguments = train_arguments(spec, resolve_device(spec.training["device"]), time.strftime("%Y-%m-%d_%H-%M-%S"),
                                None)
    return watch(isaaclab_command("train", arguments), cwd, env=env, stop_when_solved=stop_when_solved,
                 stop_after_first_iteration=stop_after_first_iteration, timeout_s=timeout_s)
