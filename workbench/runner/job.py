"""The job runner: prepare, run the child, watch it, export the output layout, report.

The same code runs a local job (the local backend starts ``python -m workbench.runner`` detached) and a job in the
AWS Batch container. It owns the job: whatever happens (success, non-zero exit, exception, signal, invalid spec,
stalled child, a full disk), exactly one final status reaches the channel, with the reason in words. The one
exception is a work directory deleted while the job runs: the child is stopped and the job fails in the log and
the exit status only, since reporting through the status file would recreate the directory.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from workbench.errors import RunnerError, SpecError
from workbench.outputs import exported
from workbench.outputs.layout import config_file
from workbench.outputs.progress import ProgressParser
from workbench.runner import commands, recovery
from workbench.runner.context import RunnerSettings, SpaceReserve, StatusPublisher, WorkDirectory, no_space
from workbench.runner.inputs.custom_env import CustomEnvironment, install_custom_environment
from workbench.runner.modes import CHILD_DIR, MODES, Mode
from workbench.runner.multinode import WORKER_GRACE_S, mark_training_finished, training_finished, worker_end
from workbench.runner.process import Child, ChildProcess, describe_exit
from workbench.runner.slots import acquire_slot, enqueue
from workbench.runner.warm import client as warmstart
from workbench.spec import paths
from workbench.spec.devices import resolve_device
from workbench.spec.document import JobSpec, parse_spec
from workbench.spec.status import JobState, JobStatus
from workbench.transport.atomic import write_json_atomic
from workbench.transport.storage import fetch_input

log = logging.getLogger("workbench.runner")

class JobRunner:
    """Runs one job end to end; ``run()`` returns the final status."""

    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings
        self.work_dir = settings.work_dir
        self.place = WorkDirectory(settings.work_dir)
        self.reserve = SpaceReserve(settings.work_dir)
        self.publisher = StatusPublisher(settings, self.place)
        self.cancel_reason: str | None = None
        self.child: Child | None = None
        self.mode: Mode | None = None
        self._warm_env: dict[str, str] | None = None
        self._plain_env: dict[str, str] = {}
        self._job_log = None
        self._slot: int | None = None
        self._log_lock = threading.Lock()
        self._log_error: OSError | None = None

    def run(self) -> JobStatus:
        """Run the job to its final status; raises OSError only where even that status cannot be published."""
        self._install_signal_handlers()
        final: JobStatus | None = None
        try:
            self.place.claim()
            self.reserve.hold()
            self._open_log()
            queued = self._wait_for_slot()
            self._check_health()
            if not queued:
                return self._finish(JobState.CANCELLED, self.cancel_reason or "cancelled while queued")
            self.publisher.publish(JobState.STARTING, "preparing the job", heartbeat=True)
            spec = self._parse_spec()
            final = self._run_spec(spec)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the channel
            self._stop_child()  # before the final state, which says that the job's processes ended
            final = self._finish(JobState.FAILED, self._failure_reason(exc))
        finally:
            self._stop_child()
            self.reserve.release()
            self._keep_warm()
        return final or self._finish(JobState.FAILED, "the runner stopped without a result")

    def _failure_reason(self, exc: Exception) -> str:
        """The job's failure reason for ``exc``: a spec or runner error's own words, a full disk's (the reserve is
        given back so that it can be reported), else an error of the runner itself (its traceback to the log)."""
        if isinstance(exc, (SpecError, RunnerError)):
            return str(exc)
        if no_space(exc):
            self.reserve.release()
            where = Path(exc.filename).parent if exc.filename else self.work_dir
            return f"no space left on {where}; the job was stopped"
        self._say(traceback.format_exc())
        return f"internal error in the runner: {exc!r}"

    def _wait_for_slot(self) -> bool:
        """With a concurrency limit, stay SUBMITTED (queued) until this job is first in line and a slot is free;
        False if it was cancelled (or its work directory deleted) meanwhile."""
        settings = self.settings
        if not settings.max_concurrent or settings.slots_dir is None:
            return True
        self.publisher.publish(JobState.SUBMITTED, f"queued: waiting for one of {settings.max_concurrent} job slots")
        ticket = settings.queue_ticket or enqueue(settings.slots_dir, settings.job_id)
        self._slot = acquire_slot(settings.slots_dir, settings.max_concurrent, ticket,
                                  lambda: self.cancel_reason is not None or self.place.gone())
        return self._slot is not None

    def _check_health(self) -> None:
        """Fail the job where its work directory was deleted or its log could not be written (a full disk)."""
        if self.place.gone():
            raise RunnerError(f"the run directory {self.work_dir} was deleted while the job ran; the job was stopped")
        if self._log_error is not None:
            raise self._log_error

    def _stop_child(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.stop(self.settings.stop_grace)

    def _parse_spec(self) -> JobSpec:
        spec = parse_spec(self.settings.spec_text)
        for notice in spec.notices:
            self._say(notice)
        write_json_atomic(self.work_dir / config_file(spec.mode), spec.to_dict())
        return spec

    def _run_spec(self, spec: JobSpec) -> JobStatus:
        device = resolve_device(spec.training["device"])
        env_extra = commands.job_environment(spec.task, self.settings.assets)
        pythonpath: list[str] = []
        custom = self._custom_environment(spec)
        if custom is not None:
            pythonpath.append(str(custom.site_dir))
        child_dir = self.work_dir / CHILD_DIR
        child_dir.mkdir(exist_ok=True)
        self.mode = mode = MODES[spec.mode](spec, self.settings, self.publisher, self._say)
        command = mode.command(device, pythonpath)
        if self.cancel_reason:
            return self._finish(JobState.CANCELLED, self.cancel_reason)
        self._say(f"{spec.mode} {spec.task} with {spec.rl_library} on {device}: {' '.join(command)}")
        env = self._plain_env = commands.child_environment(self.settings.environ, env_extra, pythonpath)
        if mode.launch is not None:
            env = mode.launch.environment(env)
        else:
            self._warm_env = commands.child_environment(self.settings.environ, env_extra, [])
        parser = ProgressParser(spec.rl_library, mode.progress_unit)
        self._check_health()
        code = self._supervise(command, child_dir, env, parser, lambda: mode.export(final=False),
                               may_fork=mode.launch is None)
        self._check_health()
        return self._conclude(spec, code, parser, mode)

    def _custom_environment(self, spec: JobSpec) -> CustomEnvironment | None:
        """Install the spec's custom package for this job only and check that it registers the task."""
        if spec.custom_environment_uri is None:
            return None
        package = fetch_input(spec.custom_environment_uri, self.work_dir / "inputs")
        custom = install_custom_environment(package, self.work_dir)
        custom.require_task(spec.task, spec.rl_library)
        self._say(f"custom environment {package.name} installed; it registers {', '.join(custom.task_ids)}")
        return custom

    def _supervise(self, command: list[str], cwd: Path, env: dict[str, str], parser: ProgressParser,
                   export: Callable[[], None], may_fork: bool, doing: str = "running") -> int:
        """Run the child to its end, heartbeating while it makes progress and calling ``export`` every export
        interval; returns its exit code. ``doing`` is the status reason meanwhile."""
        settings = self.settings

        def on_line(line: str) -> None:
            self._write_log(line)
            update = parser.feed(line)
            if update is not None:
                self.publisher.update_progress(update)

        self.child = self._start_child(command, cwd, env, on_line, may_fork)
        self.publisher.details["child_pgid"] = self.child.pid
        self.publisher.publish(JobState.RUNNING, doing, heartbeat=True)
        last_heartbeat = last_publish = last_export = time.monotonic()
        output_at_heartbeat = self.child.last_output_at
        while (code := self.child.poll()) is None:
            time.sleep(0.2)
            now = time.monotonic()
            if self.cancel_reason:
                self._say(f"stopping the job: {self.cancel_reason}")
                self.child.stop(settings.stop_grace)
                return self.child.poll() or 0
            if now - self.child.last_output_at > settings.heartbeat_timeout:
                raise RunnerError(
                    f"heartbeat timeout: no progress for {settings.heartbeat_timeout:g} s, the job was stopped"
                )
            self._check_health()
            if now - last_heartbeat >= settings.heartbeat_interval and self.child.last_output_at > output_at_heartbeat:
                output_at_heartbeat = self.child.last_output_at
                last_heartbeat = last_publish = now
                self.publisher.publish(reason=doing, heartbeat=True)
            elif now - last_publish >= 1.0:
                last_publish = now
                self.publisher.publish(reason=doing)
            if now - last_export >= settings.export_interval:
                last_export = now
                export()
        self.child.wait_output()
        return code

    def _start_child(self, command: list[str], cwd: Path, env: dict[str, str], on_line: Callable[[str], None],
                     may_fork: bool) -> Child:
        """Fork the child from the warm process where one serves this home and ``may_fork`` (no torchrun), else
        start a fresh process."""
        if self.settings.warm_start and may_fork:
            try:
                child = warmstart.fork_child(self._endpoint(), command, cwd, env, on_line)
            except warmstart.WarmRefused as exc:
                self._say(f"warm start not used ({exc}): starting a fresh process")
            else:
                self._say(f"forked from the warm process as pid {child.pid} (Isaac Lab already imported)")
                return child
        return ChildProcess(command, cwd, env, on_line)

    def _keep_warm(self) -> None:
        """After a local job, start the warm process for the next one (unless it runs already)."""
        if not self.settings.warm_start or self._warm_env is None:
            return
        endpoint = self._endpoint()
        try:
            process = warmstart.start(endpoint, self._warm_env, self.settings.warm_idle_s)
        except OSError as exc:
            self._say(f"could not start the warm process: {exc}")
            return
        if process is not None:
            self._say(f"started a warm process (pid {process.pid}) that keeps Isaac Lab imported for the next job; "
                      f"it exits after {self.settings.warm_idle_s:g} s without one; log: {endpoint.log_path}")

    def _endpoint(self) -> warmstart.Endpoint:
        return warmstart.Endpoint.for_home(paths.workbench_home())

    def _conclude(self, spec: JobSpec, code: int, parser: ProgressParser, mode: Mode) -> JobStatus:
        if mode.launch is not None and not mode.launch.is_main:
            return self._conclude_worker(code, parser)
        if self.cancel_reason:
            mode.keep_partial()
            return self._finish(JobState.CANCELLED, self.cancel_reason)
        if code != 0:
            mode.keep_partial()
            reason = parser.error or f"the {spec.mode} process failed ({describe_exit(code)}); see logs/job.log"
            return self._finish(JobState.FAILED, reason)
        if mode.launch is not None and mode.launch.ctx is not None:
            mark_training_finished(self.settings.checkpoint_dir)
        mode.export(final=True)
        self._follow_up(mode)
        self.settings.storage.upload(self.work_dir)
        return self._finish(JobState.SUCCEEDED, f"{spec.mode} finished", output_uri=self.settings.storage.uri)

    def _follow_up(self, mode: Mode) -> None:
        """Run the mode's follow-up (a training's policy export). Its failure is logged with the reason and leaves
        the job's outcome alone: the training's own outputs are complete without it."""
        command = mode.follow_up()
        if command is None:
            return
        self._say("exporting the policy as ONNX and TorchScript (exported/)")
        parser = ProgressParser(mode.spec.rl_library, None)
        try:
            code = self._supervise(command, self.work_dir / CHILD_DIR, self._plain_env, parser, lambda: None,
                                   may_fork=True, doing="exporting the policy")
        except RunnerError as exc:  # a stalled export; a deleted run directory or a failed log still fail the job
            self._stop_child()
            self._check_health()
            code, parser.error = 1, str(exc)
        if self.cancel_reason:
            self._say(f"policy export stopped ({self.cancel_reason}); the training itself had finished")
            self.cancel_reason = None
        elif code != 0:
            reason = parser.error or f"the export process failed ({describe_exit(code)})"
            self._say(f"policy export failed: {reason}; the training succeeded and its checkpoints are kept")
        shutil.rmtree(self.work_dir / exported.PARTIAL, ignore_errors=True)

    def _conclude_worker(self, code: int, parser: ProgressParser) -> JobStatus:
        """A worker node's end: success once the training it took part in finished, even if it then exited
        non-zero or was stopped (see ``multinode``); failure while the training still ran."""
        late = code != 0 or self.cancel_reason is not None
        wait = WORKER_GRACE_S if code != 0 and not self.cancel_reason else 0.0
        if late and wait:
            self._say(f"the training process exited with code {code}: waiting up to {wait:g} s for the main node "
                      "to mark the training finished")
        finished = late and training_finished(self.settings.checkpoint_dir, wait_s=wait)
        succeeded, reason = worker_end(code, self.cancel_reason, finished)
        if not succeeded and code != 0 and not self.cancel_reason and parser.error:
            reason = f"{reason}: {parser.error}"
        return self._finish(JobState.SUCCEEDED if succeeded else
                            JobState.CANCELLED if self.cancel_reason else JobState.FAILED, reason)

    def _finish(self, state: JobState, reason: str, output_uri: str | None = None) -> JobStatus:
        """Publish the final status (on a full disk once more after giving back the reserve); the status returned
        says how the job ended even where it was not published (see :class:`StatusPublisher`), or where this attempt
        leaves the job's end to the next one (:meth:`_end_held`)."""
        if self._end_held(state, reason):
            return JobStatus(self.settings.job_id, state, reason)
        self._say(f"job {state.value.lower()}: {reason}")
        try:
            status = self.publisher.publish(state, reason, output_uri=output_uri)
        except OSError as exc:
            if not (no_space(exc) and self.reserve.release()):
                raise
            status = self.publisher.publish(state, reason, output_uri=output_uri)
        with self._log_lock:
            if self._job_log is not None:
                try:
                    self._job_log.flush()
                except OSError:
                    pass
        ended = self.publisher.state if self.publisher.state.is_terminal else state
        return status or JobStatus(self.settings.job_id, ended, reason)

    def _end_held(self, state: JobState, reason: str) -> bool:
        """Whether this attempt reports no end: stopped by a signal while AWS Batch may retry it (a spot reclaim),
        the next attempt goes on with the job and reports it (``runner.recovery``). Says so in the log."""
        if state is not JobState.CANCELLED or self.cancel_reason is None or not self.settings.attempt.may_retry:
            return False
        self._say(recovery.held_end(self.settings.attempt, reason, self.publisher.progress.iteration))
        return True

    def _install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            self.cancel_reason = f"cancelled ({signal.Signals(signum).name} received)"

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, handler)

    def _open_log(self) -> None:
        path = self.work_dir / "logs" / "job.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._job_log = path.open("a", buffering=1, encoding="utf-8")

    def _write_log(self, line: str) -> None:
        """Log a line; a write that fails (a full disk) is kept for the supervision to fail the job with, since
        this runs on the child's reader thread too."""
        with self._log_lock:
            if self._job_log is not None:
                try:
                    self._job_log.write(line + "\n")
                except OSError as exc:
                    self._log_error = self._log_error or exc
            print(line, flush=True)

    def _say(self, message: str) -> None:
        for line in message.rstrip().splitlines():
            self._write_log(f"[workbench] {line}")
