"""ipywidgets front end of the workbench: submit form, live job panel, job table, video player.

- :class:`SubmitForm` builds a job spec from widgets, validates it with :func:`workbench.spec.document.parse_spec` on every
  change and shows each problem next to its field; Submit hands the spec to the chosen backend.
- :class:`JobPanel` follows one job: state, progress bar, the streamed log, and reward / episode-length curves
  redrawn while the job trains (from the job's progress and, when present, its growing ``metrics.csv``).
- :class:`JobTable` lists past jobs (state, duration, final reward) with open / compare (``workbench.results``)
  / cancel.
- :func:`video_player` plays an evaluation job's clips inline.

Widgets are updated from a background thread while a job runs (so the notebook stays usable); ``follow()``
does the same in the foreground, which is what a papermill run wants.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd

from workbench.backends import Backend, Job, backend_names, get_backend
from workbench.errors import WorkbenchError
from workbench.results.history import IterationHistory
from workbench.spec.paths import run_dir, workbench_home
from workbench.spec.document import DEVICES, RL_LIBRARIES, FieldError, JobSpec, SpecError, parse_spec
from workbench.spec.status import JobState, JobStatus
from workbench.spec.catalogue import CORE_TASK_LIBRARIES

PACKAGE_ACCEPT = ".whl,.tar.gz,.tgz,.zip"
LOG_LINES = 400
LOG_TAIL = 25
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def task_catalogue(live: bool = False, pythonpath: Iterable[str] = ()) -> dict[str, tuple[str, ...]]:
    """Task id -> RL libraries with an agent config.

    By default Isaac Lab 3.0's core table (instant); with ``live`` the installed registry, including custom
    packages on ``pythonpath`` (imports Isaac Lab in a subprocess: seconds).
    """
    catalogue = dict(CORE_TASK_LIBRARIES)
    if live:
        from workbench.spec.task_registry import list_tasks

        catalogue.update(list_tasks(list(pythonpath)))
    supported = {task: tuple(lib for lib in libs if lib in RL_LIBRARIES) for task, libs in catalogue.items()}
    return {task: libs for task, libs in supported.items() if libs}


def save_upload(name: str, content: bytes) -> Path:
    """Keep an uploaded package under ``$WORKBENCH_HOME/uploads/<sha256 prefix>/<name>`` and return its path."""
    safe = Path(name).name
    if not safe or safe in (".", ".."):
        raise WorkbenchError(f"cannot save an upload named {name!r}")
    digest = hashlib.sha256(content).hexdigest()[:16]
    path = workbench_home() / "uploads" / digest / safe
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def parse_overrides(text: str) -> dict[str, Any]:
    """``key=value`` lines (values read as JSON where they parse, e.g. ``3e-4``, ``true``) -> overrides."""
    overrides: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"line {number}: write key=value, e.g. agent.algorithm.learning_rate=3e-4")
        try:
            overrides[key.strip()] = json.loads(value.strip())
        except ValueError:
            overrides[key.strip()] = value.strip()
    return overrides


def _label(text: str) -> w.Label:
    return w.Label(text, layout=w.Layout(width="130px"))


def _error_box() -> w.HTML:
    return w.HTML("", layout=w.Layout(margin="0 0 0 8px"))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------------------------------- submit form


class SubmitForm:
    """A form for one training or evaluation job; ``widget`` is what to display."""

    FIELDS = ("task", "rlLibrary", "numEnvs", "maxIterations", "numEpisodes", "seed", "device", "overrides",
              "numNodes", "backend", "customEnvironment", "policy")

    def __init__(self, mode: str = "train", backend: str = "local", task: str = "Isaac-Cartpole-Direct",
                 rl_library: str = "rsl_rl", num_envs: int = 16, max_iterations: int = 2, num_episodes: int = 2,
                 device: str = "cpu", follow: bool = True, poll_interval: float = 1.0,
                 catalogue: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.mode = mode
        self.catalogue = dict(catalogue) if catalogue is not None else task_catalogue()
        self.follow = follow
        self.poll_interval = poll_interval
        self.custom_environment: Path | None = None
        self.spec: JobSpec | None = None
        self.job: Job | None = None
        self.panel: JobPanel | None = None
        self._on_submit: list[Callable[[Job], None]] = []

        self.task = w.Combobox(value=task, options=sorted(self.catalogue), ensure_option=False,
                               placeholder="Isaac Lab task id", layout=w.Layout(width="340px"))
        libraries = self._libraries(task)
        self.rl_library = w.Dropdown(options=libraries, value=rl_library if rl_library in libraries else libraries[0],
                                     layout=w.Layout(width="160px"))
        self.num_envs = w.IntText(value=num_envs, layout=w.Layout(width="120px"))
        self.max_iterations = w.IntText(value=max_iterations, layout=w.Layout(width="120px"))
        self.num_episodes = w.IntText(value=num_episodes, layout=w.Layout(width="120px"))
        self.seed = w.Text(value="", placeholder="random", layout=w.Layout(width="120px"))
        self.device = w.Dropdown(options=list(DEVICES), value=device, layout=w.Layout(width="120px"))
        self.overrides = w.Textarea(value="", placeholder="agent.algorithm.learning_rate=3e-4",
                                    layout=w.Layout(width="340px", height="52px"))
        self.num_nodes = w.IntText(value=1, layout=w.Layout(width="120px"))
        self.backend = w.Dropdown(options=backend_names(), value=backend, layout=w.Layout(width="120px"))
        self.upload = w.FileUpload(accept=PACKAGE_ACCEPT, multiple=False, description="Custom env")
        self.upload_name = w.HTML("<i>none</i>")
        self.policy = w.Combobox(value="", options=[], ensure_option=False,
                                 placeholder="job id or checkpoint path", layout=w.Layout(width="340px"))
        self.submit_button = w.Button(description="Submit", button_style="primary", icon="play")
        self.message = w.HTML("")
        self.output = w.VBox([])
        self.errors = {name: _error_box() for name in self.FIELDS}

        rows = [
            ("Task", self.task, "task"), ("RL library", self.rl_library, "rlLibrary"),
            ("Envs", self.num_envs, "numEnvs"),
            ("Iterations", self.max_iterations, "maxIterations") if mode == "train" else ("Episodes", self.num_episodes, "numEpisodes"),
            ("Seed", self.seed, "seed"), ("Device", self.device, "device"), ("Overrides", self.overrides, "overrides"),
            ("Nodes", self.num_nodes, "numNodes"), ("Backend", self.backend, "backend"),
            ("Environment", w.HBox([self.upload, self.upload_name]), "customEnvironment"),
        ]
        if mode == "evaluate":
            rows.append(("Policy", self.policy, "policy"))
            self.refresh_policies()
        self.form = w.VBox([w.HBox([_label(text), widget, self.errors[key]]) for text, widget, key in rows])
        self.widget = w.VBox([self.form, w.HBox([self.submit_button, self.message]), self.output])

        for widget in (self.task, self.rl_library, self.num_envs, self.max_iterations, self.num_episodes, self.seed,
                       self.device, self.overrides, self.num_nodes, self.backend, self.policy):
            widget.observe(self._changed, names="value")
        for widget in (self.num_envs, self.max_iterations, self.num_episodes, self.num_nodes):
            widget.continuous_update = True
        self.task.observe(self._task_changed, names="value")
        if mode == "evaluate":
            self.backend.observe(lambda _: self.refresh_policies(), names="value")
        self.upload.observe(self._uploaded, names="value")
        self.submit_button.on_click(lambda _: self.submit())
        self.validate()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def on_submit(self, callback: Callable[[Job], None]) -> None:
        """Call ``callback(job)`` after each submission."""
        self._on_submit.append(callback)

    def _libraries(self, task: str) -> list[str]:
        return list(self.catalogue.get(task, RL_LIBRARIES))

    def _task_changed(self, change: Mapping[str, Any]) -> None:
        libraries = self._libraries(change["new"])
        if list(self.rl_library.options) != libraries:
            current = self.rl_library.value
            self.rl_library.options = libraries
            preferred = [lib for lib in (current, "rsl_rl") if lib in libraries]
            self.rl_library.value = preferred[0] if preferred else libraries[0]

    def _changed(self, _change: Mapping[str, Any]) -> None:
        self.validate()

    def _uploaded(self, change: Mapping[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        try:
            self.custom_environment = save_upload(item["name"], bytes(item["content"]))
        except WorkbenchError as exc:
            self.errors["customEnvironment"].value = f"<span style='color:#c00'>{_escape(str(exc))}</span>"
            return
        self.upload_name.value = f"<code>{_escape(self.custom_environment.name)}</code>"
        self.validate()

    def set_custom_environment(self, path: str | Path | None) -> None:
        """Use a package already on disk (what an upload does, without the browser)."""
        self.custom_environment = Path(path) if path else None
        self.upload_name.value = f"<code>{_escape(Path(path).name)}</code>" if path else "<i>none</i>"
        self.validate()

    def refresh_policies(self) -> None:
        """Fill the policy picker with past training jobs that left checkpoints."""
        try:
            jobs = policy_choices(get_backend(self.backend.value))
        except WorkbenchError:
            jobs = []
        self.policy.options = jobs
        if not self.policy.value and jobs:
            self.policy.value = jobs[0]

    def document(self) -> dict[str, Any]:
        """The pipeline document the widgets describe (not yet validated)."""
        training: dict[str, Any] = {"mode": self.mode, "task": self.task.value.strip(), "rlLibrary": self.rl_library.value,
                                    "numEnvs": self.num_envs.value, "device": self.device.value}
        if self.mode == "train":
            training["maxIterations"] = self.max_iterations.value
        else:
            training["numEpisodes"] = self.num_episodes.value
            training["policy"] = self.policy.value.strip() or None
        seed = self.seed.value.strip()
        training["seed"] = None if not seed else int(seed) if seed.isdigit() else seed
        training["overrides"] = parse_overrides(self.overrides.value)
        document: dict[str, Any] = {"trainingConfig": training, "computeConfig": {"numNodes": self.num_nodes.value}}
        if self.custom_environment is not None:
            document["customEnvironmentS3Uri"] = str(self.custom_environment)
        return document

    def validate(self) -> JobSpec | None:
        """Validate the current values; show each problem next to its field; returns the spec when valid."""
        for box in self.errors.values():
            box.value = ""
        problems: list[FieldError] = []
        try:
            self.spec = parse_spec(self.document(), known_tasks=self.catalogue)
        except ValueError as exc:
            self.spec = None
            problems = list(exc.errors) if isinstance(exc, SpecError) else [FieldError("trainingConfig.overrides", str(exc))]
        if self.mode == "evaluate" and self.spec is not None and not self.spec.training.get("policy"):
            problems.append(FieldError("trainingConfig.policy", "pick a trained job or give a checkpoint path"))
            self.spec = None
        general = []
        for problem in problems:
            box = self.errors.get(_field_of(problem.path))
            text = f"<span style='color:#c00'>&#9888; {_escape(problem.message)}</span>"
            if box is None:
                general.append(f"{_escape(str(problem))}")
            else:
                box.value = box.value + ("<br>" if box.value else "") + text
        self.submit_button.disabled = self.spec is None
        self.message.value = "<span style='color:#c00'>" + "<br>".join(general) + "</span>" if general else (
            "" if self.spec is None else "<span style='color:#080'>ready</span>")
        return self.spec

    def submit(self) -> Job | None:
        """Submit the job to the chosen backend and show its panel (followed in the background)."""
        spec = self.validate()
        if spec is None:
            self.message.value = "<span style='color:#c00'>fix the fields marked above first</span>"
            return None
        try:
            self.job = get_backend(self.backend.value).submit(spec)
        except WorkbenchError as exc:
            self.message.value = f"<span style='color:#c00'>submission failed: {_escape(str(exc))}</span>"
            return None
        self.message.value = f"submitted job <code>{self.job.job_id}</code>"
        self.panel = JobPanel(self.job, poll_interval=self.poll_interval, library=spec.rl_library)
        self.output.children = [self.panel.widget]
        if self.follow:
            self.panel.start()
        for callback in self._on_submit:
            callback(self.job)
        return self.job


def _field_of(path: str) -> str:
    """The form field a spec error path belongs to."""
    if path == "customEnvironmentS3Uri":
        return "customEnvironment"
    if path in ("trainingConfig.policy", "trainingConfig.policyS3Uri"):
        return "policy"
    if path.startswith("trainingConfig.overrides"):
        return "overrides"
    return path.split(".")[1] if path.count(".") == 1 else path


def policy_choices(backend: Backend) -> list[str]:
    """Ids of finished training jobs with checkpoints, newest first."""
    choices = []
    for status in backend.list_jobs():
        if status.state is not JobState.SUCCEEDED or job_summary(status).get("mode") == "evaluate":
            continue
        local = run_dir(status.job_id) / "checkpoints"
        if local.parent.exists() and not any(local.glob("*.pt")):
            continue
        choices.append(status.job_id)
    return choices


# ------------------------------------------------------------------------------------------------------ job panel


def training_curves(history: pd.DataFrame, title: str = "") -> bytes:
    """PNG of reward and episode length against iteration (two panels)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 3), dpi=90)
    axes = figure.subplots(1, 2)
    for ax, column, label in ((axes[0], "reward", "mean reward"), (axes[1], "episode_length", "mean episode length")):
        data = history.dropna(subset=[column]) if column in history else history.iloc[0:0]
        ax.plot(data["step"], data[column], marker="o", markersize=3) if not data.empty else None
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(left=0)
        if data.empty:
            ax.text(0.5, 0.5, "waiting for data", ha="center", va="center", transform=ax.transAxes, color="grey")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def read_metrics(job: Job) -> pd.DataFrame | None:
    """The job's ``metrics.csv`` (step, reward, episode_length, ...) when it has one yet."""
    try:
        path = job.outputs() / "metrics.csv"
    except WorkbenchError:
        return None
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        return pd.read_csv(path)
    except (ValueError, OSError):
        return None


