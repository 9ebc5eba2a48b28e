"""A real Docker engine for the image tests, and the job image built on a local stand-in for the CUDA base.

No image registry is reachable here, so the base is made locally: Ubuntu 24.04 by ``debootstrap`` from Ubuntu's
package archive, with what the official ``ubuntu:24.04`` image (and so ``nvidia/cuda:*-ubuntu24.04``) has and a
build would notice: the apt sources of every component, and the user ``ubuntu`` with uid 1000. It is imported
with ``docker import`` and passed to ``container/Dockerfile.kitless`` as ``BASE_IMAGE``; every step of the
Dockerfile then runs unchanged.

pip inside a build cannot verify this network's TLS (its proxy's certificate authority is trusted by this machine
only), so the image's Python packages are downloaded once with this machine's pip (its index, cache and
certificates) into a wheelhouse in the tests' cache, and the build installs them from there over 127.0.0.1
through the Dockerfile's ``PIP_NO_INDEX``/``PIP_FIND_LINKS`` build arguments (the ones made for mirrors).

The engine is Debian's ``docker.io`` (``scripts/bootstrap.sh --test`` installs it). Its own CLI, ``/usr/bin/docker``,
is used: it builds with BuildKit without the buildx plug-in, which the cache mount of pip's downloads needs. A
daemon already listening on ``$DOCKER_HOST`` is used as it is; otherwise one is started for the session with its
data under ``/var/lib/workbench-docker`` (the base image and BuildKit's cache stay there, so a rebuild takes
seconds) and stopped when the session ends, after the session's containers and job images are removed.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKER_CLI = "/usr/bin/docker"
DATA_ROOT = Path(os.environ.get("WORKBENCH_DOCKER_DATA_ROOT", "/var/lib/workbench-docker"))
BASE_IMAGE = "workbench-test/ubuntu-base:24.04"
JOB_IMAGE = "workbench-test/job:kitless"
HARNESS_LABEL = "workbench-harness=batch"
"""The label ``tests/aws/moto_compat.py`` puts on the Batch containers it runs."""
UBUNTU_ARCHIVE = "http://archive.ubuntu.com/ubuntu"
WHEELHOUSE_PORT = 18765
UBUNTU_SOURCES = """\
Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: noble noble-updates noble-backports
Components: main universe restricted multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://security.ubuntu.com/ubuntu/
Suites: noble-security
Components: main universe restricted multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
"""
"""The apt sources of the official Ubuntu 24.04 image (debootstrap leaves only ``noble main``)."""


class DockerError(RuntimeError):
    """The engine, the base image or the build failed; the message names the failing step."""


@dataclass(frozen=True)
class Build:
    """A finished image build: its tag, how long it took and the image's size."""

    image: str
    seconds: float
    size_bytes: int
    log: str


