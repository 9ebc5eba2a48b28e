"""Recovery of an interrupted attempt: AWS Batch retries a job whose host went away (a spot reclaim, a lost instance:
the job definition's retry strategy) on a new instance, with the same environment and ``AWS_BATCH_JOB_ATTEMPT`` one
higher. What the retried attempt needs is on the job's checkpoint directory on EFS (``WORKBENCH_CHECKPOINT_DIR``,
``<root>/<job id>``), which every attempt keeps up to date while it trains:

- ``model_<n>.pt``: the checkpoints, exported every ``WORKBENCH_EXPORT_INTERVAL`` and when the attempt is stopped;
- ``metrics.csv``: the job's whole history so far (merged with the history it resumed, if any);
- ``plan.json``: what the whole job trains (:class:`Plan`), written by the attempt that started it.

A retried attempt resumes from the newest checkpoint there with the resume code every library already has
(``inputs.resume``: counters continue), trains the iterations left of the plan, and merges its metrics after the
earlier rows, so the job ends with one continuous ``metrics.csv``. Its log and status say "interrupted at iteration
N, resumed from checkpoint M (attempt 2)": N is the last iteration the interrupted attempt logged, M the checkpoint's
number. An attempt interrupted before its first checkpoint starts the training again as the first one did.

An attempt stopped by a signal while Batch may retry it reports no end (:func:`held_end`): the next attempt heartbeats
the same task token and sends the job's one SendTaskSuccess/Failure. Batch retries host terminations only, and a
job it does not retry fails its token through the Batch failure hook (``infra/lambdas/batch_events``).
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from workbench.libraries import library
from workbench.outputs import checkpoints
from workbench.outputs.layout import ITERATION, METRICS
from workbench.runner.inputs.resume import ResumePoint, resume_checkpoint
from workbench.spec.document import JobSpec
from workbench.spec.settings import Attempt
from workbench.transport.atomic import write_json_atomic, write_text_atomic

PLAN = "plan.json"


@dataclass(frozen=True)
class Plan:
    """What the whole job trains: ``total_iterations`` is how many iterations are behind its last checkpoint once
    it ends (the iterations behind the checkpoint it resumed from, if any, plus ``maxIterations``)."""

    library: str
    total_iterations: int


@dataclass(frozen=True)
class Recovery:
    """Where a retried attempt goes on from: ``point`` (None: no checkpoint was saved, the training starts again)
    and how many iterations are ``remaining`` after it."""

    attempt: Attempt
    point: ResumePoint | None
    remaining: int
    interrupted_at: float | None

    def describe(self) -> str:
        where = "interrupted" if self.interrupted_at is None else f"interrupted at iteration {self.interrupted_at:g}"
        if self.point is None:
            return (f"{where} before its first checkpoint, training again from the start "
                    f"(attempt {self.attempt.number})")
        return (f"{where}, resumed from checkpoint {self.point.iteration} (attempt {self.attempt.number}); "
                f"{self.remaining} iteration(s) to go")


def plan_for(spec: JobSpec, start: ResumePoint | None) -> Plan:
    """The plan of a job starting now (from ``start``, the checkpoint it resumes, if any)."""
    done = library(spec.rl_library).iterations_done(start.iteration) if start is not None else 0
    return Plan(spec.rl_library, done + spec.training["maxIterations"])


def write_plan(directory: Path, plan: Plan) -> None:
    """Keep the plan on EFS, where a retried attempt on another instance reads it."""
    write_json_atomic(directory / PLAN, {"library": plan.library, "totalIterations": plan.total_iterations})


def read_plan(directory: Path) -> Plan | None:
    """The job's plan, or None where the first attempt was stopped before it wrote one (or it is unreadable)."""
    try:
        document = json.loads((directory / PLAN).read_text())
        return Plan(str(document["library"]), int(document["totalIterations"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recover(spec: JobSpec, checkpoint_dir: Path, dest_dir: Path, attempt: Attempt) -> Recovery | None:
    """Where this retried attempt goes on from; None where the job left no plan (it never started training)."""
    plan = read_plan(checkpoint_dir)
    if plan is None or plan.library != spec.rl_library:
        return None
    metrics = checkpoint_dir / METRICS
    interrupted_at = last_iteration(metrics)
    newest = checkpoints.newest_checkpoint(checkpoint_dir)
    if newest is None:
        return Recovery(attempt, None, spec.training["maxIterations"], interrupted_at)
    point = resume_checkpoint(str(newest), dest_dir, spec.rl_library)
    previous = None
    if metrics.is_file():
        previous = dest_dir / "previous_metrics.csv"
        shutil.copyfile(metrics, previous)
    point = replace(point, previous_metrics_csv=previous,
                    source=f"checkpoint {newest.name} of this job (attempt {attempt.number - 1})")
    remaining = max(1, plan.total_iterations - library(spec.rl_library).iterations_done(point.iteration))
    return Recovery(attempt, point, remaining, interrupted_at)


def keep_metrics(metrics: Path, checkpoint_dir: Path) -> None:
    """Copy the job's metrics.csv (its whole history so far) next to its checkpoints, for a retried attempt."""
    if metrics.is_file():
        write_text_atomic(checkpoint_dir / METRICS, metrics.read_text())


def last_iteration(metrics: Path) -> float | None:
    """The last iteration a metrics.csv has a row for."""
    try:
        with metrics.open(newline="") as handle:
            values = [float(row[ITERATION]) for row in csv.DictReader(handle) if row.get(ITERATION)]
    except (OSError, ValueError):
        return None
    return max(values, default=None)


def held_end(attempt: Attempt, reason: str, progress_iteration: int | None) -> str:
    """The log line of an attempt stopped while Batch may retry it: what happened and that no end was reported."""
    at = f" at iteration {progress_iteration}" if progress_iteration is not None else ""
    return (f"{attempt.describe()} stopped{at}: {reason}. AWS Batch retries it if its host was terminated (a spot "
            "reclaim), and the next attempt resumes from the newest checkpoint on EFS and reports the job's end; "
            "this attempt reports none")