class JobPanel:
    """Live view of one job: state, progress, log tail, and training curves redrawn as it runs."""

    def __init__(self, job: Job, poll_interval: float = 1.0, library: str | None = None) -> None:
        self.job = job
        self.poll_interval = poll_interval
        self.history: dict[int, dict[str, float | None]] = {}
        self.iterations = IterationHistory(job, library or _job_library(job.job_id))
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
            self.history[iteration] = {"reward": point.mean_reward, "episode_length": point.mean_episode_length}
        if progress.iteration is not None and progress.iteration not in self.history:
            self.history[progress.iteration] = {"reward": progress.mean_reward, "episode_length": progress.mean_episode_length}
        if not self._threads or not self._threads[0].is_alive():
            self._read_log()
        self._render_state()
        self._render_plot()
        return status

    def curves(self) -> pd.DataFrame:
        """Reward / episode length per iteration: from the job's log (every iteration, as it runs), else from its
        metrics.csv (a job whose log has no per-iteration lines)."""
        polled = pd.DataFrame([{"step": k, **v} for k, v in sorted(self.history.items())],
                              columns=["step", "reward", "episode_length"])
        if polled[["reward", "episode_length"]].notna().any().any():
            return polled
        metrics = read_metrics(self.job)
        if metrics is None or "step" not in metrics:
            return polled
        return metrics[[c for c in ("step", "reward", "episode_length") if c in metrics]]

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
        text = _escape("\n".join(list(self.lines)[-LOG_TAIL:]))
        self.log.value = ("<pre style='margin:0;padding:4px;font-size:11px;line-height:1.3;overflow-x:auto;"
                          f"border:1px solid #ccc;background:#fafafa'>{text}</pre>")

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                status = self.refresh()
            except WorkbenchError as exc:
                self.state.value = f"<span style='color:#c00'>cannot read the job's status: {_escape(str(exc))}</span>"
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
        colour = {"SUCCEEDED": "#080", "FAILED": "#c00", "CANCELLED": "#a60"}.get(status.state.value, "#06c")
        reason = f" &mdash; {_escape(status.reason)}" if status.reason else ""
        self.state.value = (f"<b>job</b> <code>{self.job.job_id}</code> <b class='workbench-state' style='color:{colour}'>"
                            f"{status.state.value}</b>{reason}<br><small>{_escape(status.progress.describe())}</small>")
        progress = status.progress
        self.progress.max = max(progress.max_iterations or 1, 1)
        self.progress.value = min(progress.iteration or 0, self.progress.max)
        if status.state is JobState.SUCCEEDED:
            self.progress.value = self.progress.max
        self.progress.bar_style = {"SUCCEEDED": "success", "FAILED": "danger", "CANCELLED": "warning"}.get(status.state.value, "info")
        self.cancel_button.disabled = status.state.is_terminal

    def _render_plot(self) -> None:
        curves = self.curves()
        key = (len(curves), tuple(curves.iloc[-1].fillna(0)) if len(curves) else ())
        if key == self._plotted and self.redraws:
            return
        self._plotted = key
        self.plot.value = training_curves(curves, f"job {self.job.job_id[:8]}")
        self.redraws += 1


