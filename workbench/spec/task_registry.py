"""The task catalogue: Isaac Lab's registry plus tasks from custom packages.

Isaac Lab is imported in a subprocess (``python -m workbench.spec.task_registry``) with the job's own ``PYTHONPATH``, so a
job-private custom package never leaks into the caller, and callers without Isaac Lab still work.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.errors import WorkbenchError

LIBRARY_ENTRY_POINTS = {
    "rsl_rl": "rsl_rl_cfg_entry_point",
    "rl_games": "rl_games_cfg_entry_point",
    "skrl": "skrl_cfg_entry_point",
}


@dataclass(frozen=True)
class TaskInfo:
    """What the registry says of one task: whether it exists, its libraries, and a YAML agent config if any."""

    task: str
    registered: bool
    libraries: tuple[str, ...] = ()
    agent_cfg: dict[str, Any] | None = None


def probe_task(task: str, library: str | None = None, pythonpath: Sequence[str] = ()) -> TaskInfo:
    """Look ``task`` up in the registry (with ``pythonpath`` entries first); include ``library``'s YAML config."""
    args = ["probe", task] + (["--library", library] if library else [])
    doc = _run(args, pythonpath)
    return TaskInfo(task, doc["registered"], tuple(doc["libraries"]), doc.get("agent_cfg"))


def list_tasks(pythonpath: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
    """Every registered task id (core and custom packages on ``pythonpath``) with its RL libraries."""
    return {task: tuple(libs) for task, libs in _run(["list"], pythonpath).items()}


def _run(args: list[str], pythonpath: Sequence[str]) -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *filter(None, [env.get("PYTHONPATH", "")])])
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.spec.task_registry", *args], capture_output=True, text=True, env=env, timeout=300
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise WorkbenchError(f"could not read Isaac Lab's task registry: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _registry() -> dict[str, dict[str, Any]]:
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401  (registers the core tasks)
    from isaaclab.cli import load_external_tasks

    load_external_tasks()
    return {
        task_id: dict(spec.kwargs or {})
        for task_id, spec in gym.registry.items()
        if "env_cfg_entry_point" in (spec.kwargs or {})
    }


def _libraries(kwargs: dict[str, Any]) -> list[str]:
    return [lib for lib, key in LIBRARY_ENTRY_POINTS.items() if key in kwargs]


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workbench.spec.task_registry")
    sub = parser.add_subparsers(dest="command", required=True)
    probe = sub.add_parser("probe")
    probe.add_argument("task")
    probe.add_argument("--library")
    sub.add_parser("list")
    args = parser.parse_args(argv)
    registry = _registry()
    if args.command == "list":
        print(json.dumps({task: _libraries(kwargs) for task, kwargs in sorted(registry.items())}))
        return
    kwargs = registry.get(args.task)
    result: dict[str, Any] = {"registered": kwargs is not None, "libraries": _libraries(kwargs or {})}
    entry = (kwargs or {}).get(LIBRARY_ENTRY_POINTS.get(args.library or "", ""))
    if isinstance(entry, str) and entry.endswith((".yaml", ".yml")):
        from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry

        result["agent_cfg"] = load_cfg_from_registry(args.task, LIBRARY_ENTRY_POINTS[args.library])
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    _main()
