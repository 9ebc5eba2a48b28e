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

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.backends.base import Job
from workbench.outputs.layout import VIDEOS
from workbench.results.metrics import (
    JobLike,
    is_evaluation,
    job_dir,
    job_label,
    load_metrics,
    load_summary,
    summarize_episodes,
    training_curves,
)
from workbench.results.plots import compare, plot, plot_evaluation, plot_training
from workbench.spec.status import JobStatus

EMBED_LIMIT_BYTES = 20 * 1024 * 1024
"""Videos up to this size are embedded in the notebook (they then survive the notebook being moved)."""


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


def videos(job: JobLike) -> list[Path]:
    """The job's clips (``videos/*.mp4``), in name order."""
    return sorted((job_dir(job) / VIDEOS).glob("*.mp4"))


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
        print(f"no videos in {job_dir(job) / VIDEOS}; evaluate with recordVideo=True to record some")
    return shown


__all__ = [
    "JobLike", "compare", "follow", "is_evaluation", "job_dir", "job_label", "load_metrics", "load_summary", "plot",
    "plot_evaluation", "plot_training", "show_videos", "summarize", "summarize_episodes", "training_curves", "videos",
]
