"""Every ``WORKBENCH_*`` setting's default, read from the environment and checked on read, with errors that name
the variable and what is allowed (the local backend and the runner both read through here)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from workbench.errors import SettingError

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
MAX_CONCURRENT = 1
"""``WORKBENCH_MAX_CONCURRENT``: how many local jobs run at once; the others wait queued, first in first out."""


MAX_ATTEMPTS = 1
"""``WORKBENCH_MAX_ATTEMPTS``: how many attempts the job's Batch retry strategy allows (the job definition sets it);
1 (no retry) outside AWS Batch."""
ATTEMPT_VARIABLE = "AWS_BATCH_JOB_ATTEMPT"
"""Set by AWS Batch in every container: 1 for a job's first attempt, 2 for its first retry, ..."""


@dataclass(frozen=True)
class Attempt:
    """Which attempt of the job this is, and how many it may have: an interrupted attempt that Batch may retry
    leaves the job's end to the next one (``workbench.runner.recovery``)."""

    number: int = 1
    max_attempts: int = MAX_ATTEMPTS

    @property
    def is_retry(self) -> bool:
        return self.number > 1

    @property
    def may_retry(self) -> bool:
        """Whether Batch may run another attempt after this one (for a host termination only)."""
        return self.number < self.max_attempts

    def describe(self) -> str:
        return f"attempt {self.number} of {self.max_attempts}"


def attempt_setting(environ: Mapping[str, str] = os.environ) -> Attempt:
    """``AWS_BATCH_JOB_ATTEMPT`` (1 where unset) and ``WORKBENCH_MAX_ATTEMPTS``; an attempt past the maximum is
    read as the last one (the maximum grows to it)."""
    number = count_setting(ATTEMPT_VARIABLE, 1, environ) or 1
    most = count_setting("WORKBENCH_MAX_ATTEMPTS", MAX_ATTEMPTS, environ) or MAX_ATTEMPTS
    return Attempt(number, max(number, most))


def on_off_setting(name: str, default: str, environ: Mapping[str, str] = os.environ) -> bool:
    """``on``/``off`` (also ``1``/``0``, ``true``/``false``, ``yes``/``no``) as a bool."""
    value = environ.get(name, default).strip().lower()
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise SettingError(f"{name} must be on or off, not {environ.get(name)!r}")


def check_seconds(name: str, value: object) -> float:
    """``value`` as a positive, finite number of seconds (an infinite grace or timeout would never end a job)."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        seconds = math.nan
    if isinstance(value, bool) or not 0 < seconds < math.inf:
        raise SettingError(f"{name} must be a positive number of seconds, not {value!r}")
    return seconds


def seconds_setting(name: str, default: float, environ: Mapping[str, str] = os.environ) -> float:
    """A positive, finite number of seconds."""
    text = environ.get(name)
    return default if text is None else check_seconds(name, text)


def check_count(name: str, value: object) -> int:
    """``value`` as a whole number of at least 1 (``2``, not ``2.5``, ``-1`` or ``two``)."""
    try:
        count = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        count = None
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise SettingError(f"{name} must be an integer >= 1, not {value!r}")
    return count


def count_setting(name: str, default: int | None, environ: Mapping[str, str] = os.environ) -> int | None:
    """An integer >= 1, or ``default`` where the variable is not set."""
    text = environ.get(name)
    return default if text is None else check_count(name, text)


def assets_setting(environ: Mapping[str, str] = os.environ) -> str:
    """``WORKBENCH_ASSETS``: ``offline``, ``nucleus`` or an existing directory (checked now rather than when a
    job's child first loads a file)."""
    value = environ.get("WORKBENCH_ASSETS", ASSETS)
    if value in ("offline", "nucleus") or Path(value).is_dir():
        return value
    raise SettingError(f"WORKBENCH_ASSETS must be offline, nucleus or an existing directory, not {value!r}")


@dataclass(frozen=True)
class JobTimings:
    """How a job is watched and stopped: heartbeats, the heartbeat timeout, exports while it runs, the stop grace."""

    heartbeat_interval: float = HEARTBEAT_INTERVAL_S
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S
    export_interval: float = EXPORT_INTERVAL_S
    stop_grace: float = STOP_GRACE_S


TIMING_VARIABLES = {
    "heartbeat_interval": "WORKBENCH_HEARTBEAT_INTERVAL",
    "heartbeat_timeout": "WORKBENCH_HEARTBEAT_TIMEOUT",
    "export_interval": "WORKBENCH_EXPORT_INTERVAL",
    "stop_grace": "WORKBENCH_STOP_GRACE",
}


def job_timings(environ: Mapping[str, str] = os.environ, **given: float | None) -> JobTimings:
    """The timings: a caller's own values (``given``, by field name; None for unset) over the ``WORKBENCH_*``
    variables over the defaults. Each is positive, and the heartbeat timeout is longer than the heartbeat
    interval: a job that heartbeats less often than its timeout would be failed while it makes progress."""
    values = {}
    for field in fields(JobTimings):
        name = TIMING_VARIABLES[field.name]
        value = given.get(field.name)
        values[field.name] = seconds_setting(name, field.default, environ) if value is None else check_seconds(
            field.name, value)
    timings = JobTimings(**values)
    if timings.heartbeat_timeout <= timings.heartbeat_interval:
        raise SettingError(
            f"the heartbeat timeout (WORKBENCH_HEARTBEAT_TIMEOUT, {timings.heartbeat_timeout:g} s) must be longer "
            f"than the heartbeat interval (WORKBENCH_HEARTBEAT_INTERVAL, {timings.heartbeat_interval:g} s)")
    return timings


def is_main_node(environ: Mapping[str, str]) -> bool:
    """Whether this process uploads outputs and reports the job's end: true outside multi-node jobs, else on the
    node AWS Batch names main (``AWS_BATCH_JOB_NODE_INDEX`` equals ``AWS_BATCH_JOB_MAIN_NODE_INDEX``)."""
    if "AWS_BATCH_JOB_NUM_NODES" not in environ:
        return True
    return environ.get("AWS_BATCH_JOB_NODE_INDEX", "0") == environ.get("AWS_BATCH_JOB_MAIN_NODE_INDEX", "0")
