"""The local backend: jobs run on this machine, each in ``$WORKBENCH_HOME/runs/<job-id>/``.

``submit`` writes the spec and a SUBMITTED status, then starts ``python -m workbench.runner`` detached (its own
session), so the job survives the notebook kernel or CLI that started it. The runner writes ``status.json``
atomically; ``LocalJob`` reads it (a file that is not a job status is a :class:`StatusFileError`), and marks the
job FAILED when the runner died without reporting, in memory where the file cannot be written (a full disk, a
read-only home). ``list_jobs`` lists a run directory it cannot read as FAILED with the reason, next to the others.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from workbench.backends.base import Backend, Job, LogReader
from workbench.errors import JobNotFoundError, SettingError, SpecError, StatusFileError, WorkbenchError
from workbench.runner import commands
from workbench.runner.context import no_space, reserve_path
from workbench.runner.inputs.custom_env import list_package_tasks
from workbench.runner.process import group_alive
from workbench.runner.slots import Ticket, enqueue
from workbench.runner.warm import client as warmstart
from workbench.spec import paths
from workbench.spec import settings as defaults
from workbench.spec.assets import check_offline
from workbench.spec.document import DEFAULT_TASK, FieldError, JobSpec, check_job_id, is_job_id, parse_spec
from workbench.spec.status import JobState, JobStatus, Progress
from workbench.transport.atomic import write_json_atomic

SPEC_FILE = "spec.json"
STATUS_FILE = "status.json"
MAX_STATUS_BYTES = 1 << 20
"""A status file is about 1 KiB; a larger one is not the runner's."""
PID_MAX = 1 << 22
"""Linux's largest process id (``PID_MAX_LIMIT``): a status naming another is not the runner's."""
_RUNNERS: dict[str, subprocess.Popen] = {}
"""Runner processes started by this process, polled so that finished ones do not linger as zombies."""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_pid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 < value <= PID_MAX


STATUS_SHAPE = {
    "job_id": (lambda v: isinstance(v, str), "a string"),
    "state": (lambda v: isinstance(v, str) and v in JobState.__members__, f"one of {', '.join(JobState.__members__)}"),
    "reason": (lambda v: isinstance(v, str), "a string"),
    "heartbeat_at": (lambda v: v is None or _is_number(v), "a time or null"),
    "updated_at": (_is_number, "a time"),
    "progress": (lambda v: isinstance(v, dict), "an object"),
    "output_uri": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "details": (lambda v: isinstance(v, dict), "an object"),
}
"""What each field of a status file must be (``job_id`` and ``state`` must be there; the others may be missing)."""
DETAILS_SHAPE = {
    "runner_pid": (_is_pid, f"a process id (2 to {PID_MAX})"),
    "child_pgid": (_is_pid, f"a process id (2 to {PID_MAX})"),
    "submitted_at": (_is_number, "a time"),
    "started_at": (_is_number, "a time"),
}
"""The details that the backend acts on (signals, durations); the others are shown as they are."""
PROGRESS_SHAPE = {field.name: (lambda v: v is None or _is_number(v), "a number or null") for field in fields(Progress)}