def _job_library(job_id: str) -> str:
    """The RL library of a local job (from its run directory's spec), ``rsl_rl`` when unknown."""
    path = run_dir(job_id) / "spec.json"
    try:
        return json.loads(path.read_text())["trainingConfig"]["rlLibrary"]
    except (OSError, ValueError, KeyError, TypeError):
        return "rsl_rl"


# ------------------------------------------------------------------------------------------------------ job table


def job_summary(status: JobStatus) -> dict[str, Any]:
    """Task, mode, duration and final reward of a job, from its status details or its local run directory."""
    details = dict(status.details)
    spec_path = run_dir(status.job_id) / "spec.json"
    if ("task" not in details or "mode" not in details) and spec_path.exists():
        try:
            training = json.loads(spec_path.read_text()).get("trainingConfig", {})
            details.setdefault("task", training.get("task"))
            details.setdefault("mode", training.get("mode"))
        except ValueError:
            pass
    started = details.get("started_at") or details.get("submitted_at")
    if started is None and spec_path.exists():
        started = spec_path.stat().st_mtime
    end = status.updated_at if status.state.is_terminal else time.time()
    return {
        "job_id": status.job_id,
        "mode": details.get("mode"),
        "task": details.get("task"),
        "state": status.state.value,
        "duration_s": round(end - started, 1) if started else None,
        "final_reward": status.progress.mean_reward,
        "iteration": status.progress.iteration,
        "reason": status.reason,
    }


