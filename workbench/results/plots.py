"""Plots of a job's results, made without pyplot (a notebook shows the Figure a cell returns; widgets take PNG)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from workbench.outputs.layout import EPISODE_LENGTH, ITERATION, REWARD
from workbench.results.metrics import JobLike, is_evaluation, job_label, load_metrics, training_curves

CURVES = ((REWARD, "mean reward"), (EPISODE_LENGTH, "mean episode length"))


def curves_figure(curves: pd.DataFrame, title: str, figsize: tuple[float, float] = (10, 3.6)) -> Figure:
    """Mean reward and mean episode length against the training iteration, side by side."""
    figure = Figure(figsize=figsize, layout="constrained")
    for ax, (column, label) in zip(figure.subplots(1, 2), CURVES):
        points = curves.dropna(subset=[column]) if column in curves else curves.iloc[0:0]
        if not points.empty:
            ax.plot(points[ITERATION], points[column], marker="." if len(points) < 30 else None)
        else:
            ax.text(0.5, 0.5, "no data yet", transform=ax.transAxes, ha="center", va="center", color="grey")
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    figure.suptitle(title)
    return figure


def figure_png(figure: Figure, dpi: int = 90) -> bytes:
    """A figure as PNG bytes (for an ``Image`` widget)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def plot_training(job: JobLike, title: str | None = None) -> Figure:
    """Mean reward and mean episode length against the training iteration."""
    return curves_figure(training_curves(job), title or f"training {job_label(job)}")


def compare(jobs: Iterable[JobLike], labels: Sequence[str] | None = None, metric: str = REWARD) -> Figure:
    """Several jobs on one plot: training curves of ``metric`` (``reward`` or ``episode_length``) against the
    iteration, or, for evaluations, the mean episode return with its standard deviation."""
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
        if metric not in (REWARD, EPISODE_LENGTH):
            raise ValueError(f"metric must be {REWARD!r} or {EPISODE_LENGTH!r}, got {metric!r}")
        for job, label in zip(jobs, labels):
            points = training_curves(job).dropna(subset=[metric])
            ax.plot(points[ITERATION], points[metric], label=label)
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
            for chosen, colour, label in ((success, "tab:green", "success"), (~success, "tab:red", "no success")):
                ax.scatter(metrics.loc[chosen, "episode"], metrics.loc[chosen, column], color=colour, label=label)
            ax.set_xlabel("episode")
            ax.set_ylabel(f"episode {column}")
            ax.grid(alpha=0.3)
        axes[0].legend()
    figure.suptitle(title or f"evaluation {job_label(job)}")
    return figure


def plot(job: JobLike) -> Figure:
    """The job's plot: per-episode results of an evaluation, training curves otherwise."""
    return plot_evaluation(job) if is_evaluation(load_metrics(job)) else plot_training(job)
