"""Which tasks the offline asset root serves, and the files each needs (stdlib only: the one table of them).

Isaac Lab tasks load their USD assets from NVIDIA's asset server at run time; ``WORKBENCH_ASSETS=offline`` (the
default) points them at a tree the runner builds under the workbench home (``workbench.runner.inputs.assets``)
from what the installed packages ship. Paths are relative to that root (Isaac Lab's ``ISAACSIM_ASSET_ROOT``;
``ISAAC_NUCLEUS_DIR`` is ``<root>/Isaac``). The spec and the CLI read this table to say, before anything starts,
whether a task runs offline here.
"""

from __future__ import annotations

from collections.abc import Collection

from workbench.spec.catalogue import CORE_TASK_MAIN_ASSET, CORE_TASKS
from workbench.spec.document import FieldError, JobSpec, SpecError

OFFLINE, NUCLEUS = "offline", "nucleus"
"""``WORKBENCH_ASSETS`` values: the home's built root, or NVIDIA's asset server (needs network)."""

CARTPOLE = "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd"
ANT = "Isaac/Robots/IsaacSim/Ant/ant_instanceable.usd"
GROUND_PLANE = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/default_ground_plane.usda"

OFFLINE_ASSETS: dict[str, str] = {
    CARTPOLE: "newton/examples/assets/cartpole_single_pendulum.usda (defaultPrim fixed)",
    ANT: "newton/examples/assets/ant.usda",
    GROUND_PLANE: "authored with pxr: a collision plane and a visible quad",
}
"""Every file the offline root holds, and where it comes from."""

TASK_ASSETS: dict[str, tuple[str, ...]] = {
    "Isaac-Cartpole-Direct": (CARTPOLE, GROUND_PLANE),
    "Isaac-Cartpole": (CARTPOLE, GROUND_PLANE),
    "Isaac-Ant-Direct": (ANT, GROUND_PLANE),
    "Isaac-Ant": (ANT, GROUND_PLANE),
}
"""The assets each task needs; the offline root serves exactly these tasks (each trained offline through the
workbench). Other tasks whose files it has (the camera cartpoles, say) are not listed until verified."""


def runs_offline(task: str) -> bool:
    """Whether the offline root serves ``task``."""
    return task in TASK_ASSETS


def availability(task: str) -> str:
    """``offline`` (the home's root serves it) or ``nucleus`` (it needs ``WORKBENCH_ASSETS=nucleus`` or a copy)."""
    return OFFLINE if runs_offline(task) else NUCLEUS


def missing_offline(task: str) -> str:
    """Why ``task`` cannot run from the offline root, naming the file its config loads where it is known (and not
    one the root has), and the fix."""
    main = CORE_TASK_MAIN_ASSET.get(task)
    what = (f"needs {main} under the asset root (and whatever else its config loads), which the offline asset root "
            "does not have" if main and main not in OFFLINE_ASSETS else "is not one the offline asset root serves")
    return (f"task {task!r} {what} (it serves {', '.join(sorted(TASK_ASSETS))}); set WORKBENCH_ASSETS=nucleus to "
            "load assets from NVIDIA's asset server (needs network), or WORKBENCH_ASSETS=/a/dir for a copy of that "
            "server's tree")


def check_offline(spec: JobSpec, assets: str, core_tasks: Collection[str] = CORE_TASKS) -> None:
    """A SpecError where ``assets`` is ``offline`` and ``spec`` asks for a core task the offline root does not
    serve. A custom package's task (not a core id) may bring its own assets and is let through."""
    if assets == OFFLINE and spec.task in core_tasks and not runs_offline(spec.task):
        raise SpecError([FieldError("trainingConfig.task", missing_offline(spec.task))])
