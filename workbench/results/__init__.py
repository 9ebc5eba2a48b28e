"""Look at a job's results in a notebook: metrics as pandas DataFrames, matplotlib plots, inline videos.

Every function takes a job as a :class:`~workbench.backends.base.Job`, a job id (a local run), or the path of a
directory in the output layout, and re-reads the files on each call, so calling it again on a running job shows
its newest numbers.

    from workbench import results
    results.plot_training(job)                  # reward and episode length vs iteration
    results.compare([job_a, job_b])             # several trainings on one plot (or evaluations side by side)
    results.summarize([eval_a, eval_b])         # one row per evaluation
    results.show_videos(eval_job)               # the evaluation clips, inline
    results.follow(job)                         # redraw the job's plot in the cell until the job ends

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot: a notebook shows the one a cell returns.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import pandas as pd
from matplotlib.figure import Figure

from workbench.backends.base import Job
from workbench.spec.paths import run_dir
from workbench.spec.document import is_job_id
from workbench.spec.status import JobStatus

JobLike = Union[Job, str, Path]

REWARD_TAGS = (
    "Train/mean_reward",  # rsl_rl
    "rewards/iter",  # rl_games
    "rewards/step",
    "Reward / Total reward (mean)",  # skrl
    "mean_reward",
)
"""Scalar tags that hold the mean episode reward, by library, in order of preference."""

LENGTH_TAGS = (
    "Train/mean_episode_length",
    "episode_lengths/iter",
    "episode_lengths/step",
    "Episode / Total timesteps (mean)",
    "mean_episode_length",
)
"""Scalar tags that hold the mean episode length."""

STEP_COLUMNS = ("step", "iteration", "epoch")
EMBED_LIMIT_BYTES = 20 * 1024 * 1024
"""Videos up to this size are embedded in the notebook (they then survive the notebook being moved)."""


def job_dir(job: JobLike) -> Path:
    """The local directory holding a job's outputs."""
    if isinstance(job, Job):
        return Path(job.outputs())
    text = str(job)
    if is_job_id(text):
        return run_dir(text)
    return Path(text).expanduser()


def job_label(job: JobLike) -> str:
    if isinstance(job, Job):
        return job.job_id[:8]
    text = str(job)
    return text[:8] if is_job_id(text) else Path(text).name


def load_metrics(job: JobLike) -> pd.DataFrame:
    """The job's ``metrics.csv`` as a DataFrame (empty while the job has written none yet).

    Training: one row per logged step, a ``step`` column and one column per scalar tag. Evaluation: one row per
    episode (``episode``, ``env_index``, ``return``, ``length``, ``success``, ...). A line being written while we
    read is skipped.
    """
    path = job_dir(job) / "metrics.csv"
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path, on_bad_lines="skip")
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def load_summary(job: JobLike) -> dict[str, Any]:
    """An evaluation's ``evaluation-summary.json`` (raises FileNotFoundError before the evaluation has finished)."""
    path = job_dir(job) / "evaluation-summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet: is this an evaluation job, and has it finished?")
    return json.loads(path.read_text())


def is_evaluation(metrics: pd.DataFrame) -> bool:
    return {"episode", "return"} <= set(metrics.columns)


