"""Warm start, the runner's side: fork a job's child from the warm process, and start, ask and stop that process.

A fresh ``python -m isaaclab train`` spends most of a warm start importing (about 9 s of 15 on an H100). The warm
process (``workbench.runner.warm.server``) imports those modules once and serves requests on a Unix socket
(``/tmp/workbench-<uid>/``, one per workbench home and interpreter). A request carries a ``python -m MODULE ARGS``
command, its working directory and environment, and the write ends of the job's output pipe and of its status pipe;
the answer is the forked child's pid and, on the same connection, later its exit code. A job whose import-time
environment (asset root, Python path, CUDA, Warp, torch settings...) differs from the server's is refused with the
names that differ and runs as a fresh process instead.

A request carries the job's whole environment (cloud keys included), so nothing is sent unless the socket directory
is ours alone (our uid, mode 0700, a real directory), the socket is ours and the process listening on it runs as us;
otherwise the request is refused with the reason and the job runs fresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.runner.process import Child
from workbench.runner.slots import is_held
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


class WarmRefused(WorkbenchError):
    """The warm process cannot run this job (none running, a different environment, ...); run it fresh."""


class UnsafeSocketPath(WarmRefused, PermissionError):
    """The socket directory or socket could be another user's: nothing is sent there, nothing is bound there.

    A PermissionError too, so that callers of ``start`` that handle OSError (the runner) report it and go on.
    """


def private_directory(directory: Path, create: bool = False) -> None:
    """Check that ``directory`` is ours alone: a real directory (not a symbolic link), our uid, mode exactly 0700.

    Whoever else can write to it can put its own socket there and receive the next job's environment. ``create``
    makes it (0700) when missing; without, a missing one raises FileNotFoundError. Raises UnsafeSocketPath.
    """
    if create:
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        else:
            os.chmod(directory, 0o700)
    mode = stat.S_IMODE(_our_own(directory, "socket directory", stat.S_ISDIR, "a directory").st_mode)
    if mode & 0o022:
        raise UnsafeSocketPath(f"the warm socket directory {directory} is writable by others (mode {mode:04o}); "
                               "not using it")
    if mode != 0o700:
        raise UnsafeSocketPath(f"the warm socket directory {directory} has mode {mode:04o}, not 0700; not using it")


def _our_own(path: Path, what: str, is_kind: Callable[[int], bool], kind: str) -> os.stat_result:
    """``path``'s own status (a link is not followed) if it is ``kind`` and ours, else UnsafeSocketPath."""
    info = os.lstat(path)
    problem = ("is a symbolic link" if stat.S_ISLNK(info.st_mode) else
               f"is not {kind}" if not is_kind(info.st_mode) else
               f"belongs to another user (uid {info.st_uid})" if info.st_uid != os.getuid() else None)
    if problem is not None:
        raise UnsafeSocketPath(f"the warm {what} {path} {problem}; not using it")
    return info


def _connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    """A connection to the warm process once the directory, the socket and the listening process are ours.

    Raises UnsafeSocketPath, or WarmRefused when no warm process listens.
    """
    path = endpoint.socket_path
    try:
        private_directory(path.parent)
        _our_own(path, "socket", stat.S_ISSOCK, "a socket")
    except FileNotFoundError as exc:
        raise WarmRefused(f"no warm process answers (no {exc.filename})") from exc
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
        _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    except OSError as exc:
        conn.close()
        raise WarmRefused(f"no warm process answers ({exc.__class__.__name__})") from exc
    if uid != os.getuid():
        conn.close()
        raise UnsafeSocketPath(f"the process listening on the warm socket {path} runs as another user (uid {uid}); "
                               "not using it")
    return conn


def request(endpoint: Endpoint, message: dict, fds: Sequence[int] = (), timeout: float = 5.0) -> tuple[socket.socket, dict]:
    """Send one request; returns the open connection and the first answer."""
    conn = _connect(endpoint, timeout)
    try:
        socket.send_fds(conn, [json.dumps(message).encode()], list(fds))
        answer = receive_message(conn)
    except (OSError, ValueError) as exc:
        conn.close()
        raise WarmRefused(f"no warm process answers ({exc.__class__.__name__})") from exc
    if answer is None or "refused" in answer:
        conn.close()
        raise WarmRefused(answer["refused"] if answer else "the warm process closed the connection")
    return conn, answer


