"""Warm start, the runner's side: fork a job's child from the warm process, and start, ask and stop that process.

A fresh ``python -m isaaclab train`` spends most of a warm start importing (about 9 s of 15 on an H100). The warm
process (``workbench.runner.warm.server``) imports those modules once and serves requests on a Unix socket
(``/tmp/workbench-<uid>/``, one per workbench home and interpreter). A request carries a ``python -m MODULE ARGS``
command, its working directory and environment, and the write end of the job's output pipe; the answer is the
forked child's pid and, on the same connection, later its exit code. A job whose import-time environment (asset
root, Python path, CUDA, Warp, torch settings...) differs from the server's is refused with the names that differ
and runs as a fresh process instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.runner.process import ForkedChild
from workbench.spec.settings import seconds_setting

IMPORT_TIME_PREFIXES = ("ISAAC", "NEWTON", "OMNI", "WARP_", "CUDA_", "NVIDIA_", "TORCH", "PYTORCH_", "OMP_", "MKL_",
                        "KMP_", "HYDRA", "LD_", "PYTHON")
"""Environment variables that modules may read when imported: a job must have the server's values."""

UNCHECKED = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED"})
"""Handled apart: job-private ``PYTHONPATH`` entries go in front of ``sys.path``; output is unbuffered anyway."""

MESSAGE_BYTES = 1 << 20

DEFAULT_IDLE_S = 900.0
"""How long the warm process waits for a job before it exits, unless ``WORKBENCH_WARM_IDLE_S`` says otherwise."""


@dataclass(frozen=True)
class Endpoint:
    """Where the warm process for one workbench home and interpreter listens, and its lock."""

    socket_path: Path
    lock_path: Path
    log_path: Path

    @classmethod
    def for_home(cls, home: Path, executable: str = sys.executable) -> Endpoint:
        key = hashlib.sha256(f"{Path(home).resolve()}\0{executable}".encode()).hexdigest()[:16]
        run_dir = Path(tempfile.gettempdir()) / f"workbench-{os.getuid()}"
        return cls(run_dir / f"warm-{key}.sock", run_dir / f"warm-{key}.lock", Path(home) / "logs" / "warm.log")


def idle_setting(environ: Mapping[str, str] = os.environ) -> float:
    """``WORKBENCH_WARM_IDLE_S``: seconds the warm process waits for a job before it exits."""
    return seconds_setting("WORKBENCH_WARM_IDLE_S", DEFAULT_IDLE_S, environ)


def import_time_environment(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_PREFIXES) and k not in UNCHECKED}


def environment_mismatch(server: Mapping[str, str], job: Mapping[str, str]) -> list[str]:
    """Names of the import-time variables whose values differ between the server's and a job's environment."""
    ours, theirs = import_time_environment(server), import_time_environment(job)
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if not _path_suffix(job.get("PYTHONPATH", ""), server.get("PYTHONPATH", "")):
        differ.append("PYTHONPATH")
    return differ


def path_entries(value: str) -> list[str]:
    return [entry for entry in value.split(os.pathsep) if entry]


def _path_suffix(job: str, server: str) -> bool:
    job_entries, server_entries = path_entries(job), path_entries(server)
    return not server_entries or job_entries[-len(server_entries):] == server_entries


def send_message(conn: socket.socket, message: dict) -> None:
    conn.send(json.dumps(message).encode())


def receive_message(conn: socket.socket) -> dict | None:
    data = conn.recv(MESSAGE_BYTES)
    return json.loads(data) if data else None


class WarmRefused(Exception):
    """The warm process cannot run this job (none running, a different environment, ...); run it fresh."""


def request(endpoint: Endpoint, message: dict, fds: Sequence[int] = (), timeout: float = 5.0) -> tuple[socket.socket, dict]:
    """Send one request; returns the open connection and the first answer."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.settimeout(timeout)
    try:
        conn.connect(str(endpoint.socket_path))
        socket.send_fds(conn, [json.dumps(message).encode()], list(fds))
        answer = receive_message(conn)
    except (OSError, ValueError) as exc:
        conn.close()
        raise WarmRefused(f"no warm process answers ({exc.__class__.__name__})") from exc
    if answer is None or "refused" in answer:
        conn.close()
        raise WarmRefused(answer["refused"] if answer else "the warm process closed the connection")
    return conn, answer


def fork_child(endpoint: Endpoint, command: Sequence[str], cwd: Path, env: Mapping[str, str],
               on_line: Callable[[str], None]) -> ForkedChild:
    """Run ``command`` (``[sys.executable, "-m", module, ...]``) forked from the warm process; raises WarmRefused."""
    if len(command) < 3 or command[0] != sys.executable or command[1] != "-m":
        raise WarmRefused("the command is not a Python module of this interpreter")
    read_fd, write_fd = os.pipe()
    try:
        conn, answer = request(endpoint, {"op": "run", "command": list(command[2:]), "cwd": str(cwd), "env": dict(env)},
                               fds=[write_fd], timeout=30.0)
    except WarmRefused:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return ForkedChild(int(answer["pid"]), conn, read_fd, on_line)


def status(endpoint: Endpoint) -> dict | None:
    """The running warm process's pid, jobs and import-time environment, or None when none answers."""
    try:
        conn, answer = request(endpoint, {"op": "status"})
    except WarmRefused:
        return None
    conn.close()
    return answer


def stop(endpoint: Endpoint, wait_s: float = 10.0) -> dict | None:
    """Ask the warm process to exit once its running jobs end (waiting ``wait_s`` for that when it has none).

    Returns its answer (``jobs``: those still running), or None when none was running.
    """
    try:
        conn, answer = request(endpoint, {"op": "stop"})
    except WarmRefused:
        return None
    conn.close()
    deadline = time.monotonic() + wait_s
    while not answer["jobs"] and is_starting_or_running(endpoint) and time.monotonic() < deadline:
        time.sleep(0.1)
    return answer


def is_starting_or_running(endpoint: Endpoint) -> bool:
    """Whether a warm process holds the lock (it may still be importing)."""
    try:
        fd = os.open(endpoint.lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def start(endpoint: Endpoint, env: Mapping[str, str], idle_s: float,
          preload: Sequence[str] | None = None) -> subprocess.Popen | None:
    """Start a detached warm process with ``env`` unless one is running or starting; returns its process.

    ``preload``: the modules it imports (default: ``warm_server.PRELOAD``).

    A process that was asked to stop is waited for (it exits within a second once its jobs have ended).
    """
    deadline = time.monotonic() + 10.0
    while is_starting_or_running(endpoint):
        answer = status(endpoint)
        if answer is None or not answer["stopping"] or time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    endpoint.log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "workbench.runner.warm.server", "--socket", str(endpoint.socket_path),
               "--lock", str(endpoint.lock_path), "--idle", f"{idle_s:g}"]
    if preload is not None:
        command += ["--preload", ",".join(preload)]
    with endpoint.log_path.open("a") as log:
        return subprocess.Popen(command, env={**env, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd="/")


def wait_ready(endpoint: Endpoint, timeout_s: float, process: subprocess.Popen | None = None) -> dict | None:
    """Wait until the warm process answers (it has finished importing); None if it exited or the time ran out.

    ``process`` is the one ``start`` returned (it may still be on its way to the lock); waiting ends early when no
    process holds the lock (another may have won it: that one is waited for).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (answer := status(endpoint)) is not None:
            return answer
        if not is_starting_or_running(endpoint) and (process is None or process.poll() is not None):
            return status(endpoint)
        time.sleep(0.2)
    return None


