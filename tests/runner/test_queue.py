"""The local queue is first in first out: queued jobs take the slot in the order they were submitted, and a dead
runner's place in the queue does not hold up the others.

Real runners in a private home: the test holds the home's only slot while five jobs queue behind it, then frees it.
Each job is an evaluation of a job that has no checkpoint, so it takes the slot, fails within a second and
frees it for the next.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

import pytest

from workbench.backends.local import LocalBackend, LocalJob
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

NO_CHECKPOINT = {"trainingConfig": {"mode": "evaluate", "task": "Isaac-Cartpole-Direct", "numEnvs": 1,
                                    "device": "cpu", "policy": "00000000-0000-4000-8000-000000000000"}}


def _wait_queued(jobs: list[LocalJob], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all(job.status().reason.startswith("queued") for job in jobs):
        assert time.monotonic() < deadline, [job.status() for job in jobs]
        time.sleep(0.2)


def test_queued_jobs_start_in_submission_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    (tmp_path / "slots").mkdir()
    slot = os.open(tmp_path / "slots" / "slot-0.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(slot, fcntl.LOCK_EX)
    backend = LocalBackend(max_concurrent=1, warm_start=False)
    jobs = [backend.submit(parse_spec(NO_CHECKPOINT)) for _ in range(5)]
    _wait_queued(jobs)
    os.kill(jobs[1].status().details["runner_pid"], signal.SIGKILL)
    os.close(slot)
    ends = {job.job_id: job.wait(timeout=120, poll_interval=0.2) for job in jobs}
    assert ends[jobs[1].job_id].reason == "the runner process ended without reporting a result"
    served = [job for job in jobs if job is not jobs[1]]
    assert all(ends[job.job_id].state is JobState.FAILED and "no checkpoints" in ends[job.job_id].reason
               for job in served), ends
    order = sorted(served, key=lambda job: ends[job.job_id].updated_at)
    assert [jobs.index(job) for job in order] == [0, 2, 3, 4]
