"""The local backend: jobs run on this machine, each in ``$WORKBENCH_HOME/runs/<job-id>/``.

``submit`` writes the spec and a SUBMITTED status, then starts ``python -m workbench.runner`` detached (its own
session), so the job survives the notebook kernel or CLI that started it. The runner writes ``status.json``
atomically; ``LocalJob`` reads it, and marks the job FAILED when the runner died without reporting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from workbench.backends.base import Backend, Job, LogReader
from workbench.errors import JobNotFoundError, WorkbenchError
from workbench.runner import commands
from workbench.runner.inputs.custom_env import list_package_tasks
from workbench.runner.process import group_alive
from workbench.runner.warm import client as warmstart
from workbench.spec import paths
from workbench.spec import settings as defaults
from workbench.spec.document import DEFAULT_TASK, JobSpec, check_job_id, parse_spec
from workbench.spec.settings import on_off_setting
from workbench.spec.status import JobState, JobStatus
from workbench.transport.atomic import write_json_atomic

SPEC_FILE = "spec.json"
STATUS_FILE = "status.json"
_RUNNERS: dict[str, subprocess.Popen] = {}
"""Runner processes started by this process, polled so that finished ones do not linger as zombies."""


class FileLogReader(LogReader):
    """Reads a log file from where the last read stopped; ``pending`` is the last line while it has no newline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.position = 0
        self.pending = ""

    def read(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("r", encoding="utf-8", errors="replace") as handle:
            handle.seek(self.position)
            self.pending += handle.read()
            self.position = handle.tell()
        *lines, self.pending = self.pending.split("\n")
        return lines


class LocalJob(Job):
    """A job in a local run directory."""

    def __init__(self, job_id: str, run_dir: Path, heartbeat_timeout: float, stop_grace: float) -> None:
        super().__init__(job_id)
        self.run_dir = run_dir
        self.heartbeat_timeout = heartbeat_timeout
        self.stop_grace = stop_grace

    @property
    def status_path(self) -> Path:
        return self.run_dir / STATUS_FILE

    @property
    def log_path(self) -> Path:
        return self.run_dir / "logs" / "job.log"

    def spec(self) -> JobSpec:
        path = self.run_dir / SPEC_FILE
        try:
            return parse_spec(path.read_text())
        except OSError as exc:
            raise WorkbenchError(f"cannot read the spec of job {self.job_id} at {path}: {exc.strerror}") from None

    def _read_status(self) -> JobStatus:
        for _ in range(50):
            try:
                status = JobStatus.from_dict(json.loads(self.status_path.read_text()))
            except (FileNotFoundError, ValueError):
                time.sleep(0.02)
                continue
            return self._with_submission_time(status)
        raise WorkbenchError(f"cannot read the status of job {self.job_id} at {self.status_path}")

    def _with_submission_time(self, status: JobStatus) -> JobStatus:
        """The status with ``submitted_at`` in its details: when the run directory's spec was written."""
        if "submitted_at" in status.details:
            return status
        try:
            submitted = (self.run_dir / SPEC_FILE).stat().st_mtime
        except OSError:
            return status
        return replace(status, details={**status.details, "submitted_at": submitted})

    def status(self) -> JobStatus:
        status = self._read_status()
        if status.state.is_terminal:
            return status
        pid = self._runner_pid(status)
        if pid is not None and not _runner_alive(pid):
            time.sleep(0.2)
            status = self._read_status()
            if not status.state.is_terminal:
                return self._mark(status, JobState.FAILED, "the runner process ended without reporting a result")
        age = status.heartbeat_age
        if status.state is JobState.RUNNING and age is not None and age > self.heartbeat_timeout + 60:
            self._kill(status)
            return self._mark(status, JobState.FAILED, f"no heartbeat for {age:.0f} s; the job was stopped")
        return status

    def _runner_pid(self, status: JobStatus) -> int | None:
        pid = status.details.get("runner_pid")
        pid_file = self.run_dir / "runner.pid"
        if pid is None and pid_file.exists():
            pid = pid_file.read_text().strip() or None
        return int(pid) if pid is not None else None

    def _mark(self, status: JobStatus, state: JobState, reason: str) -> JobStatus:
        final = JobStatus(status.job_id, state, reason, status.heartbeat_at, time.time(), status.progress,
                          status.output_uri, status.details)
        write_json_atomic(self.status_path, final.to_dict())
        return final

    def logs(self, follow: bool = False, poll_interval: float = 0.1) -> Iterator[str]:
        reader = self.log_reader()
        while True:
            ended = not follow or self.status().state.is_terminal
            yield from reader.read()
            if ended:
                if reader.pending:
                    yield reader.pending
                return
            time.sleep(poll_interval)

    def log_reader(self) -> FileLogReader:
        return FileLogReader(self.log_path)

    def outputs(self) -> Path:
        return self.run_dir

    def cancel(self, reason: str = "cancelled by the user") -> JobStatus:
        status = self.status()
        if status.state.is_terminal:
            return status
        runner_pid = self._runner_pid(status)
        if runner_pid is not None:
            _signal(runner_pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace + 10
        while time.monotonic() < deadline:
            status = self._read_status()
            if status.state.is_terminal and not self._processes_alive(status):
                break
            time.sleep(0.2)
        status = self._read_status()
        self._kill(status)
        if status.state is JobState.CANCELLED:
            return status
        if status.state.is_terminal:
            return status
        return self._mark(status, JobState.CANCELLED, reason)

    def _processes_alive(self, status: JobStatus) -> bool:
        pids = [self._runner_pid(status), status.details.get("child_pgid")]
        return any(pid is not None and group_alive(int(pid)) for pid in pids)

    def _kill(self, status: JobStatus) -> None:
        for pid in (status.details.get("child_pgid"), self._runner_pid(status)):
            if pid is not None:
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


class LocalBackend(Backend):
    """Runs jobs on this machine; ``max_concurrent`` jobs at a time, the rest wait queued (SUBMITTED).

    With ``warm_start`` (``WORKBENCH_WARM_START``, on by default) a job's child is forked from a resident process
    that has Isaac Lab imported already (``workbench.runner.warm.server``); the first job starts that process.
    """

    name = "local"

    def __init__(
        self,
        max_concurrent: int | None = None,
        heartbeat_interval: float | None = None,
        heartbeat_timeout: float | None = None,
        stop_grace: float = defaults.STOP_GRACE_S,
        assets: str | None = None,
        warm_start: bool | None = None,
    ) -> None:
        self.max_concurrent = max_concurrent or int(os.environ.get("WORKBENCH_MAX_CONCURRENT", 1))
        self.heartbeat_interval = heartbeat_interval or float(
            os.environ.get("WORKBENCH_HEARTBEAT_INTERVAL", defaults.HEARTBEAT_INTERVAL_S))
        self.heartbeat_timeout = heartbeat_timeout or float(
            os.environ.get("WORKBENCH_HEARTBEAT_TIMEOUT", defaults.HEARTBEAT_TIMEOUT_S))
        self.stop_grace = stop_grace
        self.assets = assets or os.environ.get("WORKBENCH_ASSETS", defaults.ASSETS)
        self.warm_start = on_off_setting("WORKBENCH_WARM_START", "on") if warm_start is None else warm_start
        self.warm_idle_s = warmstart.idle_setting()

    def submit(self, spec: JobSpec) -> LocalJob:
        job_id = str(uuid.uuid4())
        run_dir = paths.run_dir(job_id)
        (run_dir / "logs").mkdir(parents=True)
        spec_path = run_dir / SPEC_FILE
        spec_path.write_text(spec.to_json())
        env = dict(os.environ)
        env.update({
            "WORKBENCH_HEARTBEAT_INTERVAL": str(self.heartbeat_interval),
            "WORKBENCH_HEARTBEAT_TIMEOUT": str(self.heartbeat_timeout),
            "WORKBENCH_STOP_GRACE": str(self.stop_grace),
            "WORKBENCH_ASSETS": self.assets,
            "WORKBENCH_MAX_CONCURRENT": str(self.max_concurrent),
            "WORKBENCH_SLOTS_DIR": str(paths.workbench_home() / "slots"),
            "WORKBENCH_HOME": str(paths.workbench_home()),
            "WORKBENCH_WARM_START": "on" if self.warm_start else "off",
            "WORKBENCH_WARM_IDLE_S": str(self.warm_idle_s),
        })
        status_path = run_dir / STATUS_FILE
        write_json_atomic(status_path, JobStatus(job_id, JobState.SUBMITTED, "submitted").to_dict())
        with (run_dir / "logs" / "runner.err").open("wb") as errors:
            process = subprocess.Popen(
                [sys.executable, "-m", "workbench.runner", "--spec", str(spec_path), "--job-id", job_id,
                 "--work-dir", str(run_dir), "--channel", f"file://{status_path}"],
                cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                start_new_session=True,
            )
        _RUNNERS[job_id] = process
        (run_dir / "runner.pid").write_text(str(process.pid))
        return self._job(job_id)

    def _job(self, job_id: str) -> LocalJob:
        return LocalJob(job_id, paths.run_dir(job_id), self.heartbeat_timeout, self.stop_grace)

    def job(self, job_id: str) -> LocalJob:
        check_job_id(job_id)
        if not (paths.run_dir(job_id) / STATUS_FILE).exists():
            raise JobNotFoundError(f"no local job {job_id!r} under {paths.runs_dir()}")
        return self._job(job_id)

    def list_jobs(self) -> list[JobStatus]:
        runs = paths.runs_dir()
        if not runs.exists():
            return []
        jobs = [self._job(d.name) for d in runs.iterdir() if (d / STATUS_FILE).exists()]
        statuses = [job.status() for job in jobs]
        created = {job.job_id: (job.run_dir / SPEC_FILE).stat().st_mtime for job in jobs}
        return sorted(statuses, key=lambda s: created[s.job_id], reverse=True)


def _runner_alive(pid: int) -> bool:
    for job_id, process in list(_RUNNERS.items()):
        if process.poll() is not None:
            del _RUNNERS[job_id]
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
    except OSError:
        return group_alive(pid)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class WarmProcess:
    """The warm process of this home (``workbench warm``): started with a job's environment, asked, stopped."""

    def __init__(self) -> None:
        self.home = paths.workbench_home()
        self.endpoint = warmstart.Endpoint.for_home(self.home)

    def status(self) -> dict | None:
        return warmstart.status(self.endpoint)

    def stop(self) -> dict | None:
        return warmstart.stop(self.endpoint)

    def start(self, timeout: float) -> dict | None:
        """Start it (unless it runs) and wait until it is ready; None when it did not become ready in time."""
        extra = commands.job_environment(DEFAULT_TASK, os.environ.get("WORKBENCH_ASSETS", defaults.ASSETS))
        env = commands.child_environment({**os.environ, "WORKBENCH_HOME": str(self.home)}, extra, [])
        process = warmstart.start(self.endpoint, env, warmstart.idle_setting())
        return warmstart.wait_ready(self.endpoint, timeout, process)


__all__ = ["LocalBackend", "LocalJob", "FileLogReader", "WarmProcess", "list_package_tasks"]
