"""The live panel of one job: state, progress bar, the streamed log, and reward / episode-length curves against the
training iteration, redrawn while the job trains (from the job's log and, failing that, its ``metrics.csv``).

The panel is updated from background threads while a job runs (so the notebook stays usable); ``follow()`` does
the same in the foreground, which is what a papermill run wants.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from html import escape
from typing import Any

import ipywidgets as w
import pandas as pd
from matplotlib.figure import Figure

from workbench.backends import Job
from workbench.errors import WorkbenchError
from workbench.outputs.layout import EPISODE_LENGTH, ITERATION, REWARD
from workbench.results.history import IterationHistory
from workbench.results.metrics import CURVE_COLUMNS, curves_of, load_metrics
from workbench.results.plots import curves_figure, figure_png
from workbench.spec.document import TRAIN_DEFAULTS, JobSpec
from workbench.spec.status import JobState, JobStatus, Progress

LOG_LINES = 400
LOG_TAIL = 25
PLOT_SIZE = (8.0, 3.0)
"""Inches; at the PNG's 90 dpi the width of the panel's 720 px image."""
STATE_COLOURS = {JobState.SUCCEEDED: "#080", JobState.FAILED: "#c00", JobState.CANCELLED: "#a60"}
BAR_STYLES = {JobState.SUCCEEDED: "success", JobState.FAILED: "danger", JobState.CANCELLED: "warning"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def job_spec(job: Job) -> JobSpec | None:
    """The job's spec from its backend, or None where it cannot be read (the widgets then show what its status
    tells)."""
    try:
        return job.spec()
    except WorkbenchError:
        return None


def _library_of(job: Job) -> str:
    """The job's RL library; the spec's default where its spec cannot be read, so the panel still follows the job."""
    spec = job_spec(job)
    return spec.rl_library if spec is not None else TRAIN_DEFAULTS["rlLibrary"]


def _curve_point(progress: Progress) -> dict[str, float | None]:
    return {REWARD: progress.mean_reward, EPISODE_LENGTH: progress.mean_episode_length}


class JobPanel:
    """Live view of one job: state, progress, log tail, and training curves redrawn as it runs.

    ``library`` is the job's RL library (whose log lines give the curves); by default the one its spec names.
    """

    def __init__(self, job: Job, poll_interval: float = 1.0, library: str | None = None) -> None:
        self.job = job
        self.poll_interval = poll_interval
        self.history: dict[int, dict[str, float | None]] = {}
        self.iterations = IterationHistory(job, library or _library_of(job))
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        self.status: JobStatus | None = None
        self.redraws = 0
        self._plotted: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

        self.state = w.HTML(f"<b>job</b> <code>{job.job_id}</code>")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="iteration", layout=w.Layout(width="420px"))
        self.log = w.HTML("", layout=w.Layout(width="98%"))
        self.log.add_class("workbench-log")
        self.plot = w.Image(format="png", layout=w.Layout(width="720px"))
        self.plot.add_class("workbench-plot")
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="warning")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.widget = w.VBox([w.HBox([self.state, self.cancel_button]), self.progress, self.plot, self.log])
        self.widget.add_class("workbench-job-panel")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def cancel(self) -> None:
        self.status = self.job.cancel("cancelled from the notebook")
        self._render_state()

    def start(self) -> None:
        """Follow the job in background threads (log stream + status/plot polling)."""
        for target in (self._stream_log, self._poll_loop):
            thread = threading.Thread(target=target, daemon=True, name=f"workbench-{target.__name__}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def follow(self, timeout: float | None = None) -> JobStatus:
        """Follow the job in the foreground until it ends (or ``timeout`` seconds); returns its last status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        status = self.refresh()
        while not status.state.is_terminal and (deadline is None or time.monotonic() < deadline):
            time.sleep(self.poll_interval)
            status = self.refresh()
        return status

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Wait for the background follower to see the job end."""
        for thread in self._threads:
            thread.join(timeout)
        return self.status or self.refresh()

    def refresh(self) -> JobStatus:
        """Poll status, log and metrics once and update the widgets."""
        status = self.job.status()
        self.status = status
        progress = status.progress
        for iteration, point in self.iterations.update().items():
            self.history[iteration] = _curve_point(point)
        if progress.iteration is not None and progress.iteration not in self.history:
            self.history[progress.iteration] = _curve_point(progress)
        if not self._threads or not self._threads[0].is_alive():
            self._read_log()
        self._render_state()
        self._render_plot()
        return status

    def curves(self) -> pd.DataFrame:
        """Reward / episode length per training iteration: from the job's log (every iteration, as it runs), else
        from its metrics.csv (a job whose log has no per-iteration lines)."""
        polled = pd.DataFrame([{ITERATION: iteration, **point} for iteration, point in sorted(self.history.items())],
                              columns=list(CURVE_COLUMNS))
        if polled[[REWARD, EPISODE_LENGTH]].notna().any().any():
            return polled
        try:
            return curves_of(load_metrics(self.job))
        except WorkbenchError:  # the outputs cannot be fetched (yet)
            return polled

    def figure(self, curves: pd.DataFrame | None = None) -> Figure:
        """The panel's plot: ``curves`` (by default :meth:`curves`) against the training iteration."""
        return curves_figure(self.curves() if curves is None else curves, f"job {self.job.job_id[:8]}", PLOT_SIZE)

    def _read_log(self) -> None:
        try:
            lines = list(self.job.logs(follow=False))
        except WorkbenchError:
            return
        self.lines.clear()
        self.lines.extend(_ANSI.sub("", line).rstrip("\n") for line in lines)
        self._render_log()

    def _stream_log(self) -> None:
        try:
            for line in self.job.logs(follow=True, poll_interval=0.5):
                self.lines.append(_ANSI.sub("", line).rstrip("\n"))
                self._render_log()
                if self._stop.is_set():
                    return
        except WorkbenchError as exc:
            self.lines.append(f"[log unavailable: {exc}]")
            self._render_log()

    def _render_log(self) -> None:
        """The newest lines of the log (the whole log stays in ``job.logs()``)."""
        text = escape("\n".join(list(self.lines)[-LOG_TAIL:]))
        self.log.value = ("<pre style='margin:0;padding:4px;font-size:11px;line-height:1.3;overflow-x:auto;"
                          f"border:1px solid #ccc;background:#fafafa'>{text}</pre>")

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                status = self.refresh()
            except WorkbenchError as exc:
                self.state.value = f"<span style='color:#c00'>cannot read the job's status: {escape(str(exc))}</span>"
                return
            if status.state.is_terminal:
                time.sleep(self.poll_interval)
                self.refresh()
                return
            time.sleep(self.poll_interval)

    def _render_state(self) -> None:
        status = self.status
        if status is None:
            return
        colour = STATE_COLOURS.get(status.state, "#06c")
        reason = f" &mdash; {escape(status.reason)}" if status.reason else ""
        self.state.value = (f"<b>job</b> <code>{self.job.job_id}</code> "
                            f"<b class='workbench-state' style='color:{colour}'>{status.state.value}</b>{reason}"
                            f"<br><small>{escape(status.progress.describe())}</small>")
        progress = status.progress
        self.progress.max = max(progress.max_iterations or 1, 1)
        self.progress.value = min(progress.iteration or 0, self.progress.max)
        if status.state is JobState.SUCCEEDED:
            self.progress.value = self.progress.max
        self.progress.bar_style = BAR_STYLES.get(status.state, "info")
        self.cancel_button.disabled = status.state.is_terminal

    def _render_plot(self) -> None:
        curves = self.curves()
        key = (len(curves), tuple(curves.iloc[-1].fillna(0)) if len(curves) else ())
        if key == self._plotted and self.redraws:
            return
        self._plotted = key
        self.plot.value = figure_png(self.figure(curves))
        self.redraws += 1
