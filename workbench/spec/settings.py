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


HEARTBEAT_INTERVAL_S = 60.0
"""``WORKBENCH_HEARTBEAT_INTERVAL``: how often a job that makes progress heartbeats."""
HEARTBEAT_TIMEOUT_S = 1800.0
"""``WORKBENCH_HEARTBEAT_TIMEOUT``: a job without progress for this long is stopped and fails."""
EXPORT_INTERVAL_S = 15.0
"""``WORKBENCH_EXPORT_INTERVAL``: how often a training's checkpoints and metrics are exported while it runs."""
STOP_GRACE_S = 10.0
"""``WORKBENCH_STOP_GRACE``: how long a stopped child gets between SIGTERM and SIGKILL."""
ASSETS = "offline"
"""``WORKBENCH_ASSETS``: ``offline`` (the home's asset root), ``nucleus`` or the path of an asset tree."""


def is_main_node(environ: Mapping[str, str]) -> bool:
    """Whether this process uploads outputs and reports the job's end: true outside multi-node jobs, else on the
    node AWS Batch names main (``AWS_BATCH_JOB_NODE_INDEX`` equals ``AWS_BATCH_JOB_MAIN_NODE_INDEX``)."""
    if "AWS_BATCH_JOB_NUM_NODES" not in environ:
        return True
    return environ.get("AWS_BATCH_JOB_NODE_INDEX", "0") == environ.get("AWS_BATCH_JOB_MAIN_NODE_INDEX", "0")
