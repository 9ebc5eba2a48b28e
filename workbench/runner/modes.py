"""What differs between a training and an evaluation job, one class per mode: the child's command, what is
exported while and after it runs, and what a failed run keeps. The job's supervision (``runner.job``) is the same
for both."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from workbench.errors import RunnerError
from workbench.libraries import library
from workbench.outputs import checkpoints, export, rates
from workbench.outputs.layout import CHECKPOINTS, METRICS, VIDEOS
from workbench.outputs.metrics import ScalarReader, export_metrics, latest_progress, merge_metrics
from workbench.runner import commands, recovery
from workbench.runner.context import RunnerSettings, StatusPublisher
from workbench.runner.inputs.policy import resolve_policy
from workbench.runner.inputs.resume import ResumePoint, resume_checkpoint
from workbench.runner.multinode import DistributedLaunch, clear_training_finished, distributed_launch
from workbench.spec.document import JobSpec
from workbench.spec.task_registry import probe_task

CHILD_DIR = "isaaclab"
"""Sub-directory of the work directory where the child runs (Isaac Lab writes its ``logs/`` tree there)."""


class Mode:
    """The base: an evaluation-like job that runs one command and exports nothing while it runs."""

    def __init__(self, spec: JobSpec, settings: RunnerSettings, publisher: StatusPublisher,
                 say: Callable[[str], None]) -> None:
        self.spec = spec
        self.settings = settings
        self.work_dir = settings.work_dir
        self.publisher = publisher
        self.say = say
        self.launch: DistributedLaunch | None = None
        self.progress_unit: int | None = None

    def command(self, device: str, pythonpath: list[str]) -> list[str]:
        """The child's command line (may download inputs and set ``launch``/``progress_unit``)."""
        raise NotImplementedError

    def export(self, final: bool) -> None:
        """Bring what the child wrote so far into the output layout (``final``: after it succeeded)."""

    def keep_partial(self) -> None:
        """After a failure or cancellation: keep what the run saved for a later resume, where it matters."""

    def follow_up(self) -> list[str] | None:
        """The command to run once the child succeeded and its outputs are in the layout (None: nothing)."""
        return None


class Evaluation(Mode):
    """Our bounded evaluation loop over a checked policy; it writes the layout's files itself."""

    def command(self, device: str, pythonpath: list[str]) -> list[str]:
        checkpoint = resolve_policy(self.spec, self.work_dir / "inputs")
        return commands.evaluate_command(commands.evaluate_arguments(self.spec, device, checkpoint, self.work_dir))


