"""Hyper-parameter sweeps over job-spec fields and agent/env overrides, run on any backend.

A sweep is an optuna study. Strategies (``grid``, ``random``, ``tpe``) are small registered sampler factories;
pruners (``none``, ``median``, ``halving``) stop poor trials from their intermediate progress by cancelling
the trial's job. Trials run directly through the backend or as papermill-executed notebooks (the executed
notebook is kept as the trial's report).

State lives in the sweep directory (default ``$WORKBENCH_HOME/sweeps/<name>/``):

- ``study.db``      the optuna study (SQLite RDB storage): parameters, intermediate values, results
- ``journal.json``  trial number -> job id, parameters, device slot, report path; elapsed time and cost
- ``sweep.json``    the sweep's configuration, so ``Sweep.open(name)`` can continue it
- ``reports/``      executed notebooks of notebook trials

Recovery: a killed sweep continues where it stopped when run again. Finished trials are never re-run; trials
whose job was already submitted are re-attached to that job (it keeps running without the sweep); a trial killed
before its job was submitted is marked failed and its parameters are queued again.

Example::

    sweep = Sweep("lr", base={"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 64}},
                  space={"agent.algorithm.learning_rate": FloatRange(1e-4, 1e-2, log=True),
                         "maxIterations": Choice([10, 20])},
                  strategy="tpe", pruner="median", budget=Budget(max_trials=8))
    frame = sweep.run()
"""

from __future__ import annotations

import copy
import inspect
import itertools
import json
import logging
import math
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from workbench.backends import Backend, Job, backend_class, get_backend
from workbench.errors import WorkbenchError
from workbench.results.history import IterationHistory
from workbench.spec.paths import workbench_home
from workbench.transport.atomic import write_json_atomic
from workbench.spec.document import COMPUTE_DEFAULTS, EVALUATE_DEFAULTS, TRAIN_DEFAULTS, JobSpec, SpecError, parse_spec
from workbench.spec.status import JobState, JobStatus

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = {"local": 1, "aws": 4}
PROGRESS_OBJECTIVES = ("mean_reward", "mean_episode_length", "steps_per_second")
NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


class SweepError(WorkbenchError):
    """The sweep cannot be set up or continued; the message says why."""


# ---------------------------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class Choice:
    """One of a list of values (strings, numbers, booleans)."""

    values: tuple[Any, ...]

    def __init__(self, values: Sequence[Any]) -> None:
        if not values:
            raise SweepError("Choice needs at least one value")
        object.__setattr__(self, "values", tuple(values))


@dataclass(frozen=True)
class IntRange:
    """An integer from ``low`` to ``high`` inclusive, in steps of ``step`` (or log-uniform)."""

    low: int
    high: int
    step: int = 1
    log: bool = False


@dataclass(frozen=True)
class FloatRange:
    """A float from ``low`` to ``high`` (log-uniform with ``log=True``, e.g. learning rates)."""

    low: float
    high: float
    log: bool = False


Dimension = Choice | IntRange | FloatRange
_DIMENSIONS: dict[str, type] = {"choice": Choice, "int": IntRange, "float": FloatRange}


def suggest(trial: optuna.Trial, name: str, dimension: Dimension) -> Any:
    """Ask the trial for a value of one dimension."""
    if isinstance(dimension, Choice):
        return trial.suggest_categorical(name, list(dimension.values))
    if isinstance(dimension, IntRange):
        return trial.suggest_int(name, dimension.low, dimension.high, step=dimension.step, log=dimension.log)
    return trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)


def grid_points(space: Mapping[str, Dimension]) -> list[dict[str, Any]]:
    """Every combination of the space's values, in declared order (floats ranges cannot be gridded)."""
    axes = []
    for name, dimension in space.items():
        if isinstance(dimension, Choice):
            axes.append(list(dimension.values))
        elif isinstance(dimension, IntRange) and not dimension.log:
            axes.append(list(range(dimension.low, dimension.high + 1, dimension.step)))
        else:
            raise SweepError(f"grid search needs discrete values; give {name!r} as Choice([...]) instead")
    return [dict(zip(space, combo)) for combo in itertools.product(*axes)]


