"""Custom Isaac Lab task packages: install one into a job-private directory and find the tasks it registers.

A package is a wheel (``.whl``), an sdist or source tree (``.tar.gz``/``.tgz``) or a zipped source tree (``.zip``).
Archives are unpacked with :mod:`workbench.runner.inputs.safe_extract` into ``<job>/custom-env/source``, built into a
wheel with ``pip wheel --no-deps --no-build-isolation --no-index`` (offline, with the build backend of the
workbench's own environment) and installed with ``pip install --no-deps --no-index --target
<job>/custom-env/site``. Nothing goes into the shared environment: the job's child process gets the site
directory on its ``PYTHONPATH``, so another job (or the workbench itself) never sees the package.

Isaac Lab 3.0 imports every module named in the ``isaaclab.tasks`` entry-point group before it looks up a task id;
the package's tasks are found the same way, in a subprocess with the job's ``PYTHONPATH``: the ids its entry points
register, less Isaac Lab's own (a package that imports ``isaaclab_tasks`` registers those too).

Building and importing a package runs its code; that is what a custom environment is for. The guarantees here are
about files: nothing is unpacked or installed outside the job directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import PackageError
from workbench.runner.inputs.safe_extract import Limits, archive_kind, check_archive, extract_archive
from workbench.spec.catalogue import CORE_TASKS
from workbench.transport.storage import fetch_input

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "isaaclab.tasks"
CUSTOM_ENV_DIR = "custom-env"
PIP_TIMEOUT_S = 600
DISCOVERY_TIMEOUT_S = 300
_RESULT_PREFIX = "WORKBENCH_CUSTOM_TASKS "

_DISCOVER = """
import importlib.metadata, json, sys, traceback
site = sys.argv[1]
import gymnasium
before = set(gymnasium.registry) | set(json.loads(sys.argv[2]))
points = [ep for dist in importlib.metadata.distributions(path=[site]) for ep in dist.entry_points
          if ep.group == {group!r}]
errors = []
for ep in points:
    try:
        ep.load()
    except BaseException as exc:
        errors.append(f"{{ep.name}} = {{ep.value}}: " + "".join(traceback.format_exception_only(exc)).strip())
tasks = []
for task_id, spec in gymnasium.registry.items():
    if task_id in before or "env_cfg_entry_point" not in spec.kwargs or spec.kwargs.get("deprecated"):
        continue
    libraries = sorted(key.removesuffix("_cfg_entry_point") for key, value in spec.kwargs.items()
                       if key.endswith("_cfg_entry_point") and key != "env_cfg_entry_point" and value is not None)
    tasks.append({{"id": task_id, "libraries": libraries}})
print({prefix!r} + json.dumps({{"entry_points": [f"{{ep.name}} = {{ep.value}}" for ep in points],
                                "errors": errors, "tasks": tasks}}))
