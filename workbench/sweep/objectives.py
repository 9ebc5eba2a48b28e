"""What a trial is scored by: a progress field (``mean_reward``, ...), a ``metrics:<column>`` of its
``metrics.csv``, or a callable of the finished job. Gives the values reported while a trial runs (for pruning)
and the final value the study is told."""

from __future__ import annotations

from collections.abc import Callable

from workbench.backends import Job
from workbench.errors import SweepError, WorkbenchError
from workbench.outputs.layout import EPISODE_LENGTH, REWARD
from workbench.results.metrics import load_metrics
from workbench.spec.status import JobStatus
from workbench.sweep.trials import ActiveTrial

Objective = str | Callable[[Job, JobStatus], "float | None"]
PROGRESS_OBJECTIVES = ("mean_reward", "mean_episode_length", "steps_per_second")
METRICS_PREFIX = "metrics:"
_METRIC_COLUMNS = {"mean_reward": REWARD, "mean_episode_length": EPISODE_LENGTH, "steps_per_second": "Perf/total_fps"}
"""The ``metrics.csv`` column to fall back on when a finished job's status has no value of a progress field."""


def check_objective(objective: Objective) -> None:
    """Raise SweepError for a named objective the sweep cannot score."""
    if isinstance(objective, str) and not (objective in PROGRESS_OBJECTIVES or objective.startswith(METRICS_PREFIX)):
        raise SweepError(f"objective must be one of {', '.join(PROGRESS_OBJECTIVES)}, 'metrics:<column>' or a callable")


def objective_label(objective: Objective) -> str:
    return objective if isinstance(objective, str) else getattr(objective, "__name__", "objective")


def intermediate_values(objective: Objective, item: ActiveTrial, status: JobStatus) -> list[tuple[int, float]]:
    """New (iteration, value) pairs of a running trial: every finished iteration from its log, else its status."""
    if callable(objective):
        return []
    if objective.startswith(METRICS_PREFIX):
        return _newer(item, status.progress.iteration, last_metric(item.job, objective.removeprefix(METRICS_PREFIX)))
    if item.history is not None:
        item.history.update()
    points = item.history.points if item.history is not None else {}
    if points:
        newest = max(points)
        steps = [s for s in sorted(points) if (item.last_step is None or s > item.last_step)
                 and (s < newest or status.state.is_terminal)]
        values = [(s, getattr(points[s], objective)) for s in steps]
        return [(s, v) for s, v in values if v is not None]
    return _newer(item, status.progress.iteration, getattr(status.progress, objective))


def final_value(objective: Objective, job: Job, status: JobStatus) -> float | None:
    """The finished trial's objective value (None: it has none)."""
    if callable(objective):
        return objective(job, status)
    if objective in PROGRESS_OBJECTIVES:
        value = getattr(status.progress, objective)
        return value if value is not None else last_metric(job, _METRIC_COLUMNS[objective])
    return last_metric(job, objective.removeprefix(METRICS_PREFIX))


def last_metric(job: Job, column: str) -> float | None:
    """The last value of a column of the job's ``metrics.csv`` (None when absent)."""
    try:
        frame = load_metrics(job)
    except WorkbenchError:
        return None
    if column not in frame or frame[column].dropna().empty:
        return None
    return float(frame[column].dropna().iloc[-1])


def _newer(item: ActiveTrial, step: int | None, value: float | None) -> list[tuple[int, float]]:
    """``[(step, value)]`` when both are known and the step comes after the last one reported, else ``[]``."""
    if step is None or value is None or (item.last_step is not None and step <= item.last_step):
        return []
    return [(step, value)]
