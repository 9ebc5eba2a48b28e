"""The search space: dimensions, the values a trial suggests for them, grid points, and how parameters become a
job spec (spec fields and agent/env overrides)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import optuna

from workbench.errors import SweepError
from workbench.spec.document import COMPUTE_DEFAULTS, EVALUATE_DEFAULTS, TRAIN_DEFAULTS


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
"""The ``type`` names of dimensions in ``sweep.json``."""


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


def extremes(space: Mapping[str, Dimension]) -> list[dict[str, Any]]:
    """One parameter set per value of each choice and per end of each range: enough to find an invalid spec
    before any trial runs (each dimension maps to its own spec field)."""
    probes: list[dict[str, Any]] = []
    for name, dimension in space.items():
        values = dimension.values if isinstance(dimension, Choice) else (dimension.low, dimension.high)
        probes.extend({name: value} for value in values)
    return probes


def space_to_json(space: Mapping[str, Dimension]) -> dict[str, Any]:
    """The space as plain JSON for ``sweep.json``."""
    kinds = {cls: kind for kind, cls in _DIMENSIONS.items()}
    return {name: {"type": kinds[type(d)], **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(d).items()}}
            for name, d in space.items()}


def space_from_json(doc: Mapping[str, Any]) -> dict[str, Dimension]:
    """The space written by :func:`space_to_json`."""
    space: dict[str, Dimension] = {}
    for name, item in doc.items():
        item = dict(item)
        space[name] = _DIMENSIONS[item.pop("type")](**item)
    return space


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
