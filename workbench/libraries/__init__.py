"""One adapter per RL library; ``library(name)`` gives it, ``detect(checkpoint)`` finds whose format a checkpoint has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.errors import WorkbenchError
from workbench.libraries.base import Library, PolicySizes, RunCheckpoint
from workbench.libraries.rl_games import RlGames
from workbench.libraries.rsl_rl import RslRl
from workbench.libraries.skrl import Skrl

LIBRARIES: dict[str, Library] = {adapter.name: adapter for adapter in (RslRl(), RlGames(), Skrl())}


def library(name: str) -> Library:
    """The adapter of the RL library ``name``."""
    try:
        return LIBRARIES[name]
    except KeyError:
        raise WorkbenchError(f"unknown RL library {name!r}; supported: {', '.join(LIBRARIES)}") from None


def checkpoint_globals() -> list:
    """Every type a checkpoint of a supported library may hold (the allow-list of checkpoint loading)."""
    return [kind for adapter in LIBRARIES.values() for kind in adapter.checkpoint_globals()]


def detect(data: Mapping[str, Any]) -> Library | None:
    """The library whose checkpoint format a loaded checkpoint dictionary has, or None."""
    return next((adapter for adapter in LIBRARIES.values() if adapter.detects(data)), None)


__all__ = ["LIBRARIES", "Library", "PolicySizes", "RunCheckpoint", "checkpoint_globals", "detect", "library"]