def _space_to_json(space: Mapping[str, Dimension]) -> dict[str, Any]:
    kinds = {cls: kind for kind, cls in _DIMENSIONS.items()}
    return {name: {"type": kinds[type(d)], **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(d).items()}}
            for name, d in space.items()}


def _space_from_json(doc: Mapping[str, Any]) -> dict[str, Dimension]:
    space: dict[str, Dimension] = {}
    for name, item in doc.items():
        item = dict(item)
        space[name] = _DIMENSIONS[item.pop("type")](**item)
    return space


# ---------------------------------------------------------------------------------- strategies and pruners

SamplerFactory = Callable[[Mapping[str, Dimension], "int | None"], optuna.samplers.BaseSampler]
_STRATEGIES: dict[str, SamplerFactory] = {}
_PRUNERS: dict[str, Callable[[], optuna.pruners.BasePruner]] = {}


def register_strategy(name: str, factory: SamplerFactory) -> None:
    """Register a search strategy: ``factory(space, seed)`` returns an optuna sampler."""
    _STRATEGIES[name] = factory


def register_pruner(name: str, factory: Callable[[], optuna.pruners.BasePruner]) -> None:
    """Register an early-stopping rule: ``factory()`` returns an optuna pruner."""
    _PRUNERS[name] = factory


def strategy_names() -> list[str]:
    return sorted(_STRATEGIES)


def pruner_names() -> list[str]:
    return sorted(_PRUNERS)


def _grid_sampler(space: Mapping[str, Dimension], seed: int | None) -> optuna.samplers.BaseSampler:
    """Grid points are queued in declared order when the study is created (:meth:`Sweep.study`), each once;
    the sampler only hands the queued values out (optuna's GridSampler breaks on queued trials)."""
    grid_points(space)
    return optuna.samplers.RandomSampler(seed=seed)


register_strategy("grid", _grid_sampler)
register_strategy("random", lambda space, seed: optuna.samplers.RandomSampler(seed=seed))
register_strategy("tpe", lambda space, seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=2))
register_pruner("none", optuna.pruners.NopPruner)
register_pruner("median", lambda: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
register_pruner("halving", lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2))


# ------------------------------------------------------------------------------------------- spec building


def apply_params(base: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The base pipeline document with the trial's parameters set.

    ``agent.*``/``env.*`` names go to ``trainingConfig.overrides``; ``trainingConfig.x``/``computeConfig.x``
    set that field; a bare spec field name (``numEnvs``, ``numNodes``) finds its section.
    """
    document = copy.deepcopy(dict(base))
    training = document.setdefault("trainingConfig", {})
    for name, value in params.items():
        if name.startswith(("agent.", "env.")):
            training.setdefault("overrides", {})[name] = value
        elif name.startswith(("trainingConfig.", "computeConfig.")):
            section, key = name.split(".", 1)
            document.setdefault(section, {})[key] = value
        elif name in TRAIN_DEFAULTS or name in EVALUATE_DEFAULTS:
            training[name] = value
        elif name in COMPUTE_DEFAULTS:
            document.setdefault("computeConfig", {})[name] = value
        elif name == "customEnvironmentS3Uri":
            document[name] = value
        else:
            raise SweepError(f"parameter {name!r} is neither a spec field nor an 'agent.'/'env.' override")
    return document


# -------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Budget:
    """Stop launching trials after ``max_trials``, ``max_seconds`` of sweep time, or ``max_cost`` (USD).

    When the time or cost budget runs out, running trials are cancelled too. Cost counts only on backends
    that estimate it (``backend.estimate_cost(job_id)``, the aws backend); local jobs cost nothing.
    """

    max_trials: int = 10
    max_seconds: float | None = None
    max_cost: float | None = None


@dataclass(frozen=True)
class Packing:
    """Run several trials on one device at once: ``slots_per_device`` trials on each of ``devices``.

    A device is ``cpu``, ``cuda`` or ``cuda:<index>``; the trial's spec gets that device (``cuda:<index>``
    becomes ``cuda`` with the index recorded in the journal as its slot).
    """

    slots_per_device: int = 1
    devices: tuple[str, ...] = ("cuda",)

    @property
    def slots(self) -> list[str]:
        return [device for device in self.devices for _ in range(self.slots_per_device)]


Objective = str | Callable[[Job, JobStatus], "float | None"]


@dataclass
class _Active:
    number: int
    job: Job
    slot: str | None
    process: subprocess.Popen | None = None
    history: IterationHistory | None = None
    last_step: int | None = None
    stop_reason: str | None = None


# ----------------------------------------------------------------------------------------------- trial runners


class TrialRunner:
    """Starts one trial's job: directly on the backend, or through an executed notebook."""

    name = ""

    def start(self, sweep: Sweep, number: int, spec: JobSpec) -> tuple[Job, subprocess.Popen | None, Path | None]:
        raise NotImplementedError


