"""The two sides of every comparison: a training through the workbench's local backend, and bare
``isaaclab train`` with the arguments the runner would give it (``workbench.runner.commands.train_arguments``),
the same kernel cache and the same asset root.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from bench.watch import RunTiming, follow_lines, solved_threshold, watch
from workbench.backends.local import LocalBackend
from workbench.runner.assets import asset_root_for
from workbench.runner.commands import isaaclab_command, resolve_device, train_arguments
from workbench.spec import JobSpec, parse_spec

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
                  stop_after_first_iteration: bool = False, timeout_s: float = 900.0) -> RunTiming:
    """Submit ``spec`` to the local backend and time its job log from the moment of submission."""
    use_home(home)
    start = time.monotonic()
    job = LocalBackend().submit(spec)
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


def run_bare(spec: JobSpec, home: Path, cwd: Path, stop_when_solved: bool = False,
             stop_after_first_iteration: bool = False, timeout_s: float = 900.0) -> RunTiming:
    """``isaaclab train`` with the runner's arguments, kernel cache and asset root, in a fresh ``cwd``."""
    use_home(home)
    from workbench import paths

    env = {"WARP_CACHE_PATH": str(paths.warp_cache_dir())}
    paths.warp_cache_dir().mkdir(parents=True, exist_ok=True)
    env.update(asset_root_for(spec.task, paths.assets_dir()))
    shutil.rmtree(cwd, ignore_errors=True)
    arguments = train_arguments(spec, resolve_device(spec.training["device"]), time.strftime("%Y-%m-%d_%H-%M-%S"),
                                None)
    return watch(isaaclab_command("train", arguments), cwd, env=env, stop_when_solved=stop_when_solved,
                 stop_after_first_iteration=stop_after_first_iteration, timeout_s=timeout_s)
