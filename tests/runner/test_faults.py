"""Real faults while a real job runs: every job reaches a final state with a reason, and its child is stopped.

Each test starts a tiny CPU training (fresh child, no warm process) and strikes within seconds of its child's
start: the disk fills, the run directory is deleted, the runner is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.backends.run_dirs import TRAIN_SPEC, fill, kill_group, tmpfs, wait_running
from tests.helpers import run_cli
from tests.runner.test_warmstart import wait_gone
from workbench.backends.local import LocalBackend
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

pytestmark = pytest.mark.slow


def test_a_full_disk_fails_the_job_with_the_path_and_stops_its_child(tmp_path: Path, workbench_home: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with tmpfs(tmp_path / "home", size_kib=8192) as home:
        (home / "cache").symlink_to(workbench_home / "cache", target_is_directory=True)
        monkeypatch.setenv("WORKBENCH_HOME", str(home))
        job = LocalBackend(warm_start=False, stop_grace=2).submit(parse_spec(TRAIN_SPEC))
        running = wait_running(job)
        pgid, runner = running.details["child_pgid"], running.details["runner_pid"]
        try:
            fill(home)
            status = job.wait(timeout=60, poll_interval=0.2)
            assert status.state is JobState.FAILED, status
            assert status.reason.startswith(f"no space left on {job.run_dir}"), status.reason
            assert wait_gone(pgid, 5) and wait_gone(runner, 5), "the child or the runner outlived the job"
            assert json.loads((job.run_dir / "status.json").read_text())["state"] == "FAILED", "not recorded"
            listing = run_cli("list")
            assert listing.returncode == 0 and f"{job.job_id}  FAILED" in listing.stdout, listing.stderr
        finally:
            kill_group(pgid)
            kill_group(runner)


def test_a_run_directory_deleted_while_its_job_runs_is_not_recreated(workbench_home: Path) -> None:
    backend = LocalBackend(warm_start=False, stop_grace=2)
    job = backend.submit(parse_spec(TRAIN_SPEC))
    running = wait_running(job)
    pgid, runner = running.details["child_pgid"], running.details["runner_pid"]
    try:
        while job.run_dir.exists():
            shutil.rmtree(job.run_dir, ignore_errors=True)
        assert wait_gone(pgid, 15) and wait_gone(runner, 15), "the job went on without its run directory"
        assert not job.run_dir.exists(), f"recreated: {sorted(p.name for p in job.run_dir.rglob('*'))}"
        assert not list(job.run_dir.parent.glob(f".{job.job_id}*")), "the disk reserve was left behind"
        status = job.status()
        assert status.state is JobState.FAILED and "was deleted" in status.reason
        assert job.job_id not in {listed.job_id for listed in backend.list_jobs()}
    finally:
        kill_group(pgid)
        kill_group(runner)


def test_a_sigkilled_runner_takes_its_child_along_and_the_job_fails(workbench_home: Path) -> None:
    job = LocalBackend(warm_start=False).submit(parse_spec(TRAIN_SPEC))
    running = wait_running(job)
    pgid = running.details["child_pgid"]
    try:
        os.kill(running.details["runner_pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        assert wait_gone(pgid, 10), "the child trains on without its runner"
        assert time.monotonic() - killed_at < 5
        status = job.status()
        assert status.state is JobState.FAILED
        assert status.reason == "the runner process ended without reporting a result"
        assert not list(job.run_dir.parent.glob(f".{job.job_id}*")), "the dead runner's disk reserve was left behind"
    finally:
        kill_group(pgid)
