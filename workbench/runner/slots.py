"""A concurrency limit for jobs on one machine: N slot files, each held with an exclusive ``flock``.

The lock belongs to the runner process, so a slot frees itself when the runner ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path


def acquire_slot(slots_dir: Path, slots: int, should_stop: Callable[[], bool], poll: float = 0.5) -> int | None:
    """Block until one of ``slots`` slots is free and hold it; returns its fd, or None if ``should_stop()``."""
    slots_dir.mkdir(parents=True, exist_ok=True)
    while not should_stop():
        for index in range(slots):
            fd = os.open(slots_dir / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        time.sleep(poll)
    return None
