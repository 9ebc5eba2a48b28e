"""Reading ``WORKBENCH_*`` settings from the environment, with errors that name the variable and what is allowed."""

from __future__ import annotations

import os
from collections.abc import Mapping

from workbench.errors import SettingError


def on_off_setting(name: str, default: str, environ: Mapping[str, str] = os.environ) -> bool:
    """``on``/``off`` (also ``1``/``0``, ``true``/``false``, ``yes``/``no``) as a bool."""
    value = environ.get(name, default).strip().lower()
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise SettingError(f"{name} must be on or off, not {environ.get(name)!r}")


def seconds_setting(name: str, default: float, environ: Mapping[str, str] = os.environ) -> float:
    """A positive number of seconds."""
    text = environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SettingError(f"{name} must be a positive number of seconds, not {text!r}")
    return value
