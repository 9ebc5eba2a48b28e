"""The AWS test harness: moto server once per session, with the shim of ``moto_compat.py``.

``moto_server`` starts ``moto_server.py`` on a free port of 127.0.0.1 (with ``MOTO_PORT`` set, so moto's
Step Functions reach its other services), enables Step Functions execution and points this process's boto3
at it through ``AWS_ENDPOINT_URL`` and dummy credentials.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline import STACK, Pipeline, container_properties, deploy, synthesized

from tests.docker_engine import DOCKER_CLI, Build, DockerEngine
from tests.helpers import cache_root
from workbench.backends.aws import AwsBackend

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REGION = "us-west-2"
ANTLR_VERSION = "4.13.2"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


def antlr_path() -> Path:
    """A private antlr4 runtime 4.13 for the moto process (installed once into the test cache)."""
    target = Path(os.environ.get("WORKBENCH_MOTO_ANTLR", cache_root() / f"moto-antlr4-{ANTLR_VERSION}"))
    if not (target / "antlr4" / "__init__.py").exists():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
             f"antlr4-python3-runtime=={ANTLR_VERSION}"],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot install antlr4-python3-runtime {ANTLR_VERSION} for moto: {done.stderr[-500:]}")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def harness_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aws-harness")


@pytest.fixture(scope="session")
def moto_server(harness_root: Path, workbench_home: Path) -> Iterator[str]:
    """The endpoint of a moto server running the shim; this process's boto3 talks to it from now on."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    runner_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_"))},
        **AWS_ENV,
        "AWS_ENDPOINT_URL": endpoint,
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    }
    harness = {
        "runner_env": runner_env,
        "volumes_root": str(harness_root / "volumes"),
        "work_root": str(harness_root / "containers"),
        "env_overrides": {"WORKBENCH_ASSETS": "offline"},
        "worker_file": str(harness_root / "image-worker.json"),
    }
    server_env = {**runner_env, "MOTO_PORT": str(port), "PYTHONPATH": str(antlr_path()),
                  "WORKBENCH_HARNESS": json.dumps(harness)}
    log = open(harness_root / "moto-server.log", "wb")
    process = subprocess.Popen([sys.executable, str(HERE / "moto_server.py"), str(port)], env=server_env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(endpoint, process, harness_root / "moto-server.log")
        request = urllib.request.Request(
            f"{endpoint}/moto-api/config", data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            method="POST", headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).read()
        saved = {k: os.environ.get(k) for k in [*AWS_ENV, "AWS_ENDPOINT_URL", "MOTO_PORT"]}
        os.environ.update({**AWS_ENV, "AWS_ENDPOINT_URL": endpoint, "MOTO_PORT": str(port)})
        yield endpoint
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.fixture(scope="session")
def pipeline(moto_server: str, harness_root: Path) -> Pipeline:
    """The synthesized stack's essentials, created in moto (see ``pipeline.py``)."""
    template, cdk_out = synthesized(cache_root())
    deployed = deploy(template, cdk_out, REGION)
    _share_warp_cache(harness_root, template)
    return deployed


@pytest.fixture(scope="session")
def backend(pipeline: Pipeline, harness_root: Path) -> AwsBackend:
    """The aws backend configured from the harness stack's outputs (``describe_stacks``), as a user's would be."""
    return AwsBackend(stack_name=STACK, cache_dir=harness_root / "downloads")


@dataclass(frozen=True)
class ImageWorker:
    """The built job image playing the Batch worker: its EFS volume on this machine and the engine."""

    image: str
    volumes_root: Path
    engine: DockerEngine

    def efs(self, pipeline: Pipeline) -> Path:
        """The host directory standing in for the job definitions' EFS volume."""
        return self.volumes_root / _efs_mount(pipeline.template)["SourceVolume"]

    def container(self, batch_job_id: str) -> str:
        return f"batch-{batch_job_id}"


@pytest.fixture(scope="module")
def image_worker(moto_server: str, pipeline: Pipeline, harness_root: Path, job_image: Build,
                 docker_engine: DockerEngine) -> Iterator[ImageWorker]:
    """While a module uses it, the harness runs Batch jobs in the built job image instead of this checkout.

    The job environment is Batch's, plus what a Batch container gets from its task role and region (dummy
    credentials, moto's endpoint) and ``WORKBENCH_ASSETS=offline`` (no asset server here). The Warp kernel cache
    on the stand-in EFS volume is kept across sessions, as EFS keeps it across jobs.
    """
    volumes_root = harness_root / "image-volumes"
    worker = ImageWorker(image=job_image.image, volumes_root=volumes_root, engine=docker_engine)
    mount = _efs_mount(pipeline.template)
    home = worker.efs(pipeline) / Path(_job_environment(pipeline.template)["WORKBENCH_HOME"]).relative_to(mount["ContainerPath"])
    warp = cache_root() / "image-warp"
    for directory in (home / "cache", warp):
        directory.mkdir(parents=True, exist_ok=True)
    for directory in (volumes_root, *volumes_root.rglob("*")):
        os.chown(directory, 1000, 1000)  # the EFS access point makes every file uid 1000's
    settings = {
        "image": job_image.image, "docker_cli": DOCKER_CLI, "docker_host": docker_engine.host,
        "volumes_root": str(volumes_root),
        "env": {**AWS_ENV, "AWS_ENDPOINT_URL": moto_server, "WORKBENCH_ASSETS": "offline"},
        "extra_volumes": {str(warp): str(Path(mount["ContainerPath"]) / (home / "cache" / "warp").relative_to(worker.efs(pipeline)))},
    }
    for directory in (warp, *warp.rglob("*")):
        os.chown(directory, 1000, 1000)
    switch = harness_root / "image-worker.json"
    switch.write_text(json.dumps(settings))
    yield worker
    switch.unlink()
    docker_engine.remove_containers()


def _efs_mount(template: dict) -> dict:
    (mount,) = container_properties(template)["MountPoints"]
    return mount


def _job_environment(template: dict) -> dict[str, str]:
    return {e["Name"]: e["Value"] for e in container_properties(template)["Environment"]}


def _share_warp_cache(harness_root: Path, template: dict) -> None:
    """Point the EFS volume's warp kernel cache at the test sessions' cache (the first job would compile ~20 s)."""
    home = _job_environment(template)["WORKBENCH_HOME"]
    mount = _efs_mount(template)
    local_home = harness_root / "volumes" / mount["SourceVolume"] / Path(home).relative_to(mount["ContainerPath"])
    (local_home / "cache").mkdir(parents=True, exist_ok=True)
    (cache_root() / "warp").mkdir(parents=True, exist_ok=True)
    if not (local_home / "cache" / "warp").exists():
        (local_home / "cache" / "warp").symlink_to(cache_root() / "warp", target_is_directory=True)


def _wait_for(endpoint: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("moto server did not start within 60 s")
