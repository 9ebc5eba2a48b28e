"""Hyper-parameter sweeps over job-spec fields and agent/env overrides, run on any backend.

A sweep is an optuna study (:mod:`~workbench.sweep.store`, public API only) of a search space
(:mod:`~workbench.sweep.space`). Strategies (``grid``, ``random``, ``tpe``) are small registered sampler factories;
pruners (``none``, ``median``, ``halving``) stop poor trials from their intermediate progress by cancelling
the trial's job (:mod:`~workbench.sweep.strategies`). Trials run directly through the backend or as
papermill-executed notebooks, the executed notebook kept as the trial's report (:mod:`~workbench.sweep.trials`).
:mod:`~workbench.sweep.study` holds :class:`Sweep`, the loop that drives them.

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

from workbench.errors import SweepError
from workbench.sweep.cli import main
from workbench.sweep.journal import Journal
from workbench.sweep.objectives import PROGRESS_OBJECTIVES, Objective
from workbench.sweep.space import Choice, Dimension, FloatRange, IntRange, apply_params, grid_points, suggest
from workbench.sweep.strategies import (
    PrunerFactory,
    SamplerFactory,
    pruner_names,
    register_pruner,
    register_strategy,
    strategy_names,
)
from workbench.sweep.study import DEFAULT_CONCURRENCY, Budget, Packing, Sweep
from workbench.sweep.trials import NOTEBOOKS_DIR, BackendTrialRunner, NotebookTrialRunner, TrialRunner

__all__ = [
    "DEFAULT_CONCURRENCY", "NOTEBOOKS_DIR", "PROGRESS_OBJECTIVES", "BackendTrialRunner", "Budget", "Choice",
    "Dimension", "FloatRange", "IntRange", "Journal", "NotebookTrialRunner", "Objective", "Packing",
    "PrunerFactory", "SamplerFactory", "Sweep", "SweepError", "TrialRunner", "apply_params", "grid_points", "main",
    "pruner_names", "register_pruner", "register_strategy", "strategy_names", "suggest",
]
