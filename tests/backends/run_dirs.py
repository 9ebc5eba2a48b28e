"""Real faults for the local backend's tests: tmpfs mounts (a full disk, a read-only home), run directories made
on disk the way a broken one looks, and waiting for a real job to run (shared by tests/backends, tests/runner
and tests/test_cli.py)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from workbench.backends.local import SPEC_FILE, STATUS_FILE, LocalJob
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState, JobStatus

TRAIN_SPEC = {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 100000,
                                 "device": "cpu"}}
"""A real tiny training that runs until it is stopped (the tests stop it within seconds of its start)."""


@contextmanager
def tmpfs(path: Path, size_kib: int, read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of ``size_kib`` KiB mounted at ``path`` for the block; skips the test where mounting is not
    allowed (not root, no CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size_kib}k" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {path}: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system has no byte left; returns the file."""
    path = directory / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for block in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return path


def write_run(runs: Path, name: str, status: bytes | dict | None, spec: bool = True) -> Path:
    """A run directory ``runs/name`` holding ``status`` (bytes as they are, a dict as JSON, None: no status file)
    and a spec unless ``spec`` is False."""
    run_dir = runs / name
    (run_dir / "logs").mkdir(parents=True)
    if spec:
        (run_dir / SPEC_FILE).write_text(parse_spec(TRAIN_SPEC).to_json())
    if status is not None:
        (run_dir / STATUS_FILE).write_bytes(status if isinstance(status, bytes) else json.dumps(status).encode())
    return run_dir


def finished_status(job_id: str | None = None, **fields: object) -> dict:
    """A SUCCEEDED job's status document, with ``fields`` changed."""
    doc = JobStatus(job_id or str(uuid.uuid4()), JobState.SUCCEEDED, "train finished").to_dict()
    return {**doc, **fields}


def ended_pid() -> int:
    """The pid of a process that has ended and been reaped: a runner that died."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def wait_running(job: LocalJob, timeout: float = 240) -> JobStatus:
    """The job's status once its child runs (RUNNING, with the child's process group in the details)."""
    deadline = time.monotonic() + timeout
    while True:
        status = job.status()
        if status.state is JobState.RUNNING and "child_pgid" in status.details:
            return status
        assert not status.state.is_terminal, status
        assert time.monotonic() < deadline, f"the job never ran: {status}"
        time.sleep(0.2)


def kill_group(pgid: int) -> None:
    """Clean-up after a test whose job may have outlived its assertions."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
