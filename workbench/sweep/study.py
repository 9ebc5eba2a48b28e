"""A named, resumable sweep: its configuration (``sweep.json``), its budget and device packing, and the loop that
launches, polls, prunes and finishes trials until the budget is spent."""

from __future__ import annotations

import inspect
import json
import logging
import math
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from workbench.backends import Backend, backend_class, get_backend
from workbench.errors import BudgetExceededError, SweepError, WorkbenchError
from workbench.results.history import IterationHistory
from workbench.spec.document import JobSpec, SpecError, parse_spec
from workbench.spec.paths import workbench_home
from workbench.spec.status import JobState, JobStatus
from workbench.sweep import plots
from workbench.sweep.journal import Journal
from workbench.sweep.objectives import Objective, check_objective, final_value, intermediate_values, objective_label
from workbench.sweep.space import (
    Dimension,
    apply_params,
    extremes,
    grid_points,
    space_from_json,
    space_to_json,
    suggest,
)
from workbench.sweep.store import StudyStore
from workbench.sweep.strategies import make_pruner, make_sampler, pruner_names, strategy_names
from workbench.sweep.trials import RUNNERS, ActiveTrial, TrialRunner, trial_runner
from workbench.transport.atomic import write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = {"local": 1, "aws": 4}
DOCUMENT_REQUIRED = ("name", "base", "space")
DOCUMENT_KEYS = ("name", "base", "space", "strategy", "objective", "direction", "budget", "pruner", "backend_name",
                 "backend_options", "concurrency", "packing", "run_as", "notebook", "seed", "poll_interval")
