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


ROOT_SENTINEL = "/workbench-asset-root"
"""``ISAACSIM_ASSET_ROOT`` while configs are read for ``assets``: every path under it is one the task loads."""


def _config_assets(task: str) -> list[str]:
    """The files under the asset root that ``task``'s env config names (walked, not simulated: a scene may load
    more, e.g. the ground plane a terrain importer spawns)."""
    from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry

    found: set[str] = set()
    seen: set[int] = set()

    def walk(value: Any, depth: int = 0) -> None:
        if depth > 12 or id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, str):
            if value.startswith(ROOT_SENTINEL + "/"):
                found.add(value[len(ROOT_SENTINEL) + 1:])
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)
        elif isinstance(value, (list, tuple, set)):
            for item in value:
                walk(item, depth + 1)
        elif hasattr(value, "__dict__") and not isinstance(value, type) and type(value).__module__.startswith("isaaclab"):
            for item in vars(value).values():
                walk(item, depth + 1)

    walk(load_cfg_from_registry(task, "env_cfg_entry_point"))
    return sorted(found)


def config_assets(pythonpath: Sequence[str] = ()) -> dict[str, list[str]]:
    """Every registered task id with the files under the asset root its env config names (Isaac Lab imported in a
    subprocess, every config read: ~10 s on 2 cores)."""
    return _run(["assets"], pythonpath)


def main_asset(paths: Sequence[str]) -> str:
    """The file that stands for a task's assets: the first robot's, else the first that is not a UI marker, texture,
    material, folder or the ground plane; "" where there is none (``catalogue.CORE_TASK_MAIN_ASSET`` is this of
    every core task)."""
    robots = [path for path in paths if "/Robots" in path]
    others = [path for path in paths if "UIElements" not in path and "/Textures/" not in path
              and not path.endswith((".mdl", "/")) and "default_ground_plane" not in path]
    return (robots or others or [""])[0]


def _libraries(kwargs: dict[str, Any]) -> list[str]:
    return [lib for lib, key in LIBRARY_ENTRY_POINTS.items() if key in kwargs]


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workbench.spec.task_registry")
    sub = parser.add_subparsers(dest="command", required=True)
    probe = sub.add_parser("probe")
    probe.add_argument("task")
    probe.add_argument("--library")
    sub.add_parser("list")
    sub.add_parser("assets", help="the files under the asset root each task's env config names (JSON)")
    args = parser.parse_args(argv)
    if args.command == "assets":
        os.environ["ISAACSIM_ASSET_ROOT"] = ROOT_SENTINEL  # before isaaclab.utils.assets reads it
    registry = _registry()
    if args.command == "list":
        print(json.dumps({task: _libraries(kwargs) for task, kwargs in sorted(registry.items())}))
        return
    if args.command == "assets":
        print(json.dumps({task: _config_assets(task) for task in sorted(registry)}))
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