def find_column(metrics: pd.DataFrame, candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` that ``metrics`` has with at least one value."""
    for name in candidates:
        if name in metrics.columns and metrics[name].notna().any():
            return name
    return None


def training_curves(job: JobLike) -> pd.DataFrame:
    """Reward and episode length by step: columns ``step``, ``reward``, ``episode_length`` (NaN where not logged)."""
    metrics = load_metrics(job)
    if metrics.empty or is_evaluation(metrics):
        return pd.DataFrame(columns=["step", "reward", "episode_length"])
    step = find_column(metrics, STEP_COLUMNS)
    curves = pd.DataFrame({"step": metrics[step] if step else pd.Series(range(len(metrics)), dtype=float)})
    for name, tags in (("reward", REWARD_TAGS), ("episode_length", LENGTH_TAGS)):
        column = find_column(metrics, tags)
        curves[name] = metrics[column] if column else float("nan")
    return curves.dropna(subset=["reward", "episode_length"], how="all").reset_index(drop=True)


def plot_training(job: JobLike, title: str | None = None) -> Figure:
    """Mean reward and mean episode length against the training step."""
    curves = training_curves(job)
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, name, label in ((axes[0], "reward", "mean reward"), (axes[1], "episode_length", "mean episode length")):
        points = curves.dropna(subset=[name])
        ax.plot(points["step"], points[name], marker="." if len(points) < 30 else None)
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if points.empty:
            ax.text(0.5, 0.5, "no data yet", transform=ax.transAxes, ha="center", va="center", color="grey")
    figure.suptitle(title or f"training {job_label(job)}")
    return figure


def compare(jobs: Iterable[JobLike], labels: Sequence[str] | None = None, metric: str = "reward") -> Figure:
    """Several jobs on one plot: training curves of ``metric`` (``reward`` or ``episode_length``), or, for
    evaluations, the mean episode return with its standard deviation."""
    jobs = list(jobs)
    labels = list(labels) if labels is not None else [job_label(job) for job in jobs]
    if len(labels) != len(jobs):
        raise ValueError(f"{len(jobs)} jobs but {len(labels)} labels")
    frames = [load_metrics(job) for job in jobs]
    figure = Figure(figsize=(8, 4), layout="constrained")
    ax = figure.subplots()
    if frames and all(is_evaluation(frame) for frame in frames):
        means = [frame["return"].mean() for frame in frames]
        stds = [frame["return"].std(ddof=0) for frame in frames]
        ax.bar(labels, means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
        ax.set_ylabel("mean episode return")
        ax.set_title("evaluations")
    else:
        if metric not in ("reward", "episode_length"):
            raise ValueError(f"metric must be 'reward' or 'episode_length', got {metric!r}")
        for job, label in zip(jobs, labels):
            points = training_curves(job).dropna(subset=[metric])
            ax.plot(points["step"], points[metric], label=label)
        ax.set_xlabel("iteration")
        ax.set_ylabel(metric.replace("_", " "))
        ax.legend()
        ax.set_title(f"training {metric.replace('_', ' ')}")
    ax.grid(alpha=0.3)
    return figure


def plot_evaluation(job: JobLike, title: str | None = None) -> Figure:
    """Per-episode return and length of an evaluation, successes marked."""
    metrics = load_metrics(job)
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    axes = figure.subplots(1, 2)
    if metrics.empty or not is_evaluation(metrics):
        for ax in axes:
            ax.text(0.5, 0.5, "no episodes yet", transform=ax.transAxes, ha="center", va="center", color="grey")
    else:
        success = metrics["success"].astype(bool) if "success" in metrics else pd.Series(False, index=metrics.index)
        for ax, column in ((axes[0], "return"), (axes[1], "length")):
            ax.scatter(
                metrics.loc[success, "episode"], metrics.loc[success, column], color="tab:green", label="success"
            )
            ax.scatter(
                metrics.loc[~success, "episode"], metrics.loc[~success, column], color="tab:red", label="no success"
            )
            ax.set_xlabel("episode")
            ax.set_ylabel(f"episode {column}")
            ax.grid(alpha=0.3)
        axes[0].legend()
    figure.suptitle(title or f"evaluation {job_label(job)}")
    return figure


def plot(job: JobLike) -> Figure:
    """The job's plot: per-episode results of an evaluation, training curves otherwise."""
    return plot_evaluation(job) if is_evaluation(load_metrics(job)) else plot_training(job)


def follow(job: Job, interval: float = 5.0) -> JobStatus:
    """In a notebook cell, redraw :func:`plot` of a running job every ``interval`` seconds until it ends."""
    from IPython.display import display

    handle = display(plot(job), display_id=True)  # None outside IPython: then this only waits
    while not (status := job.status()).state.is_terminal:
        time.sleep(interval)
        if handle is not None:
            handle.update(plot(job))
    if handle is not None:
        handle.update(plot(job))
    return status


def summarize(jobs: JobLike | Iterable[JobLike]) -> pd.DataFrame:
    """One row per evaluation: its summary (mean/std/min/max return, mean length, success rate, ...).

    Jobs without a summary yet are summarized from the episodes written so far.
    """
    if isinstance(jobs, (Job, str, Path)):
        jobs = [jobs]
    rows = []
    for job in jobs:
        try:
            row = load_summary(job)
        except FileNotFoundError:
            row = summarize_episodes(load_metrics(job))
        rows.append({"job": job_label(job), **row})
    return pd.DataFrame(rows).set_index("job") if rows else pd.DataFrame()


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


def videos(job: JobLike) -> list[Path]:
    """The job's clips (``videos/*.mp4``), in name order."""
    return sorted((job_dir(job) / "videos").glob("*.mp4"))


def show_videos(job: JobLike, width: int = 640, embed_limit: int = EMBED_LIMIT_BYTES) -> list[Any]:
    """Display the job's clips inline; each is embedded when smaller than ``embed_limit`` bytes, else linked
    (a linked file plays only when it lies under the notebook server's directory). Returns the Video objects."""
    from IPython.display import Video, display

    shown = []
    for path in videos(job):
        embed = path.stat().st_size <= embed_limit
        video = Video(str(path), embed=embed, width=width, html_attributes="controls loop muted")
        display(video)
        shown.append(video)
    if not shown:
        print(f"no videos in {job_dir(job) / 'videos'}; evaluate with recordVideo=True to record some")
    return shown