class BackendTrialRunner(TrialRunner):
    name = "backend"

    def start(self, sweep: Sweep, number: int, spec: JobSpec) -> tuple[Job, subprocess.Popen | None, Path | None]:
        return sweep.backend.submit(spec), None, None


class NotebookTrialRunner(TrialRunner):
    """Runs ``notebook`` (default ``notebooks/01_train.ipynb``) under papermill with the trial's spec.

    The notebook gets the parameters ``spec_document``, ``backend`` and ``job_id_file`` and writes its job id
    to that file once submitted, so the sweep can follow and prune the job while the notebook runs.
    """

    name = "notebook"

    def __init__(self, notebook: str | Path | None = None, kernel: str = "python3", start_timeout: float = 300.0) -> None:
        self.notebook = Path(notebook) if notebook else NOTEBOOKS_DIR / "01_train.ipynb"
        self.kernel = kernel
        self.start_timeout = start_timeout

    def start(self, sweep: Sweep, number: int, spec: JobSpec) -> tuple[Job, subprocess.Popen | None, Path | None]:
        reports = sweep.dir / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        report = reports / f"trial_{number:04d}.ipynb"
        id_file = reports / f"trial_{number:04d}.job-id"
        id_file.unlink(missing_ok=True)
        params_file = reports / f"trial_{number:04d}.parameters.json"
        params = {"spec_document": spec.to_dict(), "backend": sweep.backend_name, "job_id_file": str(id_file)}
        params_file.write_text(json.dumps(params))
        command = [sys.executable, "-m", "papermill", str(self.notebook), str(report), "-f", str(params_file),
                   "-k", self.kernel, "--cwd", str(self.notebook.parent), "--no-progress-bar"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=(reports / f"trial_{number:04d}.log").open("w"))
        deadline = time.monotonic() + self.start_timeout
        while not id_file.exists() or not id_file.read_text().strip():
            if process.poll() is not None:
                raise SweepError(f"trial {number}'s notebook stopped before submitting its job; see {report}")
            if time.monotonic() > deadline:
                process.kill()
                raise SweepError(f"trial {number}'s notebook did not submit a job within {self.start_timeout:.0f} s")
            time.sleep(0.2)
        return sweep.backend.job(id_file.read_text().strip()), process, report


_RUNNERS: dict[str, Callable[..., TrialRunner]] = {"backend": BackendTrialRunner, "notebook": NotebookTrialRunner}


# --------------------------------------------------------------------------------------------------- journal