def jobs_frame(backend: Backend) -> pd.DataFrame:
    """Past jobs of a backend as a DataFrame (newest first)."""
    return pd.DataFrame([job_summary(status) for status in backend.list_jobs()],
                        columns=["job_id", "mode", "task", "state", "duration_s", "final_reward", "iteration", "reason"])


def figure_png(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes (for an ``Image`` widget)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


class JobTable:
    """Past jobs with open (live panel), compare (reward curves) and cancel."""

    def __init__(self, backend: str = "local", limit: int = 20) -> None:
        self.backend = get_backend(backend)
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
        return jobs_frame(self.backend).head(self.limit)

    def refresh(self) -> None:
        frame = self.frame()
        header = w.HTML("<b>" + "</b> | <b>".join(["job", "mode", "task", "state", "duration", "final reward"]) + "</b>")
        rows: list[w.Widget] = [header]
        for row in frame.itertuples():
            pick = w.Checkbox(value=row.job_id in self.selected, indent=False, layout=w.Layout(width="24px"))
            pick.observe(lambda change, jid=row.job_id: self._pick(jid, change["new"]), names="value")
            duration = f"{row.duration_s:.0f} s" if pd.notna(row.duration_s) else "-"
            reward = f"{row.final_reward:.3f}" if pd.notna(row.final_reward) else "-"
            text = w.HTML(f"<code>{row.job_id[:8]}</code> {row.mode or ''} {_escape(str(row.task or ''))} "
                          f"<b>{row.state}</b> {duration} reward {reward}", layout=w.Layout(width="560px"))
            open_button = w.Button(description="Open", layout=w.Layout(width="70px"))
            open_button.on_click(lambda _, jid=row.job_id: self.open(jid))
            cancel_button = w.Button(description="Cancel", layout=w.Layout(width="70px"),
                                     disabled=JobState(row.state).is_terminal)
            cancel_button.on_click(lambda _, jid=row.job_id: self.cancel(jid))
            rows.append(w.HBox([pick, text, open_button, cancel_button]))
        self.table.children = rows

    def _pick(self, job_id: str, on: bool) -> None:
        (self.selected.add if on else self.selected.discard)(job_id)

    def open(self, job_id: str) -> JobPanel:
        panel = JobPanel(self.backend.job(job_id))
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
        from workbench import results

        image = w.Image(value=figure_png(results.compare([self.backend.job(jid) for jid in ids])), format="png")
        self.detail.children = [w.HTML(f"comparing {len(ids)} job(s)"), image]


# --------------------------------------------------------------------------------------------------- video player


def video_player(source: Job | str | Path, width: int = 640) -> w.Widget:
    """Inline player for an evaluation job's clips (``videos/*.mp4``), with a picker when there are several."""
    directory = source.outputs() if isinstance(source, Job) else Path(source)
    clips = sorted(directory.glob("videos/*.mp4")) or sorted(directory.glob("*.mp4"))
    if not clips:
        return w.HTML(f"<i>no videos under {_escape(str(directory))}</i>")
    video = w.Video(value=clips[0].read_bytes(), format="mp4", width=width, autoplay=False, loop=False, controls=True)
    picker = w.Dropdown(options=[(clip.name, str(clip)) for clip in clips], value=str(clips[0]), description="clip")
    picker.observe(lambda change: setattr(video, "value", Path(change["new"]).read_bytes()), names="value")
    return w.VBox([picker, video]) if len(clips) > 1 else video