@dataclass
class DockerEngine:
    """A Docker daemon reached at ``host``; ``started`` when this session started it (and so stops it)."""

    host: str
    started: subprocess.Popen | None = None
    run_dir: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}

    def docker(self, *args: str, timeout: float = 120, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run([DOCKER_CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False, **kwargs)
        if check and done.returncode != 0:
            raise DockerError(f"docker {' '.join(args[:2])} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done

    def has_image(self, image: str) -> bool:
        return self.docker("image", "inspect", image, check=False).returncode == 0

    def remove_containers(self, label: str = HARNESS_LABEL) -> None:
        """Remove every container with ``label``, running or not."""
        left = self.docker("ps", "--all", "--quiet", "--filter", f"label={label}", check=False).stdout.split()
        if left:
            self.docker("rm", "--force", "--volumes", *left, check=False)

    def stop(self) -> None:
        """Remove the session's containers and job image; stop the daemon if this session started it."""
        self.remove_containers()
        self.docker("image", "rm", "--force", JOB_IMAGE, check=False)
        if self.started is not None:
            self.started.terminate()
            try:
                self.started.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.started.kill()
                self.started.wait(timeout=30)
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def start_engine() -> DockerEngine:
    """The running daemon at ``$DOCKER_HOST``, else a new one for this session (root only)."""
    if not Path(DOCKER_CLI).exists() or shutil.which("dockerd") is None:
        raise DockerError("Docker is not installed: run `scripts/bootstrap.sh --test` (installs Debian's docker.io)")
    if os.environ.get("DOCKER_HOST"):
        engine = DockerEngine(host=os.environ["DOCKER_HOST"])
        if engine.docker("info", check=False).returncode == 0:
            return engine
    run_dir = Path(tempfile.mkdtemp(prefix="workbench-dockerd-"))
    host = f"unix://{run_dir}/docker.sock"
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / "dockerd.log", "wb")
    process = subprocess.Popen(
        ["dockerd", "--host", host, "--data-root", str(DATA_ROOT), "--exec-root", str(run_dir / "exec"),
         "--pidfile", str(run_dir / "dockerd.pid")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    engine = DockerEngine(host=host, started=process, run_dir=run_dir)
    deadline = time.monotonic() + 90
    while engine.docker("info", check=False).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            raise DockerError(f"dockerd did not start: {(run_dir / 'dockerd.log').read_text()[-2000:]}")
        time.sleep(0.5)
    return engine


def ensure_base_image(engine: DockerEngine, work_dir: Path) -> str:
    """The Ubuntu 24.04 stand-in for the CUDA base (made once per engine data root)."""
    if engine.has_image(BASE_IMAGE):
        return BASE_IMAGE
    root = work_dir / "ubuntu-24.04"
    steps = [
        ("debootstrap", ["debootstrap", "--variant=minbase", "--no-check-gpg", "noble", str(root), UBUNTU_ARCHIVE,
                         "/usr/share/debootstrap/scripts/gutsy"]),
        ("add the uid-1000 user ubuntu", ["chroot", str(root), "useradd", "--create-home", "--uid", "1000",
                                          "--user-group", "--shell", "/bin/bash", "ubuntu"]),
    ]
    for name, command in steps:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise DockerError(f"making the base image: {name} failed: {(done.stdout + done.stderr)[-2000:]}")
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/ubuntu.sources").write_text(UBUNTU_SOURCES)
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    imported = engine.docker("import", "-", BASE_IMAGE, stdin=tar.stdout, timeout=600, check=False)
    tar.wait()
    shutil.rmtree(root, ignore_errors=True)
    if imported.returncode != 0:
        raise DockerError(f"making the base image: docker import failed: {imported.stderr[-2000:]}")
    return BASE_IMAGE


def wheelhouse(cache: Path) -> Path:
    """The image's Python packages (``.[isaaclab,aws]`` and the build tools of its sdists), downloaded once per
    version of ``pyproject.toml``."""
    target = cache / "wheelhouse"
    stamp = target / f".complete-{hashlib.sha256((REPO / 'pyproject.toml').read_bytes()).hexdigest()[:16]}"
    if stamp.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--dest", str(target), ".[isaaclab,aws]",
                           "setuptools>=69", "wheel"], cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise DockerError(f"downloading the image's Python packages failed: {done.stderr[-2000:]}")
    for old in target.glob(".complete-*"):
        old.unlink()
    stamp.touch()
    return target


@contextmanager
def served(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on 127.0.0.1 (a pip ``--find-links`` page) while the block runs; its URL.

    The port is fixed when free: the URL is a build argument, so it is part of BuildKit's cache key of the
    dependency layer, and a new port each session would reinstall every package.
    """
    handler = functools.partial(_QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", WHEELHOUSE_PORT), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def build_image(engine: DockerEngine, tag: str, base: str, accept_eula: bool = True, find_links: str | None = None,
                dockerfile: str = "container/Dockerfile.kitless", context: Path = REPO, timeout: float = 3000) -> Build:
    """``docker build`` of the repository's Dockerfile as the CDK asset builds it, with ``BASE_IMAGE=base``;
    ``find_links``: install Python packages from that page only (host networking, so 127.0.0.1 is this machine)."""
    index = ["--build-arg", "PIP_NO_INDEX=1", "--build-arg", f"PIP_FIND_LINKS={find_links}"] if find_links else []
    started = time.monotonic()
    done = engine.docker(
        "build", "--progress=plain", "--network", "host", "-f", dockerfile, "-t", tag,
        "--build-arg", f"ACCEPT_NVIDIA_EULA={'true' if accept_eula else 'false'}", "--build-arg", f"BASE_IMAGE={base}",
        *index, ".", cwd=context, timeout=timeout, check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise DockerError(f"building {dockerfile} failed at {failing_step(done.stderr)}:\n{done.stderr[-3000:]}")
    size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    return Build(image=tag, seconds=seconds, size_bytes=size, log=done.stderr)


def failing_step(log: str) -> str:
    """The Dockerfile step BuildKit's plain progress reports as failed (``[stage-0 3/8] RUN ...``)."""
    steps = re.findall(r"^#\d+ (\[[^\]]+\] .*)$", log, flags=re.MULTILINE)
    errors = re.findall(r"^#(\d+) ERROR", log, flags=re.MULTILINE)
    if errors:
        failed = re.search(rf"^#{errors[-1]} (\[[^\]]+\] .*)$", log, flags=re.MULTILINE)
        if failed:
            return failed.group(1)[:300]
    return steps[-1][:300] if steps else "an unknown step"