class Journal:
    """``journal.json``: which job runs each trial, plus the sweep's spent time and cost (atomic writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        self.doc.setdefault("trials", {})
        self.doc.setdefault("elapsed_seconds", 0.0)
        self.doc.setdefault("cost", 0.0)

    def trial(self, number: int) -> dict[str, Any] | None:
        return self.doc["trials"].get(str(number))

    def record(self, number: int, **fields: Any) -> None:
        self.doc["trials"].setdefault(str(number), {}).update(fields)
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.doc)


# ----------------------------------------------------------------------------------------------------- sweep


@dataclass
class Sweep:
    """A named, resumable sweep. ``run()`` drives it to the end of its budget and returns the results.

    At most ``concurrency`` trials run at once (default per backend: :data:`DEFAULT_CONCURRENCY`), or one per
    packing slot. A backend that limits its own parallel jobs (the local backend's ``max_concurrent``) is built
    with room for every slot unless ``backend_options`` says otherwise.
    """

    name: str
    base: Mapping[str, Any]
    space: Mapping[str, Dimension]
    strategy: str = "tpe"
    objective: Objective = "mean_reward"
    direction: str = "maximize"
    budget: Budget = field(default_factory=Budget)
    pruner: str = "none"
    backend_name: str = "local"
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    concurrency: int | None = None
    packing: Packing | None = None
    run_as: str = "backend"
    notebook: str | None = None
    seed: int | None = 0
    root: Path | None = None
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise SweepError(f"unknown strategy {self.strategy!r}; available: {', '.join(strategy_names())}")
        if self.pruner not in _PRUNERS:
            raise SweepError(f"unknown pruner {self.pruner!r}; available: {', '.join(pruner_names())}")
        if self.run_as not in _RUNNERS:
            raise SweepError(f"unknown trial runner {self.run_as!r}; available: {', '.join(sorted(_RUNNERS))}")
        if self.direction not in ("maximize", "minimize"):
            raise SweepError(f"direction must be 'maximize' or 'minimize', got {self.direction!r}")
        if isinstance(self.objective, str) and not (
            self.objective in PROGRESS_OBJECTIVES or self.objective.startswith("metrics:")
        ):
            raise SweepError(f"objective must be one of {', '.join(PROGRESS_OBJECTIVES)}, 'metrics:<column>' or a callable")
        self.space = dict(self.space)
        self.dir = Path(self.root) if self.root else workbench_home() / "sweeps" / self.name
        self._backend: Backend | None = None
        self._check_specs()

    # -- public API ------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, name: str, root: Path | None = None, **changes: Any) -> Sweep:
        """Load a sweep saved by an earlier ``run()`` (to continue it or read its results)."""
        directory = Path(root) if root else workbench_home() / "sweeps" / name
        path = directory / "sweep.json"
        if not path.exists():
            raise SweepError(f"no sweep {name!r} under {directory}")
        doc = json.loads(path.read_text())
        doc["space"] = _space_from_json(doc["space"])
        doc["budget"] = Budget(**doc["budget"])
        doc["packing"] = Packing(doc["packing"]["slots_per_device"], tuple(doc["packing"]["devices"])) if doc["packing"] else None
        return cls(**{**doc, "root": directory, **changes})

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            options = dict(self.backend_options)
            if "max_concurrent" in inspect.signature(backend_class(self.backend_name)).parameters:
                options.setdefault("max_concurrent", len(self.slots))
            self._backend = get_backend(self.backend_name, **options)
        return self._backend

    @property
    def slots(self) -> list[str | None]:
        """One entry per trial that may run at once (a device name when packing)."""
        limit = self.concurrency or DEFAULT_CONCURRENCY.get(self.backend_name, 1)
        if self.packing is None:
            return [None] * limit
        return self.packing.slots[: self.concurrency] if self.concurrency else self.packing.slots

    def study(self) -> optuna.Study:
        """The optuna study behind the sweep (created on first use)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(f"sqlite:///{self.dir / 'study.db'}")
        study = optuna.create_study(
            study_name=self.name,
            storage=storage,
            sampler=_STRATEGIES[self.strategy](self.space, self.seed),
            pruner=_PRUNERS[self.pruner](),
            direction=self.direction,
            load_if_exists=True,
        )
        if self.strategy == "grid" and not study.trials:
            for point in grid_points(self.space)[: self.budget.max_trials]:
                study.enqueue_trial(point)
        return study

    def run(self) -> pd.DataFrame:
        """Run (or continue) the sweep until its budget is spent; returns :meth:`results`."""
        self.save()
        study = self.study()
        journal = Journal(self.dir / "journal.json")
        runner = self._runner()
        active = self._reattach(study, journal)
        free = list(self.slots)
        for item in active.values():
            if item.slot in free:
                free.remove(item.slot)
            elif free:
                free.pop()
        clock = time.monotonic()
        spent = journal.doc["elapsed_seconds"]
        out_of_budget = ""
        while True:
            journal.doc["elapsed_seconds"] = spent + time.monotonic() - clock
            for number in list(active):
                if self._poll(study, journal, active[number]):
                    free.append(active.pop(number).slot)
            journal.save()
            out_of_budget = out_of_budget or self._budget_reason(journal)
            if out_of_budget:
                for item in active.values():
                    if item.stop_reason is None:
                        item.stop_reason = out_of_budget
                        item.job.cancel(f"sweep {self.name}: {out_of_budget}")
            while free and not out_of_budget and self._launched(study) < self._max_trials():
                slot = free.pop(0)
                active_item = self._launch(study, journal, runner, slot)
                if active_item is None:
                    free.append(slot)
                else:
                    active[active_item.number] = active_item
            if not active:
                break
            time.sleep(self.poll_interval)
        if out_of_budget:
            log.info("sweep %s stopped: %s", self.name, out_of_budget)
        return self.results()

    def results(self) -> pd.DataFrame:
        """One row per trial: number, state, objective value, parameters, job id, duration, report."""
        study = self.study()
        journal = Journal(self.dir / "journal.json")
        rows = []
        for trial in study.trials:
            if trial.state is optuna.trial.TrialState.WAITING:
                continue
            entry = journal.trial(trial.number) or {}
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete and trial.datetime_start else None
            rows.append({
                "trial": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                **{f"param {k}": v for k, v in trial.params.items()},
                "job_id": entry.get("job_id"),
                "job_state": entry.get("job_state"),
                "reason": entry.get("reason", ""),
                "slot": entry.get("slot"),
                "duration_s": duration,
                "report": entry.get("report"),
            })
        columns = ["trial", "state", "value", *(f"param {name}" for name in self.space), "job_id", "job_state",
                   "reason", "slot", "duration_s", "report"]
        return pd.DataFrame(rows, columns=list(dict.fromkeys([*columns, *(k for row in rows for k in row)])))

    def best(self) -> dict[str, Any]:
        """The best finished trial's number, value, parameters and job id."""
        study = self.study()
        try:
            trial = study.best_trial
        except ValueError:
            raise SweepError(f"sweep {self.name!r} has no completed trial yet") from None
        entry = Journal(self.dir / "journal.json").trial(trial.number) or {}
        return {"trial": trial.number, "value": trial.value, "params": trial.params, "job_id": entry.get("job_id")}

    def plot_objective(self, ax: Any = None) -> Any:
        """Objective per trial (completed and pruned) with the best-so-far line."""
        import matplotlib.pyplot as plt

        frame = self.results()
        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        done = frame[frame["value"].notna()]
        for state, group in done.groupby("state"):
            ax.scatter(group["trial"], group["value"], label=state.lower())
        complete = done[done["state"] == "COMPLETE"]
        if not complete.empty:
            best = complete["value"].cummax() if self.direction == "maximize" else complete["value"].cummin()
            ax.step(complete["trial"], best, where="post", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(self._objective_label())
        ax.set_title(f"sweep {self.name}")
        ax.legend()
        return ax

    def plot_parallel_coordinates(self) -> Any:
        """Parameters of each completed trial against the objective (optuna's matplotlib plot)."""
        from optuna.visualization.matplotlib import plot_parallel_coordinate

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return plot_parallel_coordinate(self.study(), target_name=self._objective_label())

    def plot_importance(self) -> Any:
        """fANOVA parameter importance (needs a few completed trials with varied parameters)."""
        from optuna.visualization.matplotlib import plot_param_importances

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return plot_param_importances(self.study(), target_name=self._objective_label())

    # -- internals -------------------------------------------------------------------------------------------

    def _objective_label(self) -> str:
        return self.objective if isinstance(self.objective, str) else getattr(self.objective, "__name__", "objective")

    def _runner(self) -> TrialRunner:
        if self.run_as == "notebook":
            return NotebookTrialRunner(self.notebook)
        return _RUNNERS[self.run_as]()

    def _check_specs(self) -> None:
        """Fail at once when the base spec or any extreme of the space is invalid (not after hours of trials)."""
        probes: list[dict[str, Any]] = []
        for name, dimension in self.space.items():
            values = dimension.values if isinstance(dimension, Choice) else (dimension.low, dimension.high)
            probes.extend({name: value} for value in values)
        for params in probes or [{}]:
            try:
                self.spec_for(params)
            except SpecError as exc:
                raise SweepError(f"parameters {params} give an invalid spec:\n{exc}") from None
        if self.strategy == "grid":
            grid_points(self.space)

    def spec_for(self, params: Mapping[str, Any], slot: str | None = None) -> JobSpec:
        """The validated spec of a trial with these parameters (on this device slot when packing)."""
        document = apply_params(self.base, params)
        if slot is not None:
            document.setdefault("trainingConfig", {})["device"] = slot.split(":", 1)[0]
        return parse_spec(document)

    def save(self) -> None:
        """Write ``sweep.json`` so ``Sweep.open`` / ``python -m workbench.sweep`` can continue the sweep."""
        if not isinstance(self.objective, str):
            return
        doc = {
            "name": self.name, "base": self.base, "space": _space_to_json(self.space), "strategy": self.strategy,
            "objective": self.objective, "direction": self.direction, "budget": asdict(self.budget),
            "pruner": self.pruner, "backend_name": self.backend_name, "backend_options": dict(self.backend_options),
            "concurrency": self.concurrency,
            "packing": asdict(self.packing) if self.packing else None, "run_as": self.run_as,
            "notebook": self.notebook, "seed": self.seed, "poll_interval": self.poll_interval,
        }
        write_json_atomic(self.dir / "sweep.json", doc)

    def _max_trials(self) -> int:
        if self.strategy == "grid":
            return min(self.budget.max_trials, len(grid_points(self.space)))
        return self.budget.max_trials

    def _launched(self, study: optuna.Study) -> int:
        return sum(
            1 for t in study.trials
            if t.state is not optuna.trial.TrialState.WAITING and not t.user_attrs.get("requeued")
        )

    def _launch(self, study: optuna.Study, journal: Journal, runner: TrialRunner, slot: str | None) -> _Active | None:
        trial = study.ask()
        params = {name: suggest(trial, name, dimension) for name, dimension in self.space.items()}
        journal.record(trial.number, params=params, slot=slot, started_at=time.time())
        try:
            spec = self.spec_for(params, slot)
            job, process, report = runner.start(self, trial.number, spec)
        except (SpecError, WorkbenchError, OSError) as exc:
            journal.record(trial.number, job_state="FAILED", reason=str(exc))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log.warning("sweep %s: trial %d could not start: %s", self.name, trial.number, exc)
            return None
        journal.record(trial.number, job_id=job.job_id, report=str(report) if report else None, job_state="SUBMITTED",
                       library=spec.rl_library)
        log.info("sweep %s: trial %d runs as job %s with %s", self.name, trial.number, job.job_id, params)
        return _Active(trial.number, job, slot, process, IterationHistory(job, spec.rl_library))

    def _reattach(self, study: optuna.Study, journal: Journal) -> dict[int, _Active]:
        active: dict[int, _Active] = {}
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            entry = journal.trial(trial.number) or {}
            if entry.get("job_id"):
                log.info("sweep %s: trial %d re-attached to job %s", self.name, trial.number, entry["job_id"])
                steps = list(trial.intermediate_values)
                job = self.backend.job(entry["job_id"])
                active[trial.number] = _Active(trial.number, job, entry.get("slot"),
                                               history=IterationHistory(job, entry.get("library", "rsl_rl")),
                                               last_step=max(steps) if steps else None)
            else:
                optuna.trial.Trial(study, trial._trial_id).set_user_attr("requeued", True)
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                study.enqueue_trial(trial.params, skip_if_exists=False)
                journal.record(trial.number, job_state="FAILED", reason="the sweep stopped before the job was submitted; queued again")
        return active

    def _poll(self, study: optuna.Study, journal: Journal, item: _Active) -> bool:
        """Report intermediate values, prune, or finish one trial; True once the trial is done."""
        status = item.job.status()
        for step, value in self._intermediate(item, status):
            trial = optuna.trial.Trial(study, study._storage.get_trial_id_from_study_id_trial_number(study._study_id, item.number))
            trial.report(value, step)
            item.last_step = step
            if not status.state.is_terminal and item.stop_reason is None and trial.should_prune():
                item.stop_reason = f"pruned at iteration {step} ({self._objective_label()} {value:.4g})"
                log.info("sweep %s: trial %d %s", self.name, item.number, item.stop_reason)
                item.job.cancel(f"sweep {self.name}: trial {item.stop_reason}")
                status = item.job.wait(timeout=60, poll_interval=0.5)
                break
        journal.record(item.number, job_state=status.state.value, progress=asdict(status.progress))
        cost = getattr(self.backend, "estimate_cost", None)
        if cost is not None:
            journal.record(item.number, cost=float(cost(item.job.job_id)))
            journal.doc["cost"] = sum(t.get("cost", 0.0) for t in journal.doc["trials"].values())
        if not status.state.is_terminal:
            return False
        if item.process is not None:
            try:
                item.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                item.process.kill()
        self._finish(study, journal, item, status)
        return True

    def _finish(self, study: optuna.Study, journal: Journal, item: _Active, status: JobStatus) -> None:
        TrialState = optuna.trial.TrialState
        if item.stop_reason and item.stop_reason.startswith("pruned"):
            study.tell(item.number, state=TrialState.PRUNED)
            journal.record(item.number, reason=item.stop_reason, finished_at=time.time())
            return
        value = self._final(item.job, status) if status.state is JobState.SUCCEEDED else None
        if value is None or not math.isfinite(value):
            reason = item.stop_reason or status.reason or f"job {status.state.value.lower()} without a {self._objective_label()}"
            study.tell(item.number, state=TrialState.FAIL)
            journal.record(item.number, reason=reason, finished_at=time.time())
            log.warning("sweep %s: trial %d failed: %s", self.name, item.number, reason)
            return
        study.tell(item.number, value)
        journal.record(item.number, value=value, finished_at=time.time())
        log.info("sweep %s: trial %d finished with %s %.4g", self.name, item.number, self._objective_label(), value)

    def _intermediate(self, item: _Active, status: JobStatus) -> list[tuple[int, float]]:
        """New (iteration, value) pairs of a running trial: every finished iteration from its log, else its status."""
        if callable(self.objective):
            return []
        if self.objective.startswith("metrics:"):
            value, step = _last_metric(item.job, self.objective.removeprefix("metrics:")), status.progress.iteration
            fresh = value is not None and step is not None and (item.last_step is None or step > item.last_step)
            return [(step, value)] if fresh else []
        if item.history is not None:
            item.history.update()
        points = item.history.points if item.history else {}
        if points:
            newest = max(points)
            steps = [s for s in sorted(points) if (item.last_step is None or s > item.last_step)
                     and (s < newest or status.state.is_terminal)]
            values = [(s, getattr(points[s], self.objective)) for s in steps]
            return [(s, v) for s, v in values if v is not None]
        step, value = status.progress.iteration, getattr(status.progress, self.objective)
        fresh = value is not None and step is not None and (item.last_step is None or step > item.last_step)
        return [(step, value)] if fresh else []

    def _final(self, job: Job, status: JobStatus) -> float | None:
        if callable(self.objective):
            return self.objective(job, status)
        if self.objective in PROGRESS_OBJECTIVES:
            value = getattr(status.progress, self.objective)
            return value if value is not None else _last_metric(job, _METRIC_COLUMNS[self.objective])
        return _last_metric(job, self.objective.removeprefix("metrics:"))

    def _budget_reason(self, journal: Journal) -> str:
        if self.budget.max_seconds is not None and journal.doc["elapsed_seconds"] >= self.budget.max_seconds:
            return f"time budget of {self.budget.max_seconds:.0f} s spent"
        if self.budget.max_cost is not None and journal.doc["cost"] >= self.budget.max_cost:
            return f"cost budget of ${self.budget.max_cost:.2f} spent"
        return ""


_METRIC_COLUMNS = {"mean_reward": "reward", "mean_episode_length": "episode_length", "steps_per_second": "Perf/total_fps"}


def _last_metric(job: Job, column: str) -> float | None:
    """The last value of a column of the job's ``metrics.csv`` (None when absent)."""
    try:
        path = job.outputs() / "metrics.csv"
    except WorkbenchError:
        return None
    if not path.exists():
        return None
    frame = pd.read_csv(path)
    if column not in frame or frame[column].dropna().empty:
        return None
    return float(frame[column].dropna().iloc[-1])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m workbench.sweep NAME [--root DIR]``: run or continue a saved sweep and print its results."""
    import argparse

    parser = argparse.ArgumentParser(description="Run or continue a saved sweep.")
    parser.add_argument("name")
    parser.add_argument("--root", type=Path, help="the sweep directory (default $WORKBENCH_HOME/sweeps/NAME)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        frame = Sweep.open(args.name, root=args.root).run()
    except WorkbenchError as exc:
        print(f"sweep {args.name}: {exc}", file=sys.stderr)
        return 1
    print(frame.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
