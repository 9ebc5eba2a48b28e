"""Recovery of a killed sweep against its real optuna storage, with scripted jobs instead of trainings (fast).

The sweep is killed while it submits its third trial: one trial has finished, one runs with reported values, one
was asked for but has no job. Run again, the finished trial is left alone, the running one is re-attached to its
job and reports on from its last iteration, and the one without a job fails and its parameters run as a new
trial. Throughout, the sweep's code reads no underscore attribute of an optuna object (optuna's public API only).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import pytest

from workbench.backends import BACKENDS, Backend, Job
from workbench.backends.base import LogReader
from workbench.errors import JobNotFoundError, WorkbenchError
from workbench.spec.document import JobSpec
from workbench.spec.status import JobState, JobStatus, Progress
from workbench.sweep import Budget, Choice, Sweep

BASE = {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 8, "maxIterations": 2, "device": "cpu"}}
SCRIPTS = {2: (2.0, 2), 6: (6.0, 6), 1: (1.0, 4)}
"""The trial's ``seed`` -> (mean reward at every iteration, iterations) of its scripted job."""


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the sweep catches it."""


class NoLog(LogReader):
    def read(self) -> list[str]:
        return []


class ScriptedJob(Job):
    """A job that completes one more iteration each time its status is read, until it succeeds."""

    def __init__(self, job_id: str, spec: JobSpec) -> None:
        super().__init__(job_id)
        self._spec = spec
        self.reward, self.iterations = SCRIPTS[spec.training["seed"]]
        self.polls = 0
        self.final: JobStatus | None = None

    def spec(self) -> JobSpec:
        return self._spec

    def status(self) -> JobStatus:
        if self.final is not None:
            return self.final
        self.polls += 1
        progress = Progress(iteration=self.polls, max_iterations=self.iterations, mean_reward=self.reward)
        if self.polls < self.iterations:
            return JobStatus(self.job_id, JobState.RUNNING, progress=progress)
        self.final = JobStatus(self.job_id, JobState.SUCCEEDED, progress=progress)
        return self.final

    def logs(self, follow: bool = False, poll_interval: float = 0.5) -> Iterator[str]:
        return iter(())

    def log_reader(self) -> LogReader:
        return NoLog()

    def outputs(self) -> Path:
        raise WorkbenchError("scripted jobs write no outputs")

    def cancel(self, reason: str = "cancelled by the user") -> JobStatus:
        self.final = JobStatus(self.job_id, JobState.CANCELLED, reason)
        return self.final


class ScriptedBackend(Backend):
    """Keeps its jobs across instances, as a real backend does across sweep processes."""

    name = "scripted"
    jobs: dict[str, ScriptedJob] = {}
    submissions = 0
    kill_at: int | None = None

    def submit(self, spec: JobSpec) -> Job:
        cls = type(self)
        cls.submissions += 1
        if cls.submissions == cls.kill_at:
            raise Killed
        job = ScriptedJob(f"scripted-{cls.submissions}", spec)
        cls.jobs[job.job_id] = job
        return job

    def job(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise JobNotFoundError(job_id)
        return self.jobs[job_id]

    def list_jobs(self) -> list[JobStatus]:
        return [job.status() for job in self.jobs.values()]


@pytest.fixture
def scripted_backend() -> type[ScriptedBackend]:
    """The scripted backend, registered under its name (sweeps build their backend by name), with no jobs yet."""
    BACKENDS.register(ScriptedBackend.name, f"{__name__}:{ScriptedBackend.__name__}")
    ScriptedBackend.jobs, ScriptedBackend.submissions, ScriptedBackend.kill_at = {}, 0, None
    return ScriptedBackend


@pytest.fixture
def private_optuna_reads(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every underscore attribute that code of ``workbench.sweep`` reads of an optuna study, trial or storage."""
    reads: set[str] = set()
    for cls in (optuna.Study, optuna.Trial, optuna.trial.FrozenTrial, optuna.storages.BaseStorage):
        def watched(self: object, name: str, original=cls.__getattribute__) -> object:
            if name.startswith("_") and not name.startswith("__"):
                caller = inspect.currentframe().f_back.f_globals.get("__name__", "")
                if caller.split(".")[:2] == ["workbench", "sweep"]:
                    reads.add(f"{caller} reads {type(self).__name__}.{name}")
            return original(self, name)

        monkeypatch.setattr(cls, "__getattribute__", watched)
    return reads


def test_a_killed_sweep_reattaches_requeues_and_never_reruns(
        tmp_path: Path, scripted_backend: type[ScriptedBackend], private_optuna_reads: set[str]) -> None:
    sweep = Sweep("recovery", BASE, {"seed": Choice(list(SCRIPTS))}, strategy="grid", pruner="median",
                  budget=Budget(max_trials=3), backend_name=ScriptedBackend.name, concurrency=2, root=tmp_path,
                  poll_interval=0)
    scripted_backend.kill_at = 3
    with pytest.raises(Killed):
        sweep.run()
    before = sweep.results()
    assert list(before["state"]) == ["COMPLETE", "RUNNING", "RUNNING"], before
    assert pd.isna(before["job_id"][2]), "the third trial was asked for, but its job was never submitted"
    finished_job = scripted_backend.jobs[before["job_id"][0]]

    frame = Sweep.open("recovery", root=tmp_path).run()

    assert list(frame["state"]) == ["COMPLETE", "COMPLETE", "FAIL", "PRUNED"], frame
    assert list(frame["param seed"]) == [2, 6, 1, 1], "the trial without a job runs again with its parameters"
    assert "queued again" in frame["reason"][2] and pd.isna(frame["job_id"][2])
    assert list(frame["job_id"][:2]) == list(before["job_id"][:2]), "the running trial kept its job"
    assert scripted_backend.submissions == 4, "nothing but the requeued parameters was submitted again"
    assert finished_job.polls == 2, "the finished trial was not followed again"
    trials = sweep.study().get_trials(deepcopy=False)
    assert trials[1].intermediate_values == dict.fromkeys(range(1, 7), 6.0), \
        "the re-attached trial reported every iteration, before the kill and after it"
    assert "pruned at iteration 1" in frame["reason"][3]
    assert scripted_backend.jobs[frame["job_id"][3]].status().state is JobState.CANCELLED
    assert sweep.best()["params"] == {"seed": 6}
    assert Sweep.open("recovery", root=tmp_path).run()["job_id"].tolist() == frame["job_id"].tolist(), \
        "running a finished sweep again starts nothing"
    assert scripted_backend.submissions == 4
    assert private_optuna_reads == set()


def test_the_watch_sees_private_reads(private_optuna_reads: set[str]) -> None:
    """The watch itself works: a read of ``Study._storage`` from sweep code is recorded, a public read is not."""
    as_if_in_the_sweep = {"__name__": "workbench.sweep.study"}
    reader = eval("lambda study: (study.study_name, study._storage)", as_if_in_the_sweep)
    reader(optuna.create_study())
    assert private_optuna_reads == {"workbench.sweep.study reads Study._storage"}
