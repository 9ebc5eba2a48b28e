"""What one job's runner works with: its settings and the publisher of its status (shared by the job's
supervision and its mode, training or evaluation)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.runner.warm import client as warmstart
from workbench.spec import settings as defaults
from workbench.spec.status import JobState, JobStatus, Progress
from workbench.transport.channels import Channel
from workbench.transport.storage import Storage


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
    warm_start: bool = False
    warm_idle_s: float = warmstart.DEFAULT_IDLE_S
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


class StatusPublisher:
    """Keeps the job's state and progress and publishes them; refuses to publish after the final state."""

    def __init__(self, settings: RunnerSettings) -> None:
        self.job_id = settings.job_id
        self.channel = settings.channel
        self.state = JobState.SUBMITTED
        self.progress = Progress()
        self.heartbeat_at: float | None = None
        self.details: dict = {"runner_pid": os.getpid()}
        self._lock = threading.Lock()

    def publish(self, state: JobState | None = None, reason: str = "", heartbeat: bool = False,
                output_uri: str | None = None) -> JobStatus | None:
        with self._lock:
            if self.state.is_terminal:
                return None
            if state is not None:
                self.state = state
            if heartbeat:
                self.heartbeat_at = time.time()
            status = JobStatus(
                job_id=self.job_id, state=self.state, reason=reason, heartbeat_at=self.heartbeat_at,
                progress=self.progress, output_uri=output_uri, details=dict(self.details),
            )
            self.channel.publish(status, heartbeat=heartbeat)
            return status

    def update_progress(self, progress: Progress) -> None:
        with self._lock:
            self.progress = self.progress.merged(progress)
