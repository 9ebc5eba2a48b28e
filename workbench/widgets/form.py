"""The submit form: a job spec built from widgets, validated by :func:`workbench.spec.parse_spec` on every change,
each problem shown next to its field; Submit hands the spec to the chosen backend and shows the job's panel. On the
aws backend it also asks for the job's EC2 capacity and shows its estimated on-demand and spot prices, and which one
the job will use where the stack's capacity is known (``stack_capacity``)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

import ipywidgets as w

from workbench.backends import Backend, Job, backend_names, get_backend
from workbench.backends.aws_costs import estimate
from workbench.errors import SpecError, WorkbenchError
from workbench.results.estimate import aws_cost, expected_time
from workbench.spec.assets import check_offline
from workbench.spec.capacity import DEFAULT_JOB_CAPACITY, JOB_CAPACITIES, ON_DEMAND, CapacityUnavailable, placement
from workbench.spec.catalogue import CORE_TASK_LIBRARIES
from workbench.spec.devices import resolve_device
from workbench.spec.document import DEVICES, RL_LIBRARIES, FieldError, JobSpec, parse_spec
from workbench.spec.paths import workbench_home
from workbench.spec.settings import ASSETS
from workbench.widgets.panel import JobPanel
from workbench.widgets.table import policy_choices

PACKAGE_ACCEPT = ".whl,.tar.gz,.tgz,.zip"
OVERRIDES = "trainingConfig.overrides"


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
    """``key=value`` lines (values read as JSON where they parse, e.g. ``3e-4``, ``true``) -> overrides.

    A malformed line raises a :class:`SpecError` at ``trainingConfig.overrides``, so the form shows it where it
    shows the spec's own override errors.
    """
    overrides: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SpecError([FieldError(OVERRIDES, f"line {number}: write key=value, e.g. "
                                                   "agent.algorithm.learning_rate=3e-4")])
        try:
            overrides[key.strip()] = json.loads(value.strip())
        except ValueError:
            overrides[key.strip()] = value.strip()
    return overrides


def _label(text: str) -> w.Label:
    return w.Label(text, layout=w.Layout(width="130px"))


def _error_box() -> w.HTML:
    return w.HTML("", layout=w.Layout(margin="0 0 0 8px"))


def _field_of(path: str) -> str:
    """The form field a spec error path belongs to."""
    if path == "customEnvironmentS3Uri":
        return "customEnvironment"
    if path in ("trainingConfig.policy", "trainingConfig.policyS3Uri"):
        return "policy"
    if path.startswith(OVERRIDES):
        return "overrides"
    return path.split(".")[1] if path.count(".") == 1 else path


class SubmitForm:
    """A form for one training or evaluation job; ``widget`` is what to display."""

    FIELDS = ("task", "rlLibrary", "numEnvs", "maxIterations", "numEpisodes", "seed", "device", "overrides",
              "numNodes", "backend", "capacity", "customEnvironment", "policy")

    def __init__(self, mode: str = "train", backend: str = "local", task: str = "Isaac-Cartpole-Direct",
                 rl_library: str = "rsl_rl", num_envs: int = 16, max_iterations: int = 2, num_episodes: int = 2,
                 device: str = "cpu", follow: bool = True, poll_interval: float = 1.0,
                 catalogue: Mapping[str, tuple[str, ...]] | None = None, stack_capacity: str | None = None,
                 submit_to: Backend | None = None) -> None:
        self.mode = mode
        self.submit_to = submit_to
        """A connected backend to submit to when it is the one chosen (else ``get_backend`` builds it by name)."""
        self.stack_capacity = stack_capacity
        """The aws stack's capacity (its ``Capacity`` output), where known: the form then says what a job will use."""
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
        self.capacity = w.Dropdown(options=list(JOB_CAPACITIES), value=DEFAULT_JOB_CAPACITY,
                                   layout=w.Layout(width="120px"))
        self.cost = w.HTML("", layout=w.Layout(margin="0 0 0 8px"))
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
            ("Iterations", self.max_iterations, "maxIterations") if mode == "train"
            else ("Episodes", self.num_episodes, "numEpisodes"),
            ("Seed", self.seed, "seed"), ("Device", self.device, "device"), ("Overrides", self.overrides, "overrides"),
            ("Nodes", self.num_nodes, "numNodes"), ("Backend", self.backend, "backend"),
            ("Capacity", w.HBox([self.capacity, self.cost]), "capacity"),
            ("Environment", w.HBox([self.upload, self.upload_name]), "customEnvironment"),
        ]
        if mode == "evaluate":
            rows.append(("Policy", self.policy, "policy"))
            self.refresh_policies()
        self.rows = {key: w.HBox([_label(text), widget, self.errors[key]]) for text, widget, key in rows}
        self.form = w.VBox(list(self.rows.values()))
        self.widget = w.VBox([self.form, w.HBox([self.submit_button, self.message]), self.output])

        for widget in (self.task, self.rl_library, self.num_envs, self.max_iterations, self.num_episodes, self.seed,
                       self.device, self.overrides, self.num_nodes, self.backend, self.capacity, self.policy):
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
            self.errors["customEnvironment"].value = f"<span style='color:#c00'>{escape(str(exc))}</span>"
            return
        self.upload_name.value = f"<code>{escape(self.custom_environment.name)}</code>"
        self.validate()

    def set_custom_environment(self, path: str | Path | None) -> None:
        """Use a package already on disk (what an upload does, without the browser)."""
        self.custom_environment = Path(path) if path else None
        self.upload_name.value = f"<code>{escape(Path(path).name)}</code>" if path else "<i>none</i>"
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
        """The pipeline document the widgets describe (not yet validated; malformed overrides raise SpecError)."""
        training: dict[str, Any] = {"mode": self.mode, "task": self.task.value.strip(),
                                    "rlLibrary": self.rl_library.value, "numEnvs": self.num_envs.value,
                                    "device": self.device.value}
        if self.mode == "train":
            training["maxIterations"] = self.max_iterations.value
        else:
            training["numEpisodes"] = self.num_episodes.value
            training["policy"] = self.policy.value.strip() or None
        seed = self.seed.value.strip()
        training["seed"] = None if not seed else int(seed) if seed.isdigit() else seed
        training["overrides"] = parse_overrides(self.overrides.value)
        document: dict[str, Any] = {"trainingConfig": training, "computeConfig": {"numNodes": self.num_nodes.value}}
        if self.backend.value == "aws":
            document["computeConfig"]["capacity"] = self.capacity.value
        if self.custom_environment is not None:
            document["customEnvironmentS3Uri"] = str(self.custom_environment)
        return document

    def validate(self) -> JobSpec | None:
        """Validate the current values; show each problem next to its field; returns the spec when valid."""
        for box in self.errors.values():
            box.value = ""
        problems: tuple[FieldError, ...] = ()
        try:
            self.spec = parse_spec(self.document(), known_tasks=self.catalogue)
            if self.backend.value == "local":  # the aws image loads assets from NVIDIA's server
                check_offline(self.spec, os.environ.get("WORKBENCH_ASSETS", ASSETS))
        except SpecError as exc:
            self.spec = None
            problems = exc.errors
        general = []
        for problem in problems:
            box = self.errors.get(_field_of(problem.path))
            text = f"<span style='color:#c00'>&#9888; {escape(problem.message)}</span>"
            if box is None:
                general.append(escape(str(problem)))
            else:
                box.value = box.value + ("<br>" if box.value else "") + text
        self._show_capacity()
        self.submit_button.disabled = self.spec is None
        self.message.value = "<span style='color:#c00'>" + "<br>".join(general) + "</span>" if general else (
            "" if self.spec is None else f"<span style='color:#080'>ready</span>; {escape(self._expected_time())}")
        return self.spec

    def _expected_time(self) -> str:
        """What the valid job will take, from this machine's measured rates (a GPU instance's on aws)."""
        if self.backend.value == "aws":
            return aws_cost(self.spec)[0].describe()
        return expected_time(self.spec, resolve_device(self.device.value)).describe()

    def _show_capacity(self) -> None:
        """The capacity row on the aws backend only: both estimated prices of the valid job and the one it uses."""
        aws = self.backend.value == "aws"
        self.rows["capacity"].layout.display = "" if aws else "none"
        self.cost.value = ""
        if not aws or self.spec is None:
            return
        asked = self.spec.compute["capacity"]
        uses = None if asked == DEFAULT_JOB_CAPACITY else asked
        if self.stack_capacity is not None:
            try:
                uses = placement(asked, self.stack_capacity, self.spec.num_nodes > 1).uses
            except CapacityUnavailable as exc:
                self.errors["capacity"].value = f"<span style='color:#c00'>&#9888; {escape(str(exc))}</span>"
                self.spec = None
                return
        cost = estimate(self.spec, uses=uses or ON_DEMAND)
        used = f"uses {uses}" if uses else "uses what the stack offers first"
        self.cost.value = (f"on-demand ${cost.at(cost.on_demand_per_hour):.2f}, "
                           f"spot ~${cost.at(cost.spot_per_hour):.2f} (estimates); {escape(used)}")

    def submit(self) -> Job | None:
        """Submit the job to the chosen backend and show its panel (followed in the background)."""
        spec = self.validate()
        if spec is None:
            self.message.value = "<span style='color:#c00'>fix the fields marked above first</span>"
            return None
        try:
            chosen = self.backend.value
            target = self.submit_to if self.submit_to is not None and self.submit_to.name == chosen else None
            self.job = (target or get_backend(chosen)).submit(spec)
        except WorkbenchError as exc:
            self.message.value = f"<span style='color:#c00'>submission failed: {escape(str(exc))}</span>"
            return None
        self.message.value = f"submitted job <code>{self.job.job_id}</code>"
        self.panel = JobPanel(self.job, poll_interval=self.poll_interval, library=spec.rl_library)
        self.output.children = [self.panel.widget]
        if self.follow:
            self.panel.start()
        for callback in self._on_submit:
            callback(self.job)
        return self.job
