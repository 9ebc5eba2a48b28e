"""A concurrency limit for jobs on one machine, first in first out: N slot files, each held with an exclusive
``flock``, and a queue of tickets.

A queued job has a ticket in ``<slots>/queue``, named by its submission time and held with an exclusive ``flock``
from the moment it appears (the local backend takes it at submit and hands the open file to the runner); only the
job whose ticket is the oldest one held may take a free slot. Locks belong to the open file, so a slot or a ticket
frees itself when its runner ends, however it ends: a ticket nobody holds is a dead runner's and is removed.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

QUEUE = "queue"


@dataclass(frozen=True)
class Ticket:
    """A job's place in the queue: the ticket file and the open descriptor that holds its lock."""

    path: Path
    fd: int

    def close(self) -> None:
        """Leave the queue (the job took a slot, or stopped waiting)."""
        self.path.unlink(missing_ok=True)
        try:
            os.close(self.fd)
        except OSError:
            pass


def enqueue(slots_dir: Path, job_id: str) -> Ticket:
    """A held ticket for ``job_id`` at the end of the queue; it is locked before it becomes visible, so no one
    takes a new ticket for a dead runner's."""
    queue = slots_dir / QUEUE
    queue.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=".", dir=queue)
    fcntl.flock(fd, fcntl.LOCK_EX)
    path = queue / f"{time.time_ns():020d}-{job_id}.ticket"
    os.rename(staged, path)
    return Ticket(path, fd)


def acquire_slot(slots_dir: Path, slots: int, ticket: Ticket, should_stop: Callable[[], bool],
                 poll: float = 0.2) -> int | None:
    """Block until ``ticket`` is first in the queue and one of ``slots`` slots is free, then hold the slot and leave
    the queue; returns the slot's fd, or None (having left the queue) once ``should_stop()``."""
    try:
        while not should_stop():
            if _first_in_line(ticket.path) and (fd := _free_slot(slots_dir, slots)) is not None:
                return fd
            time.sleep(poll)
        return None
    finally:
        ticket.close()


def _first_in_line(ticket: Path) -> bool:
    """Whether no live ticket is older than ``ticket``; dead runners' tickets are removed on the way."""
    for other in sorted(ticket.parent.glob("*.ticket")):
        if other == ticket or is_held(other):
            return other == ticket
        other.unlink(missing_ok=True)
    return True


def is_held(path: Path) -> bool:
    """Whether some process holds a ``flock`` on the file at ``path`` (False where there is no such file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _free_slot(slots_dir: Path, slots: int) -> int | None:
    for index in range(slots):
        fd = os.open(slots_dir / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            os.close(fd)
    return None