class WarmChild(Child):
    """A job's child forked by the warm process; its exit code arrives on the request's connection.

    Should the warm process die first (the connection drops), the code comes from the child itself: as the last
    call of its interpreter it writes the status it ends with to our status pipe, and its pidfd says when it has
    ended. A child that ended without writing one (a signal, ``os._exit``) counts as killed by SIGKILL.
    """

    def __init__(self, pid: int, connection: socket.socket, status_fd: int, output_fd: int,
                 on_line: Callable[[str], None]) -> None:
        self._connection: socket.socket | None = connection
        connection.setblocking(False)
        self._status_fd = status_fd
        os.set_blocking(status_fd, False)
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd = None
        self._code: int | None = None
        super().__init__(pid, output_fd, on_line)

    def poll(self) -> int | None:
        if self._code is None and self._connection is not None:
            self._code = self._code_from_server()
        if self._code is None and self._connection is None:
            self._code = self._code_from_child()
        return self._code

    def _code_from_server(self) -> int | None:
        """The code the warm process reports; None while the child runs, or once the warm process is gone."""
        try:
            data = self._connection.recv(MESSAGE_BYTES)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        self._connection.close()
        self._connection = None
        if not data:
            return None
        self._close_watches()
        return int(json.loads(data)["exit"])

    def _code_from_child(self) -> int | None:
        """The status the child wrote to its status pipe once it has ended; None while it runs."""
        if self._pidfd is not None and not select.select([self._pidfd], [], [], 0)[0]:
            return None
        try:
            written = os.read(self._status_fd, 64)
        except BlockingIOError:
            written = b""
        self._close_watches()
        return int(written) if written.strip().isdigit() else -signal.SIGKILL

    def _close_watches(self) -> None:
        os.close(self._status_fd)
        if self._pidfd is not None:
            os.close(self._pidfd)


def fork_child(endpoint: Endpoint, command: Sequence[str], cwd: Path, env: Mapping[str, str],
               on_line: Callable[[str], None]) -> WarmChild:
    """Run ``command`` (``[sys.executable, "-m", module, ...]``) forked from the warm process; raises WarmRefused."""
    if len(command) < 3 or command[0] != sys.executable or command[1] != "-m":
        raise WarmRefused("the command is not a Python module of this interpreter")
    output_read, output_write = os.pipe()
    status_read, status_write = os.pipe()
    try:
        conn, answer = request(endpoint, {"op": "run", "command": list(command[2:]), "cwd": str(cwd), "env": dict(env)},
                               fds=[output_write, status_write], timeout=30.0)
    except WarmRefused:
        os.close(output_read)
        os.close(status_read)
        raise
    finally:
        os.close(output_write)
        os.close(status_write)
    return WarmChild(int(answer["pid"]), conn, status_read, output_read, on_line)


def status(endpoint: Endpoint) -> dict | None:
    """The running warm process's pid, jobs and import-time environment, or None when none answers.

    Raises UnsafeSocketPath when the socket directory or socket is not ours alone (likewise ``stop``, ``start``).
    """
    return _ask(endpoint, "status")


def stop(endpoint: Endpoint, wait_s: float = 10.0) -> dict | None:
    """Ask the warm process to exit once its running jobs end (waiting ``wait_s`` for that when it has none).

    Returns its answer (``jobs``: those still running), or None when none was running.
    """
    answer = _ask(endpoint, "stop")
    if answer is None:
        return None
    deadline = time.monotonic() + wait_s
    while not answer["jobs"] and is_starting_or_running(endpoint) and time.monotonic() < deadline:
        time.sleep(0.1)
    return answer


def _ask(endpoint: Endpoint, op: str) -> dict | None:
    """The warm process's answer to ``op``, or None when none answers; UnsafeSocketPath is raised, not hidden."""
    try:
        conn, answer = request(endpoint, {"op": op})
    except UnsafeSocketPath:
        raise
    except WarmRefused:
        return None
    conn.close()
    return answer


def is_starting_or_running(endpoint: Endpoint) -> bool:
    """Whether a warm process holds the lock (it may still be importing)."""
    try:
        private_directory(endpoint.lock_path.parent)
    except FileNotFoundError:
        return False
    return is_held(endpoint.lock_path)


def start(endpoint: Endpoint, env: Mapping[str, str], idle_s: float,
          preload: Sequence[str] | None = None, also_run: Sequence[str] = ()) -> subprocess.Popen | None:
    """Start a detached warm process with ``env`` unless one is running or starting; returns its process.

    ``preload``: the modules it imports (default: ``warm_server.PRELOAD``). ``also_run``: modules it may run besides
    the workbench's jobs (``warm_server.JOB_COMMANDS``), with any arguments: the tests' stand-in jobs.

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
    for module in also_run:
        command += ["--also-run", module]
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