""".format(group=ENTRY_POINT_GROUP, prefix=_RESULT_PREFIX)


@dataclass(frozen=True)
class CustomTask:
    """A task id a custom package registers and the RL libraries it has agent configs for."""

    task_id: str
    libraries: tuple[str, ...]


@dataclass(frozen=True)
class CustomEnvironment:
    """A custom package installed for one job."""

    package: Path
    site_dir: Path
    tasks: tuple[CustomTask, ...]
    entry_points: tuple[str, ...]

    @property
    def task_ids(self) -> tuple[str, ...]:
        return tuple(task.task_id for task in self.tasks)

    @property
    def env(self) -> dict[str, str]:
        """The environment variables the job's child process needs (its ``PYTHONPATH`` entry)."""
        return {"PYTHONPATH": str(self.site_dir)}

    def child_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with the site directory put first on ``PYTHONPATH``."""
        return {**base, "PYTHONPATH": _prepend_path(str(self.site_dir), base.get("PYTHONPATH"))}

    def require_task(self, task_id: str, library: str | None = None) -> CustomTask:
        """The task ``task_id`` (with an agent config for ``library``), or :class:`PackageError` saying what exists."""
        for task in self.tasks:
            if task.task_id == task_id:
                if library is not None and library not in task.libraries:
                    available = ", ".join(task.libraries) or "none"
                    raise PackageError(
                        f"task {task_id!r} from {self.package.name} has no {library} agent config; available: {available}"
                    )
                return task
        raise PackageError(
            f"task {task_id!r} not found after installing {self.package.name}; it registers: {', '.join(self.task_ids)}"
        )


def install_custom_environment(
    package_path: Path, job_dir: Path, *, python: str | None = None, limits: Limits = Limits()
) -> CustomEnvironment:
    """Install ``package_path`` under ``<job_dir>/custom-env/`` and return where it is and what it registers.

    Raises :class:`PackageError` for an unsupported format, a corrupt or unsafe archive (naming the member), a
    failed build or install (with pip's message), and a package that registers no task.
    """
    python = python or sys.executable
    package_path = Path(package_path)
    if not package_path.is_file():
        raise PackageError(f"custom environment package not found: {package_path}")
    kind = archive_kind(package_path)
    root = Path(job_dir) / CUSTOM_ENV_DIR
    shutil.rmtree(root, ignore_errors=True)
    site_dir = root / "site"
    if package_path.name.lower().endswith(".whl"):
        wheel = package_path
    else:
        log.info("unpacking %s (%s archive)", package_path.name, kind)
        source = extract_archive(package_path, root / "source", limits)
        wheel = _build_wheel(python, _project_dir(source, package_path), root / "wheel", package_path)
    check_archive(wheel, limits)
    log.info("installing %s into %s", wheel.name, site_dir)
    _pip(
        python,
        ["install", "--no-deps", "--no-index", "--no-compile", "--target", str(site_dir), str(wheel)],
        f"installing {package_path.name} failed",
    )
    found = discover_tasks(site_dir, python=python, package_name=package_path.name)
    environment = CustomEnvironment(
        package=package_path,
        site_dir=site_dir,
        tasks=tuple(CustomTask(t["id"], tuple(t["libraries"])) for t in found["tasks"]),
        entry_points=tuple(found["entry_points"]),
    )
    log.info("%s registers %s", package_path.name, ", ".join(environment.task_ids))
    return environment


def list_package_tasks(package: str | Path, *, python: str | None = None) -> tuple[CustomTask, ...]:
    """The tasks a package (path, ``file://`` or ``s3://`` URI) registers, installed into a throw-away directory."""
    with tempfile.TemporaryDirectory(prefix="workbench-custom-env-") as scratch:
        package_path = fetch_input(str(package), Path(scratch) / "inputs")
        return install_custom_environment(package_path, Path(scratch), python=python).tasks


def discover_tasks(site_dir: Path, *, python: str | None = None, package_name: str = "the package") -> dict:
    """Load the ``isaaclab.tasks`` entry points of the distributions in ``site_dir`` in a subprocess.

    Returns ``{"entry_points": [...], "tasks": [{"id", "libraries"}], "errors": []}``; raises
    :class:`PackageError` when the package declares no entry point, one fails to import, or no task is registered.
    """
    env = {**os.environ, "PYTHONPATH": _prepend_path(str(site_dir), os.environ.get("PYTHONPATH"))}
    try:
        result = subprocess.run(
            [python or sys.executable, "-c", _DISCOVER, str(site_dir), json.dumps(sorted(CORE_TASKS))],
            capture_output=True, text=True, env=env, timeout=DISCOVERY_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired:
        raise PackageError(f"loading the tasks of {package_name} took more than {DISCOVERY_TIMEOUT_S} s") from None
    lines = [line for line in result.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if result.returncode != 0 or not lines:
        raise PackageError(f"loading the tasks of {package_name} failed: {_tail(result.stderr or result.stdout)}")
    found = json.loads(lines[-1].removeprefix(_RESULT_PREFIX))
    if not found["entry_points"]:
        raise PackageError(
            f"{package_name} registers no task: it declares no '{ENTRY_POINT_GROUP}' entry point; add "
            f'[project.entry-points."{ENTRY_POINT_GROUP}"] my_tasks = "my_package" to its pyproject.toml'
        )
    if found["errors"]:
        raise PackageError(f"importing the tasks of {package_name} failed: {'; '.join(found['errors'])}")
    if not found["tasks"]:
        raise PackageError(
            f"{package_name} registers no task: its entry points ({', '.join(found['entry_points'])}) imported "
            "without calling gymnasium.register(...) with an env_cfg_entry_point"
        )
    return found


def _project_dir(source: Path, package_path: Path) -> Path:
    """The unpacked directory holding pyproject.toml or setup.py: the top, or its single top-level folder."""
    candidates = [source]
    entries = [p for p in source.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        candidates.append(entries[0])
    for candidate in candidates:
        if (candidate / "pyproject.toml").is_file() or (candidate / "setup.py").is_file():
            return candidate
    raise PackageError(
        f"{package_path.name} is not a Python package source: no pyproject.toml or setup.py at its top level "
        "or in its single top-level folder"
    )


def _build_wheel(python: str, project: Path, wheel_dir: Path, package_path: Path) -> Path:
    log.info("building a wheel from %s", package_path.name)
    _pip(
        python,
        ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(wheel_dir), str(project)],
        f"building {package_path.name} failed",
    )
    wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise PackageError(f"building {package_path.name} gave {len(wheels)} wheels; expected one")
    return wheels[0]


def _pip(python: str, args: list[str], failure: str) -> None:
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    try:
        result = subprocess.run(
            [python, "-m", "pip", *args], capture_output=True, text=True, env=env, timeout=PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise PackageError(f"{failure}: pip did not finish within {PIP_TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise PackageError(f"{failure}: {_tail(result.stderr or result.stdout)}")


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept) or "(no output)"


def _prepend_path(entry: str, existing: str | None) -> str:
    return entry if not existing else f"{entry}{os.pathsep}{existing}"
