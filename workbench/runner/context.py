"""What one job's runner works with: its settings, its work directory, the publisher of its status (shared by the
job's supervision and its mode, training or evaluation) and the disk space kept for its last words."""

from __future__ import annotations

import errno
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.runner.slots import Ticket
from workbench.runner.warm import client as warmstart
from workbench.spec import settings as defaults
from workbench.spec.status import JobState, JobStatus, Progress
from workbench.transport.channels import Channel
from workbench.transport.storage import Storage

RESERVE_BYTES = 1 << 20
"""Disk space held beside the work directory while the job runs, given back to write the final status on a full
disk (a status is about 1 KiB; the rest is for the log's last lines)."""


@dataclass
class RunnerSettings:
    """How the runner runs one job (from ``WORKBENCH_*`` environment variables, see ``__main__``)."""

    job_id: str
    spec_text: str
    work_dir: Path
    channel: Channel
    storage: Storage
    heartbeat_interval: float = defaults.HEARTBEAT_INTERVAL_S
    heartbeat_timeout: float = defaults.HEARTBEAT_TIMEOUT_S
    export_interval: float = defaults.EXPORT_INTERVAL_S
    stop_grace: float = defaults.STOP_GRACE_S
    checkpoint_dir: Path | None = None
    assets: str = defaults.ASSETS
    max_concurrent: int | None = None
    slots_dir: Path | None = None
    queue_ticket: Ticket | None = None
    warm_start: bool = False
    warm_idle_s: float = warmstart.DEFAULT_IDLE_S
    attempt: defaults.Attempt = field(default_factory=defaults.Attempt)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def no_space(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed because the disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class WorkDirectory:
    """The job's work directory, claimed by the runner. Once it is deleted (or replaced), the job has no place
    left: nothing may be written where it was, since that would leave a partial run directory behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None

    def claim(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        found = self.path.stat()
        self._identity = (found.st_dev, found.st_ino)

    def gone(self) -> bool:
        if self._identity is None:
            return False
        try:
            found = self.path.stat()
        except OSError:
            return True
        return (found.st_dev, found.st_ino) != self._identity


class SpaceReserve:
    """:data:`RESERVE_BYTES` held in a hidden file beside the work directory (so it is never uploaded or listed
    as output), released when a write finds the disk full so that the job can still report how it ended."""

    def __init__(self, work_dir: Path) -> None:
        self.path = reserve_path(work_dir)

    def hold(self) -> None:
        """Take the space now; where there is not even that much, the job fails on its first write instead."""
        try:
            with self.path.open("wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, RESERVE_BYTES)
        except OSError:
            self.release()

    def release(self) -> bool:
        """Give the space back; whether there was any to give."""
        try:
            self.path.unlink()
        except OSError:
            return False
        return True


def reserve_path(work_dir: Path) -> Path:
    return work_dir.with_name(f".{work_dir.name}.reserve")


class StatusPublisher:
    """Keeps the job's state and progress and publishes them; refuses to publish after the final state, and
    withholds every status once the work directory is gone (the file channel writes into it)."""

    def __init__(self, settings: RunnerSettings, work_dir: WorkDirectory) -> None:
        self.job_id = settings.job_id
        self.channel = settings.channel
        self.work_dir = work_dir
        self.state = JobState.SUBMITTED
        self.progress = Progress()
        self.heartbeat_at: float | None = None
        self.details: dict = {"runner_pid": os.getpid()}
        self._lock = threading.Lock()

    def publish(self, state: JobState | None = None, reason: str = "", heartbeat: bool = False,
                output_uri: str | None = None) -> JobStatus | None:
        """Publish and return the status; None when it was not published (after the final state, or without a
        work directory). The state changes only once the channel took it, so a failed publish can be retried."""
        with self._lock:
            if self.state.is_terminal or self.work_dir.gone():
                return None
            status = JobStatus(
                job_id=self.job_id, state=state or self.state, reason=reason,
                heartbeat_at=time.time() if heartbeat else self.heartbeat_at, progress=self.progress,
                output_uri=output_uri, details=dict(self.details),
            )
            self.channel.publish(status, heartbeat=heartbeat)
            self.state, self.heartbeat_at = status.state, status.heartbeat_at
            return status

    def update_progress(self, progress: Progress) -> None:
        with self._lock:
            self.progress = self.progress.merged(progress)