class Training(Mode):
    """``isaaclab train`` (or torchrun across nodes), resumed from a checkpoint where the spec says (or, on a retried
    attempt, from the job's own newest one: ``runner.recovery``), exported while it runs so a killed job keeps its
    checkpoints and metrics."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.resume: ResumePoint | None = None
        self._metrics: ScalarReader | None = None
        self._started_at = time.time()
        self._device = "cpu"

    def command(self, device: str, pythonpath: list[str]) -> list[str]:
        spec, settings = self.spec, self.settings
        self._device = device
        agent_cfg = self._agent_config(pythonpath)
        self.progress_unit = library(spec.rl_library).progress_unit(agent_cfg)
        run_timestamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime())
        command_spec, resume, iterations = spec, [], spec.training["maxIterations"]
        recovered = self._recover()
        if recovered is not None and recovered.point is not None:
            self.resume, iterations = recovered.point, recovered.remaining
        elif spec.training["resumeFrom"]:
            roots = [settings.checkpoint_dir.parent] if settings.checkpoint_dir is not None else []
            self.resume = resume_checkpoint(spec.training["resumeFrom"], self.work_dir / "inputs", spec.rl_library,
                                            checkpoint_roots=roots)
            self.say(f"resuming from {self.resume.source}: iteration {self.resume.iteration} of that training")
        if self.resume is not None:
            resume = self.resume.arguments()
            command_spec = spec.with_training(maxIterations=self.resume.max_iterations(iterations))
        if recovered is not None:
            self.publisher.details["recovery"] = recovered.describe()
            self.say(self.publisher.details["recovery"])
        elif settings.checkpoint_dir is not None and settings.attempt.max_attempts > 1:
            recovery.write_plan(settings.checkpoint_dir, recovery.plan_for(spec, self.resume))
        arguments = commands.train_arguments(command_spec, device, run_timestamp, agent_cfg) + resume
        command = commands.isaaclab_command("train", arguments)
        self.launch = distributed_launch(spec.compute, settings.job_id, device, settings.environ)
        if self.launch is not None:
            self.say(self.launch.describe())
            command = self.launch.command(command)
            if self.launch.ctx is not None and self.launch.is_main:
                clear_training_finished(settings.checkpoint_dir)
        return command

    def _recover(self) -> recovery.Recovery | None:
        """On a retried attempt, where the interrupted one left the job (None on a first attempt)."""
        settings = self.settings
        if not settings.attempt.is_retry or settings.checkpoint_dir is None:
            return None
        return recovery.recover(self.spec, settings.checkpoint_dir, self.work_dir / "inputs", settings.attempt)

    def _agent_config(self, pythonpath: list[str]) -> dict | None:
        """The task's YAML agent config where the library's command depends on it (rl_games batch, skrl rollouts).

        Other tasks were checked already: by the spec's catalogue, or by the custom package's own task list
        (``CustomEnvironment.require_task``), so no registry probe is spent on them.
        """
        spec = self.spec
        if not library(spec.rl_library).needs_agent_config:
            return None
        info = probe_task(spec.task, spec.rl_library, pythonpath)
        if not info.registered:
            raise RunnerError(f"task {spec.task!r} is not registered (not in Isaac Lab nor in the custom package)")
        if spec.rl_library not in info.libraries:
            raise RunnerError(
                f"task {spec.task!r} has no {spec.rl_library} agent config; available: {', '.join(info.libraries)}"
            )
        return info.agent_cfg

    def export(self, final: bool) -> None:
        spec = self.spec
        run_dir = export.find_run_dir(self.work_dir / CHILD_DIR, spec.rl_library)
        if run_dir is None:
            if final:
                raise RunnerError("training finished but Isaac Lab wrote no run directory")
            return
        saved = self.work_dir / CHECKPOINTS
        offset = self.resume.iteration_offset if self.resume is not None else 0
        copied = checkpoints.sync_checkpoints(run_dir, spec.rl_library, saved, offset)
        if self.settings.checkpoint_dir is not None and copied:
            checkpoints.sync_checkpoints(run_dir, spec.rl_library, self.settings.checkpoint_dir, offset)
        if self._metrics is None or self._metrics.run_dir != run_dir:
            self._metrics = ScalarReader(run_dir, spec.rl_library)
        rows = export_metrics(self._metrics, self.work_dir / METRICS)
        if self.resume is not None:
            merge_metrics(self.work_dir / METRICS, self.resume.previous_metrics_csv, offset,
                          self._metrics.steps_per_iteration)
        if self.settings.checkpoint_dir is not None and self.settings.attempt.max_attempts > 1:
            recovery.keep_metrics(self.work_dir / METRICS, self.settings.checkpoint_dir)
        self.publisher.update_progress(latest_progress(rows, spec.rl_library))
        if final:
            self._export_final(run_dir, saved, len(rows))

    def _export_final(self, run_dir: Path, saved: Path, rows: int) -> None:
        export.export_git_diffs(run_dir, self.work_dir)
        export.export_videos(run_dir, self.work_dir / VIDEOS)
        self.say(f"exported {len(list(saved.glob('*.pt')))} checkpoint(s) and {rows} metrics rows to {self.work_dir}")
        if checkpoints.newest_checkpoint(saved) is None:
            raise RunnerError("training finished but saved no checkpoint")
        self._record_rate()

    def _record_rate(self) -> None:
        """Keep this training's measured start-up and seconds per iteration for later estimates (a resumed or
        multi-node training measures something else, and a rate that cannot be kept costs the job nothing)."""
        if self.resume is not None or self.launch is not None:
            return
        spec = self.spec
        measured = rates.measure(self.work_dir / METRICS, self._started_at)
        if measured is None:
            return
        startup, per_iteration, iterations = measured
        rate = rates.Rate(spec.task, spec.rl_library, rates.device_kind(self._device), spec.training["numEnvs"],
                          round(startup, 2), round(per_iteration, 4), iterations, self.settings.job_id,
                          rates.now_iso())
        try:
            rates.record(rate)
        except OSError as exc:
            self.say(f"could not keep this job's measured rate for estimates: {exc}")

    def follow_up(self) -> list[str] | None:
        """The export of the newest checkpoint as a deployable policy (``exported/``), on the main node only."""
        if self.launch is not None and not self.launch.is_main:
            return None
        newest = checkpoints.newest_checkpoint(self.work_dir / CHECKPOINTS)
        return None if newest is None else commands.export_command(self.spec, newest, self.work_dir)

    def keep_partial(self) -> None:
        if self.launch is not None and not self.launch.is_main:
            return
        try:
            self.export(final=False)
            self.settings.storage.upload(self.work_dir)
        except Exception as exc:  # noqa: BLE001 - the job's own failure reason matters more
            self.say(f"could not save the partial outputs: {exc}")


MODES: dict[str, type[Mode]] = {"train": Training, "evaluate": Evaluation}
