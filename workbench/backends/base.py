"""The backend interface: a backend submits a :class:`JobSpec` and hands back a :class:`Job` to follow it."""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator
from pathlib import Path

from workbench.errors import JobFailedError
from workbench.spec.document import JobSpec
from workbench.spec.status import JobState, JobStatus


class LogReader(abc.ABC):
    """Reads a job's log incrementally: each ``read()`` returns only the complete lines written since the last one,
    so a poller (curves, pruning) never re-reads the whole log (on AWS the whole CloudWatch stream)."""

    @abc.abstractmethod
    def read(self) -> list[str]:
        """The new complete lines, oldest first."""


class Job(abc.ABC):
    """A submitted job, on whichever backend runs it."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    @abc.abstractmethod
    def spec(self) -> JobSpec:
        """The job's validated spec, as it was submitted (raises a WorkbenchError where it cannot be read)."""

    @abc.abstractmethod
    def status(self) -> JobStatus:
        """The current state, reason, heartbeat and progress."""

    @abc.abstractmethod
    def logs(self, follow: bool = False, poll_interval: float = 0.5) -> Iterator[str]:
        """The job log line by line; with ``follow`` it keeps yielding until the job ends."""

    @abc.abstractmethod
    def log_reader(self) -> LogReader:
        """A new reader of the job's log, starting at its beginning."""

    @abc.abstractmethod
    def outputs(self) -> Path:
        """A local directory holding the job's outputs in the output layout."""

    @abc.abstractmethod
    def cancel(self, reason: str = "cancelled by the user") -> JobStatus:
        """Stop the job (and everything it started) and mark it CANCELLED."""

    def wait(self, timeout: float | None = None, poll_interval: float = 1.0, raise_on_failure: bool = False) -> JobStatus:
        """Block until the job ends (or ``timeout`` seconds pass) and return its last status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if status.state.is_terminal:
                if raise_on_failure and status.state is not JobState.SUCCEEDED:
                    raise JobFailedError(status)
                return status
            if deadline is not None and time.monotonic() >= deadline:
                return status
            time.sleep(poll_interval)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.job_id!r})"


class Backend(abc.ABC):
    """Where jobs run: ``local`` (this machine) or ``aws`` (Step Functions + Batch)."""

    name: str = ""

    @abc.abstractmethod
    def submit(self, spec: JobSpec) -> Job:
        """Start a job for a validated spec; returns at once."""

    @abc.abstractmethod
    def job(self, job_id: str) -> Job:
        """A handle on an existing job (raises :class:`workbench.errors.JobNotFoundError`)."""

    @abc.abstractmethod
    def list_jobs(self) -> list[JobStatus]:
        """Every known job's status, newest first."""
