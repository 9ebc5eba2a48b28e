"""Experiment: how much of a warm start a pre-imported parent saves (a fork server, as a proposal for the runner).

The parent imports the heavy modules once (torch, tensordict, rsl_rl, Isaac Lab, Newton, MuJoCo Warp, Warp) with
the job's environment already set, then forks one child per training; the child runs ``isaaclab train``'s own
entry point in-process. Compared with a fresh ``isaaclab train`` process, alternating, same arguments, warm cache.
CUDA is not touched before the fork (importing torch does not initialise it).
"""

from __future__ import annotations

import io
import os
import signal
import statistics
import sys
import time
from pathlib import Path

from bench.jobs import run_bare, training_spec, use_home
from bench.watch import ANSI, RunTiming, follow_lines, solved_threshold

HEAVY = ("torch", "tensordict", "rsl_rl.runners", "isaaclab_rl.rsl_rl", "isaaclab_tasks", "isaaclab.envs",
         "newton", "mujoco_warp", "warp", "isaaclab_newton.physics", "gymnasium", "hydra")


def preimport(env: dict[str, str]) -> float:
    """Set the job environment and import the heavy modules; returns the seconds it took."""
    os.environ.update(env)
    start = time.monotonic()
    import importlib

    for name in HEAVY:
        importlib.import_module(name)
    return time.monotonic() - start


def forked_train(arguments: list[str], cwd: Path, timeout_s: float = 600.0) -> RunTiming:
    """Fork, run ``isaaclab train ARGUMENTS`` in the child, time its output until the first iteration."""
    cwd.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.chdir(cwd)
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(read_fd)
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
        sys.argv = ["isaaclab", "train", *arguments]
        code = 0
        try:
            from isaaclab.cli import cli

            cli()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    timing = RunTiming(command=["fork", *arguments])
    stream = io.TextIOWrapper(os.fdopen(read_fd, "rb"), errors="replace")

    def lines():
        for raw in stream:
            now = time.monotonic() - start
            yield now, ANSI.sub("", raw.rstrip("\n"))
            if now > timeout_s:
                _kill(pid)

    follow_lines(lines(), timing, solved_threshold(), stop=lambda: _kill(pid), stop_after_first_iteration=True)
    _, status = os.waitpid(pid, 0)
    timing.returncode = os.waitstatus_to_exitcode(status)
    timing.wall_s = time.monotonic() - start
    return timing


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def zygote_vs_bare(work: Path, pairs: int = 2, num_envs: int = 16) -> dict:
    """Warm first-iteration time: forked from a pre-imported parent vs a fresh ``isaaclab train``, alternating."""
    from workbench import paths
    from workbench.runner.assets import asset_root_for
    from workbench.runner.commands import resolve_device, train_arguments

    home = work / "home"
    use_home(home)
    spec = training_spec(num_envs, 5)
    env = {"WARP_CACHE_PATH": str(paths.warp_cache_dir()), "PYTHONUNBUFFERED": "1",
           **asset_root_for(spec.task, paths.assets_dir())}
    paths.warp_cache_dir().mkdir(parents=True, exist_ok=True)
    run_bare(spec, home, work / "fill-cache", stop_after_first_iteration=True)
    import_s = preimport(env)
    rows = []
    for n in range(pairs):
        arguments = train_arguments(spec, resolve_device("auto"), f"zygote-{n}", None)
        sides = {
            "forked": lambda: forked_train(arguments, work / f"forked-{n}"),
            "bare": lambda: run_bare(spec, home, work / f"bare-{n}", stop_after_first_iteration=True),
        }
        order = ["forked", "bare"] if n % 2 == 0 else ["bare", "forked"]
        row = {name: round(sides[name]().first_iteration_s or float("nan"), 2) for name in order}
        rows.append(row)
        print(f"[bench] zygote pair {n}: {row}", flush=True)
    forked = statistics.median(r["forked"] for r in rows)
    bare = statistics.median(r["bare"] for r in rows)
    return {"num_envs": num_envs, "preimport_s": round(import_s, 2), "pairs": rows,
            "forked_first_iteration_s": round(forked, 2), "bare_first_iteration_s": round(bare, 2),
            "saved_fraction": round(1 - forked / bare, 3)}
