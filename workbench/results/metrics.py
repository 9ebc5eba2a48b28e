"""The one reader of a job's output layout for notebooks, widgets and sweeps: ``metrics.csv`` as a DataFrame,
training curves against the iteration, evaluation summaries.

Every function takes a job as a :class:`~workbench.backends.base.Job`, a job id (a local run), or the path of a
directory in the output layout, and re-reads the files on each call, so a running job shows its newest numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Union

import pandas as pd

from workbench.backends.base import Job
from workbench.outputs.layout import EPISODE_LENGTH, ITERATION, METRICS, REWARD, STEP, SUMMARY
from workbench.spec.document import is_job_id
from workbench.spec.paths import run_dir

JobLike = Union[Job, str, Path]
CURVE_COLUMNS = (ITERATION, REWARD, EPISODE_LENGTH)


def job_dir(job: JobLike) -> Path:
    """The local directory holding a job's outputs."""
    if isinstance(job, Job):
        return Path(job.outputs())
    text = str(job)
    return run_dir(text) if is_job_id(text) else Path(text).expanduser()


def job_label(job: JobLike) -> str:
    if isinstance(job, Job):
        return job.job_id[:8]
    text = str(job)
    return text[:8] if is_job_id(text) else Path(text).name


def load_metrics(job: JobLike) -> pd.DataFrame:
    """The job's ``metrics.csv`` as a DataFrame (empty while the job has written none yet).

    Training: one row per logged step (``step``, ``iteration``, ``wall_time``, ``reward``, ``episode_length``, then
    one column per scalar tag). Evaluation: one row per episode (``episode``, ``env_index``, ``return``,
    ``length``, ``success``, ...). A line being written while we read is skipped.
    """
    path = job_dir(job) / METRICS
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path, on_bad_lines="skip")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError):
        return pd.DataFrame()


def load_summary(job: JobLike) -> dict[str, Any]:
    """An evaluation's ``evaluation-summary.json`` (raises FileNotFoundError before the evaluation has finished)."""
    path = job_dir(job) / SUMMARY
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet: is this an evaluation job, and has it finished?")
    return json.loads(path.read_text())


def is_evaluation(metrics: pd.DataFrame) -> bool:
    return {"episode", "return"} <= set(metrics.columns)


def training_curves(job: JobLike) -> pd.DataFrame:
    """Reward and episode length by training iteration: columns ``iteration``, ``reward``, ``episode_length``.

    The x axis is the iteration every library shares, not the library's own step (frames for rl_games, timesteps
    for skrl); rows with neither value are left out.
    """
    return curves_of(load_metrics(job))


def curves_of(metrics: pd.DataFrame) -> pd.DataFrame:
    """The training curves in a metrics DataFrame (see :func:`training_curves`)."""
    if metrics.empty or is_evaluation(metrics):
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    axis = ITERATION if ITERATION in metrics and metrics[ITERATION].notna().any() else STEP
    curves = pd.DataFrame({ITERATION: metrics[axis]})
    for column in (REWARD, EPISODE_LENGTH):
        curves[column] = metrics[column] if column in metrics else math.nan
    return curves.dropna(subset=[REWARD, EPISODE_LENGTH], how="all").reset_index(drop=True)


def summarize_episodes(metrics: pd.DataFrame) -> dict[str, Any]:
    """The summary statistics of evaluation episodes (the same keys as ``evaluation-summary.json``)."""
    if metrics.empty or not is_evaluation(metrics):
        return {"episodes": 0}
    returns = metrics["return"]
    return {
        "episodes": int(len(metrics)),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std(ddof=0)),
        "min_return": float(returns.min()),
        "max_return": float(returns.max()),
        "mean_length": float(metrics["length"].mean()),
        "success_rate": float(metrics["success"].astype(bool).mean()) if "success" in metrics else math.nan,
    }