def status_problem(doc: Any) -> str | None:
    """What makes ``doc`` (a parsed status file) not a job status, or None: its shape is checked before anything
    reads it, since the backend signals the process ids it names and the widgets compute with its times."""
    if not isinstance(doc, dict):
        return f"must be a JSON object, not {type(doc).__name__}"
    if missing := [key for key in ("job_id", "state") if key not in doc]:
        return f"{' and '.join(missing)} missing"
    for section, shape, prefix in ((doc, STATUS_SHAPE, ""), (doc.get("details", {}), DETAILS_SHAPE, "details."),
                                   (doc.get("progress", {}), PROGRESS_SHAPE, "progress.")):
        for key, (check, allowed) in shape.items():
            if key in section and not check(section[key]):
                return f"{prefix}{key} must be {allowed}, not {section[key]!r:.60}"
        if prefix == "progress." and (unknown := sorted(set(section) - set(shape))):
            return f"progress has fields that a job's progress does not: {', '.join(unknown)}"
    return None


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
            return parse_spec(path.read_bytes())
        except OSError as exc:
            raise WorkbenchError(f"cannot read the spec of job {self.job_id} at {path}: {exc.strerror}") from None

    def _read_status(self) -> JobStatus:
        """The status file as a JobStatus; a StatusFileError where it is missing, truncated or not a status."""
        path = self.status_path
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_STATUS_BYTES + 1)
        except OSError as exc:
            raise StatusFileError(f"cannot read the status of job {self.job_id} at {path}: {exc.strerror}") from None
        try:
            doc = json.loads(data) if len(data) <= MAX_STATUS_BYTES else None
        except (ValueError, RecursionError) as exc:
            problem: str | None = f"not JSON ({exc})" if isinstance(exc, ValueError) else "nested too deeply"
        else:
            problem = status_problem(doc) if doc is not None else f"larger than {MAX_STATUS_BYTES} bytes"
        if problem is None and doc["job_id"] != self.job_id:
            problem = f"it names job {doc['job_id']!r:.60}, not the job of its directory"
        if problem is not None:
            raise StatusFileError(f"the status of job {self.job_id} at {path} is not a job status: {problem}")
        return self._with_submission_time(JobStatus.from_dict(doc))

    def _with_submission_time(self, status: JobStatus) -> JobStatus:
        """The status with ``submitted_at`` in its details: when the run directory's spec was written."""
        if "submitted_at" in status.details:
            return status
        return replace(status, details={**status.details, "submitted_at": submission_time(self.run_dir)})

    def status(self) -> JobStatus:
        if not self.run_dir.is_dir():
            return JobStatus(self.job_id, JobState.FAILED, f"its run directory {self.run_dir} was deleted")
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
        """The runner's pid: from its status once it published one, else from the file ``submit`` wrote."""
        if "runner_pid" in status.details:
            return status.details["runner_pid"]
        pid_file = self.run_dir / "runner.pid"
        try:
            text = pid_file.read_text().strip()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StatusFileError(f"cannot read {pid_file}: {exc}") from None
        if not (text.isdecimal() and _is_pid(int(text))):
            raise StatusFileError(f"{pid_file} does not hold a process id: {text!r:.60}")
        return int(text)

    def _mark(self, status: JobStatus, state: JobState, reason: str) -> JobStatus:
        """The job's end, decided here (its runner is gone, and the disk space it held with it): recorded where the
        status file can be written, and returned either way, so a full disk or a read-only home never keeps a job
        from ending."""
        final = replace(status, state=state, reason=reason, updated_at=time.time())
        if not self.run_dir.is_dir():
            return final
        try:
            reserve_path(self.run_dir).unlink(missing_ok=True)
            write_json_atomic(self.status_path, final.to_dict())
        except OSError as exc:
            return replace(final, reason=f"{reason} (not recorded in {self.status_path}: {exc.strerror})")
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
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


