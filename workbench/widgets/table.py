"""Past jobs of a backend: a summary per job (task, mode, state, duration, final reward), the table widget with
open (live panel) / compare (``workbench.results``) / cancel, and the trained jobs an evaluation can take a policy
from. What a job is comes from its backend (``job.spec()``), so every backend's jobs show the same."""

from __future__ import annotations

import time
from collections.abc import Iterable
from html import escape
from typing import Any

import ipywidgets as w
import pandas as pd

from workbench.backends import Backend, Job, get_backend
from workbench.errors import WorkbenchError
from workbench.outputs.checkpoints import job_checkpoint, job_checkpoint_places
from workbench.results.plots import compare, figure_png
from workbench.spec.status import JobState, JobStatus
from workbench.widgets.panel import JobPanel, job_spec

COLUMNS = ["job_id", "mode", "task", "state", "duration_s", "final_reward", "iteration", "reason"]
HEADER = ("job", "mode", "task", "state", "duration", "final reward")


def job_summary(status: JobStatus, job: Job | None) -> dict[str, Any]:
    """Task, mode, duration and final reward of a job: what it is from its spec (none without a ``job`` to ask),
    how it went from ``status`` (the duration from the start time in its details, where the backend gives one)."""
    spec = job_spec(job) if job is not None else None
    started = status.details.get("started_at") or status.details.get("submitted_at")
    end = status.updated_at if status.state.is_terminal else time.time()
    return {
        "job_id": status.job_id,
        "mode": spec.mode if spec else None,
        "task": spec.task if spec else None,
        "state": status.state.value,
        "duration_s": round(end - started, 1) if started else None,
        "final_reward": status.progress.mean_reward,
        "iteration": status.progress.iteration,
        "reason": status.reason,
    }


def jobs_frame(backend: Backend, limit: int | None = None) -> pd.DataFrame:
    """The newest ``limit`` (default: all) jobs of a backend as a DataFrame, newest first. A run the backend lists
    but cannot hand out (an unreadable run directory) is a row with its state and reason only."""
    rows = [job_summary(status, _job_or_none(backend, status.job_id)) for status in backend.list_jobs()[:limit]]
    return pd.DataFrame(rows, columns=COLUMNS)


def _job_or_none(backend: Backend, job_id: str) -> Job | None:
    try:
        return backend.job(job_id)
    except WorkbenchError:
        return None


def policy_choices(backend: Backend) -> list[str]:
    """Ids of succeeded training jobs to evaluate, newest first.

    A job with a place on this machine (a local run) is offered only when it has a checkpoint there; a job of
    another backend as it is, since that backend finds the checkpoint when the evaluation is submitted.
    """
    choices = []
    for status in backend.list_jobs():
        if status.state is not JobState.SUCCEEDED:
            continue
        if job_checkpoint_places(status.job_id) and job_checkpoint(status.job_id) is None:
            continue
        spec = job_spec(backend.job(status.job_id))
        if spec is None or spec.mode != "evaluate":
            choices.append(status.job_id)
    return choices


class JobTable:
    """Past jobs with open (live panel), compare (reward curves) and cancel; ``backend``: a name or a backend."""

    def __init__(self, backend: str | Backend = "local", limit: int = 20) -> None:
        self.backend = get_backend(backend) if isinstance(backend, str) else backend
        self.limit = limit
        self.selected: set[str] = set()
        self.table = w.VBox([])
        self.detail = w.VBox([])
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.compare_button = w.Button(description="Compare selected", icon="line-chart")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.compare_button.on_click(lambda _: self.compare())
        self.widget = w.VBox([w.HBox([self.refresh_button, self.compare_button]), self.table, self.detail])
        self.refresh()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def frame(self) -> pd.DataFrame:
        return jobs_frame(self.backend, self.limit)

    def refresh(self) -> None:
        frame = self.frame()
        header = w.HTML(" | ".join(f"<b>{name}</b>" for name in HEADER))
        rows: list[w.Widget] = [header]
        for row in frame.itertuples():
            pick = w.Checkbox(value=row.job_id in self.selected, indent=False, layout=w.Layout(width="24px"))
            pick.observe(lambda change, jid=row.job_id: self._pick(jid, change["new"]), names="value")
            duration = f"{row.duration_s:.0f} s" if pd.notna(row.duration_s) else "-"
            reward = f"{row.final_reward:.3f}" if pd.notna(row.final_reward) else "-"
            what = f"{row.mode} {escape(str(row.task))}" if pd.notna(row.mode) else escape(str(row.reason))
            text = w.HTML(f"<code>{escape(row.job_id[:8])}</code> {what} <b>{row.state}</b> {duration} reward {reward}",
                          layout=w.Layout(width="560px"))
            open_button = w.Button(description="Open", layout=w.Layout(width="70px"))
            open_button.on_click(lambda _, jid=row.job_id: self.open(jid))
            cancel_button = w.Button(description="Cancel", layout=w.Layout(width="70px"),
                                     disabled=JobState(row.state).is_terminal)
            cancel_button.on_click(lambda _, jid=row.job_id: self.cancel(jid))
            rows.append(w.HBox([pick, text, open_button, cancel_button]))
        self.table.children = rows

    def _pick(self, job_id: str, on: bool) -> None:
        (self.selected.add if on else self.selected.discard)(job_id)

    def open(self, job_id: str) -> JobPanel | None:
        """Show the job's live panel; for a job its backend cannot hand out, the reason instead."""
        try:
            job = self.backend.job(job_id)
        except WorkbenchError as exc:
            self.detail.children = [w.HTML(f"<code>{escape(job_id)}</code>: {escape(str(exc))}")]
            return None
        panel = JobPanel(job)
        self.detail.children = [panel.widget]
        panel.refresh()
        if not panel.status.state.is_terminal:
            panel.start()
        return panel

    def cancel(self, job_id: str) -> None:
        self.backend.job(job_id).cancel("cancelled from the job table")
        self.refresh()

    def compare(self, job_ids: Iterable[str] | None = None) -> None:
        ids = list(job_ids) if job_ids is not None else sorted(self.selected)
        image = w.Image(value=figure_png(compare([self.backend.job(jid) for jid in ids])), format="png")
        self.detail.children = [w.HTML(f"comparing {len(ids)} job(s)"), image]
