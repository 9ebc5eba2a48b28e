"""Custom environment packages: the example builds in three formats, installs per job, trains, and stays private."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import tarfile
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from trained_jobs import TASK, build_packages, example_packages, first_training, log_tail

from workbench.backends.local import LocalBackend
from workbench.errors import PackageError
from workbench.runner.inputs.custom_env import install_custom_environment
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

OTHER_TASK = "Workbench-Other-Cartpole-Direct"
LIBRARIES = ("rl_games", "rsl_rl", "skrl")


def _write_package(root: Path, module: str, init: str, entry_point: bool = True) -> Path:
    """A minimal setuptools package source tree under ``root``."""
    root.mkdir(parents=True)
    entry = f'[project.entry-points."isaaclab.tasks"]\n{module} = "{module}"\n' if entry_point else ""
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{module.replace("_", "-")}"\nversion = "1.0"\n\n{entry}\n'
        f'[tool.setuptools]\npackages = ["{module}"]\n'
    )
    (root / module).mkdir()
    (root / module / "__init__.py").write_text(textwrap.dedent(init))
    return root


OTHER_INIT = f"""
    import gymnasium as gym

    # importing from isaaclab_tasks registers all of Isaac Lab's tasks too; only OTHER_TASK is this package's
    from isaaclab_tasks.core.cartpole.agents.rsl_rl_ppo_cfg import CartpoleDirectPPORunnerCfg

    gym.register(
        id="{OTHER_TASK}",
        entry_point="isaaclab_tasks.core.cartpole.cartpole_direct_env:CartpoleEnv",
        kwargs={{
            "env_cfg_entry_point": "isaaclab_tasks.core.cartpole.cartpole_direct_env_cfg:CartpoleEnvCfg",
            "rsl_rl_cfg_entry_point": "isaaclab_tasks.core.cartpole.agents.rsl_rl_ppo_cfg:CartpoleDirectPPORunnerCfg",
        }},
    )
"""


@pytest.fixture(scope="module")
def other_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different custom package (registers OTHER_TASK), built with the same build script."""
    root = tmp_path_factory.mktemp("other")
    source = _write_package(root / "src" / "other_tasks", "other_tasks", OTHER_INIT)
    return build_packages(root / "dist", source)["whl"]


def _assert_not_in_this_process() -> None:
    assert importlib.util.find_spec("workbench_cartpole_variant") is None
    assert importlib.util.find_spec("other_tasks") is None
    names = {ep.name for ep in importlib.metadata.entry_points(group="isaaclab.tasks")}
    assert not names & {"workbench_cartpole_variant", "other_tasks"}


def test_build_script_makes_three_offline_formats() -> None:
    packages = example_packages()
    with tarfile.open(packages["tar.gz"]) as sdist:
        assert any(name.endswith("/pyproject.toml") for name in sdist.getnames())
    with zipfile.ZipFile(packages["zip"]) as source:
        assert any(name.endswith("agents/skrl_ppo_cfg.yaml") for name in source.namelist())
    with zipfile.ZipFile(packages["whl"]) as wheel:
        entry_points = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
        assert "[isaaclab.tasks]" in wheel.read(entry_points).decode()