"""The keys of a sweep's JSON form (``sweep.json``)."""


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
        if self.strategy not in strategy_names():
            raise SweepError(f"unknown strategy {self.strategy!r}; available: {', '.join(strategy_names())}")
        if self.pruner not in pruner_names():
            raise SweepError(f"unknown pruner {self.pruner!r}; available: {', '.join(pruner_names())}")
        if self.run_as not in RUNNERS:
            raise SweepError(f"unknown trial runner {self.run_as!r}; available: {', '.join(sorted(RUNNERS))}")
        if self.direction not in ("maximize", "minimize"):
            raise SweepError(f"direction must be 'maximize' or 'minimize', got {self.direction!r}")
        check_objective(self.objective)
        self.space = dict(self.space)
        self.dir = Path(self.root) if self.root else workbench_home() / "sweeps" / self.name
        self._backend: Backend | None = None
        self._store: StudyStore | None = None
        self._check_specs()

    # -- public API ------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, name: str, root: Path | None = None, **changes: Any) -> Sweep:
        """Load a sweep saved by an earlier ``run()`` (to continue it or read its results)."""
        directory = Path(root) if root else workbench_home() / "sweeps" / name
        path = directory / "sweep.json"
        if not path.exists():
            raise SweepError(f"no sweep {name!r} under {directory}")
        return cls.from_document(json.loads(path.read_text()), root=directory, **changes)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], root: Path | None = None, **changes: Any) -> Sweep:
        """A sweep from its JSON form (what ``sweep.json`` holds; ``workbench sweep SWEEP.json`` reads one):
        ``name``, ``base`` and ``space`` are required, every other key of :class:`Sweep` is optional."""
        if not isinstance(doc, Mapping):
            raise SweepError("a sweep document must be a JSON object")
        missing = [key for key in DOCUMENT_REQUIRED if key not in doc]
        unknown = sorted(set(doc) - set(DOCUMENT_KEYS))
        if missing or unknown:
            problems = [f"missing {', '.join(missing)}"] if missing else []
            problems += [f"unknown {', '.join(unknown)}"] if unknown else []
            raise SweepError(f"sweep document: {'; '.join(problems)} (keys: {', '.join(DOCUMENT_KEYS)})")
        fields = dict(doc)
        try:
            fields["space"] = space_from_json(doc["space"])
            fields["budget"] = Budget(**doc.get("budget") or {})
            packing = doc.get("packing")
            fields["packing"] = Packing(packing["slots_per_device"], tuple(packing["devices"])) if packing else None
        except (TypeError, KeyError, AttributeError) as exc:
            raise SweepError(f"sweep document: bad space, budget or packing ({type(exc).__name__}: {exc})") from None
        return cls(**{**fields, "root": root, **changes})

    def check_continues(self, saved: Mapping[str, Any]) -> None:
        """Raise :class:`SweepError` unless this sweep is the one ``saved`` (its ``sweep.json``) describes: a
        sweep continued with another base, space, strategy or objective would mix trials of two experiments."""
        mine = self.document()
        changed = [key for key in ("base", "space", "strategy", "objective", "direction") if saved.get(key) != mine[key]]
        if changed:
            raise SweepError(
                f"sweep {self.name!r} under {self.dir} was started with another {', '.join(changed)}; "
                "give this one another name, or delete that directory to start again"
            )

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
        return self._study_store().study

    def run(self, watch: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
        """Run (or continue) the sweep until its budget is spent; returns :meth:`results`. ``watch`` gets the
        results after every poll (a live table)."""
        self._check_cost_plan()
        self.save()
        store = self._study_store()
        journal = Journal(self.dir / "journal.json")
        runner = trial_runner(self.run_as, self.notebook)
        active = self._reattach(store, journal)
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
                if self._poll(store, journal, active[number]):
                    free.append(active.pop(number).slot)
            journal.save()
            out_of_budget = out_of_budget or self._budget_reason(journal)
            if out_of_budget:
                for item in active.values():
                    if item.stop_reason is None:
                        item.stop_reason = out_of_budget
                        item.job.cancel(f"sweep {self.name}: {out_of_budget}")
            while free and not out_of_budget and store.launched() < self._max_trials():
                slot = free.pop(0)
                active_item = self._launch(store, journal, runner, slot)
                if active_item is None:
                    free.append(slot)
                else:
                    active[active_item.number] = active_item
            if watch is not None:
                watch(self.results())
            if not active:
                break
            time.sleep(self.poll_interval)
        if out_of_budget:
            log.info("sweep %s stopped: %s", self.name, out_of_budget)
        return self.results()

    def results(self) -> pd.DataFrame:
        """One row per trial: number, state, objective value, parameters, job id, duration, report."""
        journal = Journal(self.dir / "journal.json")
        rows = []
        for trial in self.study().trials:
            if trial.state is TrialState.WAITING:
                continue
            entry = journal.trial(trial.number) or {}
            ended = trial.datetime_complete and trial.datetime_start
            duration = (trial.datetime_complete - trial.datetime_start).total_seconds() if ended else None
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
        try:
            trial = self.study().best_trial
        except ValueError:
            raise SweepError(f"sweep {self.name!r} has no completed trial yet") from None
        entry = Journal(self.dir / "journal.json").trial(trial.number) or {}
        return {"trial": trial.number, "value": trial.value, "params": trial.params, "job_id": entry.get("job_id")}

    def plot_objective(self, ax: Any = None) -> Any:
        """Objective per trial (completed and pruned) with the best-so-far line."""
        return plots.plot_objective(self, ax)

    def plot_parallel_coordinates(self) -> Any:
        """Parameters of each completed trial against the objective (optuna's matplotlib plot)."""
        return plots.plot_parallel_coordinates(self)

    def plot_importance(self) -> Any:
        """fANOVA parameter importance (needs a few completed trials with varied parameters)."""
        return plots.plot_importance(self)

    def spec_for(self, params: Mapping[str, Any], slot: str | None = None) -> JobSpec:
        """The validated spec of a trial with these parameters (on this device slot when packing)."""
        document = apply_params(self.base, params)
        if slot is not None:
            document.setdefault("trainingConfig", {})["device"] = slot.split(":", 1)[0]
        return parse_spec(document)

    def save(self) -> None:
        """Write ``sweep.json`` so ``Sweep.open`` / ``python -m workbench.sweep`` can continue the sweep."""
        if isinstance(self.objective, str):
            write_json_atomic(self.dir / "sweep.json", self.document())

    def document(self) -> dict[str, Any]:
        """The sweep's JSON form (:meth:`from_document` reads it back)."""
        return {
            "name": self.name, "base": self.base, "space": space_to_json(self.space), "strategy": self.strategy,
            "objective": self.objective, "direction": self.direction, "budget": asdict(self.budget),
            "pruner": self.pruner, "backend_name": self.backend_name, "backend_options": dict(self.backend_options),
            "concurrency": self.concurrency,
            "packing": asdict(self.packing) if self.packing else None, "run_as": self.run_as,
            "notebook": self.notebook, "seed": self.seed, "poll_interval": self.poll_interval,
        }

    # -- internals -------------------------------------------------------------------------------------------

    def _study_store(self) -> StudyStore:
        """The study and its storage, opened once; a new grid sweep queues its points in declared order."""
        if self._store is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            store = StudyStore(self.dir / "study.db", self.name, make_sampler(self.strategy, self.space, self.seed),
                               make_pruner(self.pruner), self.direction)
            if self.strategy == "grid" and not store.study.trials:
                for point in grid_points(self.space)[: self.budget.max_trials]:
                    store.study.enqueue_trial(point)
            self._store = store
        return self._store

    def _check_specs(self) -> None:
        """Fail at once when the base spec or any extreme of the space is invalid (not after hours of trials)."""
        for params in extremes(self.space) or [{}]:
            try:
                self.spec_for(params)
            except SpecError as exc:
                raise SweepError(f"parameters {params} give an invalid spec:\n{exc}") from None
        if self.strategy == "grid":
            grid_points(self.space)

    def _check_cost_plan(self) -> None:
        """Refuse, before any trial, a sweep whose trials left would cost more than its cost budget at their
        estimate (the costliest extreme of the space, on backends that estimate a job's cost)."""
        estimate = getattr(self.backend, "estimate", None)
        if self.budget.max_cost is None or estimate is None:
            return
        journal = Journal(self.dir / "journal.json")
        left = max(0, self._max_trials() - len(journal.doc["trials"]))
        per_trial = max(estimate(self.spec_for(params)).usd for params in extremes(self.space) or [{}])
        planned = journal.doc.get("cost", 0.0) + left * per_trial
        if planned > self.budget.max_cost:
            raise BudgetExceededError(planned, self.budget.max_cost,
                                      f"{left} trial(s) left at up to ${per_trial:.2f} each; raise max_cost or "
                                      "lower max_trials")

    def _max_trials(self) -> int:
        if self.strategy == "grid":
            return min(self.budget.max_trials, len(grid_points(self.space)))
        return self.budget.max_trials

    def _launch(self, store: StudyStore, journal: Journal, runner: TrialRunner, slot: str | None) -> ActiveTrial | None:
        trial = store.study.ask()
        params = {name: suggest(trial, name, dimension) for name, dimension in self.space.items()}
        journal.record(trial.number, params=params, slot=slot, started_at=time.time())
        try:
            spec = self.spec_for(params, slot)
            job, process, report = runner.start(self, trial.number, spec)
        except (SpecError, WorkbenchError, OSError) as exc:
            journal.record(trial.number, job_state="FAILED", reason=str(exc))
            store.study.tell(trial, state=TrialState.FAIL)
            log.warning("sweep %s: trial %d could not start: %s", self.name, trial.number, exc)
            return None
        journal.record(trial.number, job_id=job.job_id, report=str(report) if report else None, job_state="SUBMITTED",
                       library=spec.rl_library)
        log.info("sweep %s: trial %d runs as job %s with %s", self.name, trial.number, job.job_id, params)
        return ActiveTrial(trial.number, job, slot, process, IterationHistory(job, spec.rl_library))

    def _reattach(self, store: StudyStore, journal: Journal) -> dict[int, ActiveTrial]:
        """Follow the jobs of trials a killed sweep left running; requeue those it left without a job."""
        active: dict[int, ActiveTrial] = {}
        for trial in store.running():
            entry = journal.trial(trial.number) or {}
            if not entry.get("job_id"):
                store.requeue(trial)
                journal.record(trial.number, job_state="FAILED",
                               reason="the sweep stopped before the job was submitted; queued again")
                continue
            log.info("sweep %s: trial %d re-attached to job %s", self.name, trial.number, entry["job_id"])
            job = self.backend.job(entry["job_id"])
            active[trial.number] = ActiveTrial(trial.number, job, entry.get("slot"),
                                               history=IterationHistory(job, entry.get("library")),
                                               last_step=max(trial.intermediate_values, default=None))
        return active

    def _poll(self, store: StudyStore, journal: Journal, item: ActiveTrial) -> bool:
        """Report intermediate values, prune, or finish one trial; True once the trial is done."""
        status = item.job.status()
        for step, value in intermediate_values(self.objective, item, status):
            store.report(item.number, step, value)
            item.last_step = step
            if not status.state.is_terminal and item.stop_reason is None and store.should_prune(item.number):
                item.stop_reason = f"pruned at iteration {step} ({objective_label(self.objective)} {value:.4g})"
                log.info("sweep %s: trial %d %s", self.name, item.number, item.stop_reason)
                item.job.cancel(f"sweep {self.name}: trial {item.stop_reason}")
                status = item.job.wait(timeout=60, poll_interval=0.5)
                break
        journal.record(item.number, job_state=status.state.value, progress=asdict(status.progress))
        cost = getattr(self.backend, "estimate_cost", None)
        if cost is not None:
            journal.record_cost(item.number, float(cost(item.job.job_id)))
        if not status.state.is_terminal:
            return False
        if item.process is not None:
            try:
                item.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                item.process.kill()
        self._finish(store, journal, item, status)
        return True

    def _finish(self, store: StudyStore, journal: Journal, item: ActiveTrial, status: JobStatus) -> None:
        if item.stop_reason and item.stop_reason.startswith("pruned"):
            store.study.tell(item.number, state=TrialState.PRUNED)
            journal.record(item.number, reason=item.stop_reason, finished_at=time.time())
            return
        value = final_value(self.objective, item.job, status) if status.state is JobState.SUCCEEDED else None
        label = objective_label(self.objective)
        if value is None or not math.isfinite(value):
            reason = item.stop_reason or status.reason or f"job {status.state.value.lower()} without a {label}"
            store.study.tell(item.number, state=TrialState.FAIL)
            journal.record(item.number, reason=reason, finished_at=time.time())
            log.warning("sweep %s: trial %d failed: %s", self.name, item.number, reason)
            return
        store.study.tell(item.number, value)
        journal.record(item.number, value=value, finished_at=time.time())
        log.info("sweep %s: trial %d finished with %s %.4g", self.name, item.number, label, value)

    def _budget_reason(self, journal: Journal) -> str:
        if self.budget.max_seconds is not None and journal.doc["elapsed_seconds"] >= self.budget.max_seconds:
            return f"time budget of {self.budget.max_seconds:.0f} s spent"
        if self.budget.max_cost is not None and journal.doc["cost"] >= self.budget.max_cost:
            return f"cost budget of ${self.budget.max_cost:.2f} spent"
        return ""
