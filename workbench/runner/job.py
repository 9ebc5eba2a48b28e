"""The job runner: prepare, run the child, watch it, export the output layout, report.

The same code runs a local job (the local backend starts ``python -m workbench.runner`` detached) and a job in the
AWS Batch container. It owns the job: whatever happens (success, non-zero exit, exception, signal, invalid spec,
stalled child), exactly one final status reaches the channel, with the reason in words.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from workbench.spec import paths
from workbench.errors import RunnerError
from workbench.outputs import export as outputs
from workbench.runner import commands
from workbench.runner.warm import client as warmstart
from workbench.transport.atomic import write_json_atomic
from workbench.transport.channels import Channel
from workbench.runner.inputs.custom_env import CustomEnvironment, install_custom_environment
from workbench.runner.multinode import (
    WORKER_GRACE_S,
    DistributedLaunch,
    clear_training_finished,
    distributed_launch,
    mark_training_finished,
    training_finished,
    worker_end,
)
from workbench.runner.process import Child, ChildProcess, describe_exit
from workbench.outputs.progress import ProgressParser
from workbench.runner.inputs.resume import (
    ResumePoint,
    max_iterations_for,
    merge_metrics,
    resume_arguments,
    resume_checkpoint,
)
from workbench.runner.slots import acquire_slot
from workbench.transport.storage import Storage, fetch_input
from workbench.spec.document import JobSpec, SpecError, parse_spec
from workbench.spec.status import JobState, JobStatus, Progress
from workbench.spec.task_registry import probe_task

log = logging.getLogger("workbench.runner")

CHILD_DIR = "isaaclab"
"""Sub-directory of the work directory where the child runs (Isaac Lab writes its ``logs/`` tree there)."""


@dataclass
class RunnerSettings:
    """How the runner runs one job (from ``WORKBENCH_*`` environment variables, see ``__main__``)."""

    job_id: str
    spec_text: str
    work_dir: Path
    channel: Channel
    storage: Storage
    heartbeat_interval: float = 60.0
    heartbeat_timeout: float = 1800.0
    export_interval: float = 15.0
    stop_grace: float = 10.0
    checkpoint_dir: Path | None = None
    assets: str = "offline"
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


class JobRunner:
    """Runs one job end to end; ``run()`` returns the final status."""

    def __init__(self, settings: RunnerSettings) -> None:
        self.settings = settings
        self.work_dir = settings.work_dir
        self.publisher = StatusPublisher(settings)
        self.cancel_reason: str | None = None
        self.child: Child | None = None
        self._warm_env: dict[str, str] | None = None
        self._job_log = None
        self._rollouts: int | None = None
        self._resume: ResumePoint | None = None
        self._launch: DistributedLaunch | None = None
        self._slot: int | None = None
        self._metrics: outputs.ScalarReader | None = None
        self._log_lock = threading.Lock()

    def run(self) -> JobStatus:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._open_log()
        self._install_signal_handlers()
        final: JobStatus | None = None
        try:
            if not self._wait_for_slot():
                return self._finish(JobState.CANCELLED, self.cancel_reason or "cancelled while queued")
            self.publisher.publish(JobState.STARTING, "preparing the job", heartbeat=True)
            spec = self._parse_spec()
            final = self._run_spec(spec)
        except SpecError as exc:
            final = self._finish(JobState.FAILED, str(exc))
        except RunnerError as exc:
            final = self._finish(JobState.FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - every failure must reach the channel
            self._say(traceback.format_exc())
            final = self._finish(JobState.FAILED, f"internal error in the runner: {exc!r}")
        finally:
            if self.child is not None and self.child.poll() is None:
                self.child.stop(self.settings.stop_grace)
            self._keep_warm()
        return final or self._finish(JobState.FAILED, "the runner stopped without a result")

    def _wait_for_slot(self) -> bool:
        """With a concurrency limit, stay SUBMITTED (queued) until a slot is free; False if cancelled meanwhile."""
        settings = self.settings
        if not settings.max_concurrent or settings.slots_dir is None:
            return True
        self.publisher.publish(JobState.SUBMITTED, f"queued: waiting for one of {settings.max_concurrent} job slots")
        self._slot = acquire_slot(settings.slots_dir, settings.max_concurrent, lambda: self.cancel_reason is not None)
        return self._slot is not None

    def _parse_spec(self) -> JobSpec:
        spec = parse_spec(self.settings.spec_text)
        for notice in spec.notices:
            self._say(notice)
        name = "training-config.json" if spec.mode == "train" else "evaluation-config.json"
        write_json_atomic(self.work_dir / name, spec.to_dict())
        return spec

    def _run_spec(self, spec: JobSpec) -> JobStatus:
        device = commands.resolve_device(spec.training["device"])
        env_extra = commands.job_environment(spec.task, self.settings.assets)
        pythonpath: list[str] = []
        custom = self._custom_environment(spec)
        if custom is not None:
            pythonpath.append(str(custom.site_dir))
        child_dir = self.work_dir / CHILD_DIR
        child_dir.mkdir(exist_ok=True)
        if spec.mode == "train":
            agent_cfg = self._agent_config(spec, pythonpath)
            self._rollouts = (agent_cfg or {}).get("agent", {}).get("rollouts") if spec.rl_library == "skrl" else None
            run_timestamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime())
            resume: list[str] = []
            command_spec = spec
            if spec.training["resumeFrom"]:
                roots = [self.settings.checkpoint_dir.parent] if self.settings.checkpoint_dir is not None else []
                self._resume = resume_checkpoint(
                    spec.training["resumeFrom"], self.work_dir / "inputs", spec.rl_library, checkpoint_roots=roots
                )
                resume = resume_arguments(spec.rl_library, self._resume)
                total = max_iterations_for(spec.rl_library, self._resume, spec.training["maxIterations"])
                command_spec = spec.with_training(maxIterations=total)
                self._say(f"resuming from {self._resume.source}: iteration {self._resume.iteration} of that training")
            arguments = commands.train_arguments(command_spec, device, run_timestamp, agent_cfg) + resume
            command = commands.isaaclab_command("train", arguments)
            self._launch = distributed_launch(spec.compute, self.settings.job_id, device, self.settings.environ)
            if self._launch is not None:
                self._say(self._launch.describe())
                command = self._launch.command(command)
                if self._launch.ctx is not None and self._launch.is_main:
                    clear_training_finished(self.settings.checkpoint_dir)
        else:
            checkpoint = self._policy_checkpoint(spec)
            command = commands.evaluate_command(commands.evaluate_arguments(spec, device, checkpoint, self.work_dir))
        if self.cancel_reason:
            return self._finish(JobState.CANCELLED, self.cancel_reason)
        self._say(f"{spec.mode} {spec.task} with {spec.rl_library} on {device}: {' '.join(command)}")
        env = commands.child_environment(self.settings.environ, env_extra, pythonpath)
        if self._launch is not None:
            env = self._launch.environment(env)
        else:
            self._warm_env = commands.child_environment(self.settings.environ, env_extra, [])
        parser = ProgressParser(spec.rl_library, self._rollouts)
        code = self._supervise(command, child_dir, env, parser, spec)
        return self._conclude(spec, code, parser)

    def _custom_environment(self, spec: JobSpec) -> CustomEnvironment | None:
        """Install the spec's custom package for this job only and check that it registers the task."""
        if spec.custom_environment_uri is None:
            return None
        package = fetch_input(spec.custom_environment_uri, self.work_dir / "inputs")
        custom = install_custom_environment(package, self.work_dir)
        custom.require_task(spec.task, spec.rl_library)
        self._say(f"custom environment {package.name} installed; it registers {', '.join(custom.task_ids)}")
        return custom

    def _agent_config(self, spec: JobSpec, pythonpath: list[str]) -> dict | None:
        """The task's YAML agent config where the command depends on it (rl_games batch, skrl rollouts).

        rsl_rl's command needs none, and its task was checked already: by the spec's catalogue, or by the custom
        package's own task list (``CustomEnvironment.require_task``), so no registry probe is spent on it.
        """
        if spec.rl_library == "rsl_rl":
            return None
        info = probe_task(spec.task, spec.rl_library, pythonpath)
        if not info.registered:
            raise RunnerError(f"task {spec.task!r} is not registered (not in Isaac Lab nor in the custom package)")
        if spec.rl_library not in info.libraries:
            raise RunnerError(
                f"task {spec.task!r} has no {spec.rl_library} agent config; available: {', '.join(info.libraries)}"
            )
        return info.agent_cfg

    def _policy_checkpoint(self, spec: JobSpec) -> Path:
        from workbench.runner.inputs.policy import resolve_policy

        return resolve_policy(spec, self.work_dir / "inputs")

    def _supervise(self, command: list[str], cwd: Path, env: dict[str, str], parser: ProgressParser,
                   spec: JobSpec) -> int:
        """Run the child to its end, heartbeating while it makes progress; returns its exit code."""
        settings = self.settings

        def on_line(line: str) -> None:
            self._write_log(line)
            update = parser.feed(line)
            if update is not None:
                self.publisher.update_progress(update)

        self.child = self._start_child(command, cwd, env, on_line)
        self.publisher.details["child_pgid"] = self.child.pid
        self.publisher.publish(JobState.RUNNING, "running", heartbeat=True)
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
                self.child.stop(settings.stop_grace)
                raise RunnerError(
                    f"heartbeat timeout: no progress for {settings.heartbeat_timeout:g} s, the job was stopped"
                )
            if now - last_heartbeat >= settings.heartbeat_interval and self.child.last_output_at > output_at_heartbeat:
                output_at_heartbeat = self.child.last_output_at
                last_heartbeat = last_publish = now
                self.publisher.publish(reason="running", heartbeat=True)
            elif now - last_publish >= 1.0:
                last_publish = now
                self.publisher.publish(reason="running")
            if spec.mode == "train" and now - last_export >= settings.export_interval:
                last_export = now
                self._export_training(spec, final=False)
        self.child.wait_output()
        return code

    def _start_child(self, command: list[str], cwd: Path, env: dict[str, str],
                     on_line: Callable[[str], None]) -> Child:
        """Fork the child from the warm process where one serves this home, else start a fresh process."""
        if self.settings.warm_start and self._launch is None:
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

    def _conclude(self, spec: JobSpec, code: int, parser: ProgressParser) -> JobStatus:
        if self._launch is not None and not self._launch.is_main:
            return self._conclude_worker(code, parser)
        if self.cancel_reason:
            self._export_safely(spec)
            return self._finish(JobState.CANCELLED, self.cancel_reason)
        if code != 0:
            self._export_safely(spec)
            reason = parser.error or f"the {spec.mode} process failed ({describe_exit(code)}); see logs/job.log"
            return self._finish(JobState.FAILED, reason)
        if self._launch is not None and self._launch.ctx is not None:
            mark_training_finished(self.settings.checkpoint_dir)
        if spec.mode == "train":
            self._export_training(spec, final=True)
        self.settings.storage.upload(self.work_dir)
        return self._finish(JobState.SUCCEEDED, f"{spec.mode} finished", output_uri=self.settings.storage.uri)

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

    def _export_training(self, spec: JobSpec, final: bool) -> None:
        run_dir = outputs.find_run_dir(self.work_dir / CHILD_DIR, spec.rl_library)
        if run_dir is None:
            if final:
                raise RunnerError("training finished but Isaac Lab wrote no run directory")
            return
        checkpoints = self.work_dir / "checkpoints"
        offset = self._resume.iteration_offset if self._resume is not None else 0
        copied = outputs.sync_checkpoints(run_dir, spec.rl_library, checkpoints, offset)
        if self.settings.checkpoint_dir is not None and copied:
            outputs.sync_checkpoints(run_dir, spec.rl_library, self.settings.checkpoint_dir, offset)
        if self._metrics is None or self._metrics.run_dir != run_dir:
            self._metrics = outputs.ScalarReader(run_dir, spec.rl_library)
        rows = outputs.export_metrics(self._metrics, self.work_dir / "metrics.csv")
        if self._resume is not None:
            merge_metrics(self._resume, self.work_dir / "metrics.csv", outputs.steps_per_iteration(run_dir, spec.rl_library))
        self.publisher.update_progress(outputs.latest_progress(rows))
        if final:
            outputs.export_git_diffs(run_dir, self.work_dir)
            outputs.export_videos(run_dir, self.work_dir / "videos")
            saved = sorted(p.name for p in checkpoints.glob("*.pt"))
            self._say(f"exported {len(saved)} checkpoint(s) and {len(rows)} metrics rows to {self.work_dir}")
            if not any(checkpoints.glob("model_*.pt")):
                raise RunnerError("training finished but saved no checkpoint")

    def _export_safely(self, spec: JobSpec) -> None:
        """Keep what a failed or cancelled training had saved (checkpoints, metrics) for a later resume."""
        if spec.mode != "train" or (self._launch is not None and not self._launch.is_main):
            return
        try:
            self._export_training(spec, final=False)
            self.settings.storage.upload(self.work_dir)
        except Exception as exc:  # noqa: BLE001 - the job's own failure reason matters more
            self._say(f"could not save the partial outputs: {exc}")

    def _finish(self, state: JobState, reason: str, output_uri: str | None = None) -> JobStatus:
        self._say(f"job {state.value.lower()}: {reason}")
        status = self.publisher.publish(state, reason, output_uri=output_uri)
        if self._job_log is not None:
            self._job_log.flush()
        return status or JobStatus(self.settings.job_id, self.publisher.state, reason)

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
        with self._log_lock:
            if self._job_log is not None:
                self._job_log.write(line + "\n")
            print(line, flush=True)

    def _say(self, message: str) -> None:
        for line in message.rstrip().splitlines():
            self._write_log(f"[workbench] {line}")