@pytest.mark.parametrize("fmt", ["tar.gz", "zip", "whl"])
def test_install_is_job_private_in_each_format(fmt: str, tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    custom = install_custom_environment(example_packages()[fmt], job_dir)
    assert custom.task_ids == (TASK,)
    assert custom.tasks[0].libraries == LIBRARIES
    assert custom.site_dir.is_relative_to(job_dir)
    assert (custom.site_dir / "workbench_cartpole_variant" / "agents" / "rl_games_ppo_cfg.yaml").is_file()
    assert custom.child_env({"PYTHONPATH": "/x"})["PYTHONPATH"] == f"{custom.site_dir}:/x"
    assert custom.require_task(TASK, "skrl").task_id == TASK
    with pytest.raises(PackageError, match=r"'Isaac-Nope' not found after installing .*registers: " + TASK):
        custom.require_task("Isaac-Nope")
    _assert_not_in_this_process()


@pytest.mark.slow
@pytest.mark.parametrize("library", ["rsl_rl", "rl_games", "skrl"])
def test_example_trains_in_each_format(library: str) -> None:
    """rsl_rl from the sdist, rl_games from the zipped source tree, skrl from the wheel."""
    job = first_training(library)
    out = job.outputs()
    log = (out / "logs" / "job.log").read_text()
    assert f"it registers {TASK}" in log
    assert (out / "custom-env" / "site" / "workbench_cartpole_variant").is_dir()
    assert sorted((out / "checkpoints").glob("model_*.pt")), log_tail(job)
    assert len((out / "metrics.csv").read_text().splitlines()) > 1
    _assert_not_in_this_process()


def test_concurrent_jobs_do_not_see_each_others_tasks(other_package: Path, tmp_path: Path) -> None:
    variant = example_packages()["whl"]
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(install_custom_environment, variant, tmp_path / "job-a")
        second = pool.submit(install_custom_environment, other_package, tmp_path / "job-b")
        a, b = first.result(), second.result()
    assert a.task_ids == (TASK,) and b.task_ids == (OTHER_TASK,)  # each found in its own job's environment
    _assert_not_in_this_process()

    # two runner jobs at once, each asking for the task only the other job's package registers
    backend = LocalBackend(max_concurrent=2)
    jobs = [
        backend.submit(parse_spec(_document(TASK, other_package))),
        backend.submit(parse_spec(_document(OTHER_TASK, variant))),
    ]
    for job, missing, package in zip(jobs, (TASK, OTHER_TASK), (other_package, variant)):
        status = job.wait(timeout=300, poll_interval=0.5)
        assert status.state is JobState.FAILED
        assert f"task {missing!r} not found after installing {package.name}" in status.reason, log_tail(job)


def _document(task: str, package: Path) -> dict:
    return {
        "trainingConfig": {"task": task, "numEnvs": 16, "maxIterations": 1, "device": "cpu", "rlLibrary": "rsl_rl"},
        "customEnvironmentS3Uri": str(package),
    }


def test_package_without_entry_point_registers_no_task(tmp_path: Path) -> None:
    source = _write_package(tmp_path / "src" / "plain", "plain", "VALUE = 1\n", entry_point=False)
    archive = Path(shutil.make_archive(str(tmp_path / "plain-1.0"), "zip", source.parent))
    with pytest.raises(PackageError, match="registers no task: it declares no 'isaaclab.tasks' entry point"):
        install_custom_environment(archive, tmp_path / "job")


def test_entry_point_that_registers_nothing(tmp_path: Path) -> None:
    source = _write_package(tmp_path / "src" / "quiet", "quiet", "VALUE = 1\n")
    archive = build_packages(tmp_path / "dist", source)["tar.gz"]
    with pytest.raises(PackageError, match="registers no task: its entry points"):
        install_custom_environment(archive, tmp_path / "job")


def test_entry_point_that_fails_to_import(tmp_path: Path) -> None:
    source = _write_package(tmp_path / "src" / "broken", "broken", "import not_a_module_anywhere\n")
    wheel = build_packages(tmp_path / "dist", source)["whl"]
    with pytest.raises(PackageError, match="importing the tasks of .*No module named 'not_a_module_anywhere'"):
        install_custom_environment(wheel, tmp_path / "job")


def test_build_failure_reports_pips_message(tmp_path: Path) -> None:
    source = _write_package(tmp_path / "src" / "badbuild", "badbuild", "")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["no_such_backend"]\nbuild-backend = "no_such_backend"\n'
    )
    archive = Path(shutil.make_archive(str(tmp_path / "badbuild-1.0"), "gztar", source.parent))
    with pytest.raises(PackageError, match=r"building badbuild-1.0.tar.gz failed: (?s:.*)no_such_backend"):
        install_custom_environment(archive, tmp_path / "job")


def test_archive_without_a_project(tmp_path: Path) -> None:
    (tmp_path / "src" / "notes").mkdir(parents=True)
    (tmp_path / "src" / "notes" / "README.txt").write_text("no package here")
    archive = Path(shutil.make_archive(str(tmp_path / "notes"), "zip", tmp_path / "src"))
    with pytest.raises(PackageError, match="no pyproject.toml or setup.py"):
        install_custom_environment(archive, tmp_path / "job")


def test_unsafe_member_fails_the_job_naming_it(tmp_path: Path) -> None:
    archive = tmp_path / "evil-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(example_packages()["zip"], arcname="../../escape.zip")
    job = LocalBackend().submit(parse_spec(_document(TASK, archive)))
    status = job.wait(timeout=120, poll_interval=0.5)
    assert status.state is JobState.FAILED
    assert "unsafe member '../../escape.zip' in evil-1.0.tar.gz" in status.reason
    assert not (job.outputs() / "escape.zip").exists() and not (job.outputs() / "custom-env" / "escape.zip").exists()


@pytest.mark.parametrize("name,content,message", [
    ("corrupt-1.0.zip", b"PK\x03\x04 not really a zip", "corrupt archive corrupt-1.0.zip"),
    ("corrupt-1.0.whl", b"PK\x03\x04 not really a wheel", "corrupt archive corrupt-1.0.whl"),
    ("corrupt-1.0.tgz", b"\x1f\x8b\x08\x00 broken gzip", "corrupt archive corrupt-1.0.tgz"),
    ("package.rar", b"Rar!", "unsupported package format 'package.rar'"),
])
def test_corrupt_or_unsupported_package(name: str, content: bytes, message: str, tmp_path: Path) -> None:
    archive = tmp_path / name
    archive.write_bytes(content)
    with pytest.raises(PackageError, match=message):
        install_custom_environment(archive, tmp_path / "job")
