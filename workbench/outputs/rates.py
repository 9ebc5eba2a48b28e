"""Measured training rates of this machine's jobs (``$WORKBENCH_HOME/cache/rates.json``), for estimates before submit.

Every successful training that did not resume records, from its own ``metrics.csv``, its start-up (job start to
the first logged iteration) and its seconds per iteration, keyed by task, library, device kind and env count.
The newest few per key are kept. Several jobs may end at once: a lock file serialises the read-modify-write.
"""

from __future__ import annotations

import csv
import fcntl
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench.outputs.layout import ITERATION, WALL_TIME
from workbench.spec.paths import workbench_home
from workbench.transport.atomic import write_json_atomic

KEPT_PER_KEY = 5


@dataclass(frozen=True)
class Rate:
    """One job's measured figures."""

    task: str
    library: str
    device: str
    num_envs: int
    startup_s: float
    seconds_per_iteration: float
    iterations: int
    job_id: str
    measured_at: str


def rates_file() -> Path:
    return workbench_home() / "cache" / "rates.json"


def device_kind(device: str) -> str:
    """``cpu`` or ``cuda``: what a rate depends on (which GPU index does not matter)."""
    return "cpu" if device == "cpu" else "cuda"


def measure(metrics: Path, started_at: float) -> tuple[float, float, int] | None:
    """Start-up seconds, seconds per iteration and iterations from a training's ``metrics.csv`` (None with fewer
    than two logged iterations: no rate to tell)."""
    try:
        with metrics.open(newline="") as handle:
            points = [(float(row[ITERATION]), float(row[WALL_TIME])) for row in csv.DictReader(handle)
                      if row.get(ITERATION) and row.get(WALL_TIME)]
    except (OSError, ValueError, KeyError):
        return None
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    (first_iteration, first_wall), (last_iteration, last_wall) = points[0], points[-1]
    per_iteration = (last_wall - first_wall) / (last_iteration - first_iteration)
    return max(0.0, first_wall - started_at), per_iteration, len(points)


def record(rate: Rate, path: Path | None = None) -> None:
    """Add ``rate`` to the home's rates (the newest :data:`KEPT_PER_KEY` per key stay)."""
    path = path or rates_file()
    with _locked(path):
        rates = _read(path)
        key = _key(rate.task, rate.library, rate.device, rate.num_envs)
        rates[key] = ([asdict(rate)] + rates.get(key, []))[:KEPT_PER_KEY]
        write_json_atomic(path, rates)


def measured(task: str, library: str, device: str, path: Path | None = None) -> list[Rate]:
    """Every kept rate of ``task`` with ``library`` on ``device`` (any env count), newest first per env count."""
    prefix = _key(task, library, device, 0).rsplit("|", 1)[0] + "|"
    return [Rate(**item) for key, items in _read(path or rates_file()).items() if key.startswith(prefix)
            for item in items]


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _key(task: str, library: str, device: str, num_envs: int) -> str:
    return f"{task}|{library}|{device_kind(device)}|{num_envs}"


def _read(path: Path) -> dict[str, list[dict]]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
