"""Search strategies and early-stopping rules: small registered factories of optuna samplers and pruners, so a
sweep names them (``"tpe"``, ``"median"``) and users can add their own."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import optuna

from workbench.sweep.space import Dimension, grid_points

SamplerFactory = Callable[[Mapping[str, Dimension], "int | None"], optuna.samplers.BaseSampler]
PrunerFactory = Callable[[], optuna.pruners.BasePruner]
_STRATEGIES: dict[str, SamplerFactory] = {}
_PRUNERS: dict[str, PrunerFactory] = {}


def register_strategy(name: str, factory: SamplerFactory) -> None:
    """Register a search strategy: ``factory(space, seed)`` returns an optuna sampler."""
    _STRATEGIES[name] = factory


def register_pruner(name: str, factory: PrunerFactory) -> None:
    """Register an early-stopping rule: ``factory()`` returns an optuna pruner."""
    _PRUNERS[name] = factory


def strategy_names() -> list[str]:
    return sorted(_STRATEGIES)


def pruner_names() -> list[str]:
    return sorted(_PRUNERS)


def make_sampler(strategy: str, space: Mapping[str, Dimension], seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler of a registered strategy."""
    return _STRATEGIES[strategy](space, seed)


def make_pruner(pruner: str) -> optuna.pruners.BasePruner:
    """The pruner of a registered early-stopping rule."""
    return _PRUNERS[pruner]()


def _grid_sampler(space: Mapping[str, Dimension], seed: int | None) -> optuna.samplers.BaseSampler:
    """Grid points are queued in declared order when the sweep creates its study, each once; the sampler only hands
    the queued values out (optuna's GridSampler breaks on queued trials)."""
    grid_points(space)
    return optuna.samplers.RandomSampler(seed=seed)


register_strategy("grid", _grid_sampler)
register_strategy("random", lambda space, seed: optuna.samplers.RandomSampler(seed=seed))
register_strategy("tpe", lambda space, seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=2))
register_pruner("none", optuna.pruners.NopPruner)
register_pruner("median", lambda: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
register_pruner("halving", lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2))
