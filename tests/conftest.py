"""Shared fixtures: every test session gets its own WORKBENCH_HOME (asset root and kernel cache kept across tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_engine import (
    JOB_IMAGE,
    Build,
    DockerEngine,
    DockerError,
    build_image,
    ensure_base_image,
    served,
    start_engine,
    wheelhouse,
)
from tests.helpers import TRAIN_ITERATIONS, cache_root, job_id_from, run_cli


@pytest.fixture(scope="session", autouse=True)
def workbench_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private workbench home for the session; the warp kernel cache is shared with later sessions."""
    home = tmp_path_factory.mktemp("workbench-home")
    os.environ["WORKBENCH_HOME"] = str(home)
    cache = cache_root()
    (home / "cache").mkdir(parents=True, exist_ok=True)
    (cache / "warp").mkdir(parents=True, exist_ok=True)
    (home / "cache" / "warp").symlink_to(cache / "warp", target_is_directory=True)
    return home


@pytest.fixture(scope="session", autouse=True)
def warm_process(workbench_home: Path) -> Iterator[None]:
    """Jobs fork from a warm process, as users' jobs do by default: ``workbench warm start`` now (in the
    background, so the first jobs may still start fresh), ``workbench warm stop`` when the session ends."""
    from workbench.runner.warm import client as warmstart

    starting = subprocess.Popen([sys.executable, "-m", "workbench.cli", "warm", "start"], env=dict(os.environ),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield
    starting.wait(timeout=300)
    warmstart.stop(warmstart.Endpoint.for_home(workbench_home), wait_s=30)


@pytest.fixture(scope="session")
def trained_job(workbench_home: Path):
    """``trained_job(library)``: a real tiny training through ``workbench train --wait``, run once per session."""
    from workbench.backends.local import LocalBackend

    done: dict[str, object] = {}

    def get(library: str):
        if library not in done:
            result = run_cli("train", "--task", "Isaac-Cartpole-Direct", "--rl-library", library, "--num-envs", "16",
                             "--max-iterations", str(TRAIN_ITERATIONS[library]), "--seed", "7", "--device", "cpu",
                             "--wait")
            assert result.returncode == 0, f"training with {library} failed:\n{result.stdout}\n{result.stderr}"
            done[library] = LocalBackend().job(job_id_from(result.stdout))
        return done[library]

    return get


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A real Docker engine (Debian's docker.io), started for the session unless one runs; stopped after."""
    try:
        engine = start_engine()
    except DockerError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def base_image(docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The local Ubuntu 24.04 stand-in for the CUDA base image, with the uid-1000 user ``ubuntu``."""
    return ensure_base_image(docker_engine, tmp_path_factory.mktemp("base-image"))


@pytest.fixture(scope="session")
def job_image(docker_engine: DockerEngine, base_image: str) -> Build:
    """``container/Dockerfile.kitless`` built for real on the stand-in base, as ``cdk deploy`` builds it."""
    with served(wheelhouse(cache_root())) as find_links:
        return build_image(docker_engine, JOB_IMAGE, base_image, find_links=find_links)

