"""A sweep's plots: the objective per trial with the best so far, and optuna's parameter plots of its study."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Protocol

import optuna
import pandas as pd

from workbench.sweep.objectives import objective_label


class PlottedSweep(Protocol):
    """What the plots read of a sweep."""

    name: str
    direction: str
    objective: Any

    def results(self) -> pd.DataFrame: ...

    def study(self) -> optuna.Study: ...


def plot_objective(sweep: PlottedSweep, ax: Any = None) -> Any:
    """Objective per trial (completed and pruned) with the best-so-far line."""
    import matplotlib.pyplot as plt

    frame = sweep.results()
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    done = frame[frame["value"].notna()]
    for state, group in done.groupby("state"):
        ax.scatter(group["trial"], group["value"], label=state.lower())
    complete = done[done["state"] == "COMPLETE"]
    if not complete.empty:
        best = complete["value"].cummax() if sweep.direction == "maximize" else complete["value"].cummin()
        ax.step(complete["trial"], best, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective_label(sweep.objective))
    ax.set_title(f"sweep {sweep.name}")
    ax.legend()
    return ax


def plot_parallel_coordinates(sweep: PlottedSweep) -> Any:
    """Parameters of each completed trial against the objective (optuna's matplotlib plot)."""
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    return _optuna_plot(plot_parallel_coordinate, sweep)


def plot_importance(sweep: PlottedSweep) -> Any:
    """fANOVA parameter importance (needs a few completed trials with varied parameters)."""
    from optuna.visualization.matplotlib import plot_param_importances

    return _optuna_plot(plot_param_importances, sweep)


def _optuna_plot(plot: Callable[..., Any], sweep: PlottedSweep) -> Any:
    """One of optuna's matplotlib plots of the sweep's study, without its "experimental" warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return plot(sweep.study(), target_name=objective_label(sweep.objective))