class LocalBackend(Backend):
    """Runs jobs on this machine; ``max_concurrent`` jobs at a time, the rest wait queued (SUBMITTED) and start in
    the order they were submitted.

    With ``warm_start`` (``WORKBENCH_WARM_START``, on by default) a job's child is forked from a resident process
    that has Isaac Lab imported already (``workbench.runner.warm.server``); the first job starts that process.
    Every setting is checked here (``workbench.spec.settings``), so a job never starts with one that is not allowed.
    """

    name = "local"

    def __init__(
        self,
        max_concurrent: int | None = None,
        heartbeat_interval: float | None = None,
        heartbeat_timeout: float | None = None,
        stop_grace: float | None = None,
        assets: str | None = None,
        warm_start: bool | None = None,
    ) -> None:
        self.max_concurrent = defaults.count_setting("WORKBENCH_MAX_CONCURRENT", defaults.MAX_CONCURRENT) if (
            max_concurrent is None) else defaults.check_count("max_concurrent", max_concurrent)
        self.timings = defaults.job_timings(os.environ, heartbeat_interval=heartbeat_interval,
                                            heartbeat_timeout=heartbeat_timeout, stop_grace=stop_grace)
        self.heartbeat_interval = self.timings.heartbeat_interval
        self.heartbeat_timeout = self.timings.heartbeat_timeout
        self.stop_grace = self.timings.stop_grace
        self.assets = assets or defaults.assets_setting()
        self.warm_start = defaults.on_off_setting("WORKBENCH_WARM_START", "on") if warm_start is None else warm_start
        self.warm_idle_s = warmstart.idle_setting()

    def submit(self, spec: JobSpec) -> LocalJob:
        """Start a job in a new run directory, which appears whole (spec, status, log folder) or not at all.

        A core task the offline asset root does not serve, with ``WORKBENCH_ASSETS=offline``, is a SpecError here:
        nothing starts."""
        if spec.num_nodes > 1:
            raise SpecError([FieldError("computeConfig.numNodes", f"must be 1 on the local backend, got "
                                        f"{spec.num_nodes}: multi-node training runs on the aws backend")])
        check_offline(spec, self.assets)
        job_id = str(uuid.uuid4())
        home = _home()
        run_dir = paths.run_dir(job_id)
        staged = run_dir.with_name(f".{job_id}.staged")
        try:
            (staged / "logs").mkdir(parents=True)
            (staged / SPEC_FILE).write_text(spec.to_json())
            write_json_atomic(staged / STATUS_FILE, JobStatus(job_id, JobState.SUBMITTED, "submitted").to_dict())
            staged.rename(run_dir)
            ticket = enqueue(home / "slots", job_id)
        except OSError as exc:
            for directory in (staged, run_dir):
                shutil.rmtree(directory, ignore_errors=True)
            raise _home_error(exc, home) from None
        try:
            process = self._start_runner(job_id, run_dir, ticket)
        except OSError as exc:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise WorkbenchError(f"cannot start a new job's runner ({exc.strerror}); nothing was submitted") from None
        finally:
            os.close(ticket.fd)
        _RUNNERS[job_id] = process
        try:
            (run_dir / "runner.pid").write_text(str(process.pid))
        except OSError:
            pass  # the runner's first status names its pid; the file only covers the moments before it
        return self._job(job_id)

    def _start_runner(self, job_id: str, run_dir: Path, ticket: Ticket) -> subprocess.Popen:
        """``python -m workbench.runner`` for the job, detached, with the checked settings and the queue ticket."""
        home = paths.workbench_home()
        env = dict(os.environ)
        env.update({name: str(getattr(self.timings, field)) for field, name in defaults.TIMING_VARIABLES.items()})
        env.update({
            "WORKBENCH_ASSETS": self.assets,
            "WORKBENCH_MAX_CONCURRENT": str(self.max_concurrent),
            "WORKBENCH_SLOTS_DIR": str(home / "slots"),
            "WORKBENCH_HOME": str(home),
            "WORKBENCH_WARM_START": "on" if self.warm_start else "off",
            "WORKBENCH_WARM_IDLE_S": str(self.warm_idle_s),
        })
        status_path = run_dir / STATUS_FILE
        with (run_dir / "logs" / "runner.err").open("wb") as errors:
            return subprocess.Popen(
                [sys.executable, "-m", "workbench.runner", "--spec", str(run_dir / SPEC_FILE), "--job-id", job_id,
                 "--work-dir", str(run_dir), "--channel", f"file://{status_path}",
                 "--queue-ticket", str(ticket.path), "--queue-ticket-fd", str(ticket.fd)],
                cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                start_new_session=True, pass_fds=(ticket.fd,),
            )

    def _job(self, job_id: str) -> LocalJob:
        return LocalJob(job_id, paths.run_dir(job_id), self.heartbeat_timeout, self.stop_grace)

    def job(self, job_id: str) -> LocalJob:
        check_job_id(job_id)
        _home()
        if not paths.run_dir(job_id).is_dir():
            raise JobNotFoundError(f"no local job {job_id!r} under {paths.runs_dir()}")
        return self._job(job_id)

    def list_jobs(self) -> list[JobStatus]:
        """Every run directory's job, newest first. One that cannot be read is listed FAILED with the reason, so
        that one bad directory neither hides the others nor breaks the listing."""
        runs = _home() / "runs"
        try:
            directories = [d for d in runs.iterdir() if not d.name.startswith(".") and d.is_dir()]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _home_error(exc, runs) from None
        listed = [self._listed(directory) for directory in directories]
        return [status for _, status in sorted(listed, key=lambda pair: pair[0], reverse=True)]

    def _listed(self, run_dir: Path) -> tuple[float, JobStatus]:
        """A run directory's status with the time to sort it by."""
        try:
            if not is_job_id(run_dir.name):
                raise StatusFileError("the directory's name is not a job id")
            status = LocalJob(run_dir.name, run_dir, self.heartbeat_timeout, self.stop_grace).status()
        except WorkbenchError as exc:
            return submission_time(run_dir), JobStatus(run_dir.name, JobState.FAILED, f"unreadable: {exc}")
        return status.details["submitted_at"], status


def submission_time(run_dir: Path) -> float:
    """When a job was submitted: its spec's time (written once, by ``submit``), else its run directory's."""
    for path in (run_dir / SPEC_FILE, run_dir):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return 0.0


def _home() -> Path:
    """The workbench home; a SettingError where ``WORKBENCH_HOME`` names something other than a directory (a
    home that does not exist yet is made by the first job)."""
    home = paths.workbench_home()
    try:
        is_directory = stat.S_ISDIR(home.stat().st_mode)
    except FileNotFoundError:
        return home
    except OSError as exc:
        raise _home_error(exc, home) from None
    if not is_directory:
        raise SettingError(f"WORKBENCH_HOME must be a directory, but {home} is not one")
    return home


def _home_error(exc: OSError, path: Path) -> WorkbenchError:
    """What an OSError under the workbench home means: a full disk, or a home that cannot serve (a setting)."""
    if no_space(exc):
        return WorkbenchError(f"no space left on {path}; nothing was submitted")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return SettingError(f"WORKBENCH_HOME must be a directory, but {path} is not one (or lies under a file)")
    return SettingError(f"WORKBENCH_HOME {paths.workbench_home()} cannot be written ({exc.strerror}); "
                        "set WORKBENCH_HOME to a writable directory")


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
        extra = commands.job_environment(DEFAULT_TASK, defaults.assets_setting())
        env = commands.child_environment({**os.environ, "WORKBENCH_HOME": str(self.home)}, extra, [])
        process = warmstart.start(self.endpoint, env, warmstart.idle_setting())
        return warmstart.wait_ready(self.endpoint, timeout, process)


__all__ = ["LocalBackend", "LocalJob", "FileLogReader", "WarmProcess", "list_package_tasks"]
