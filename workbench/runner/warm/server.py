"""The warm process: imports torch, Isaac Lab and Newton once, then forks each local job's child on request.

``python -m workbench.runner.warm.server`` (started by ``warmstart.start``) serves one Unix socket, in a directory
that must be ours alone (``client.private_directory``). It runs only the workbench's own jobs (``JOB_COMMANDS``).
For each ``run`` request the server forks; the child leads its own session, points stdin at /dev/null and
stdout/stderr at the job's pipe, takes the job's environment and working directory, runs the module as
``__main__`` and ends the way a fresh interpreter would, writing the status it ends with to the job's status pipe
last (the runner reads it should the server be gone by then). The server reports the child's exit code on the
request's connection; when that connection drops (the runner died) it kills the child's group.

One thread serves every connection through a selector (no more threads: one holding a lock when the server forks
would leave the child that lock held for ever): a request is read once its connection is readable, so a silent
client holds up nobody and is dropped after ``REQUEST_TIMEOUT_S``; a malformed request is refused with the reason.

Nothing may initialise CUDA or Warp before the fork (checked once the modules are imported). Importing torch and
Newton leaves idle native threads behind; they do not exist in the child, which starts its own (torch resets its
pools at fork), so Python's warning about forking a multi-threaded process is silenced. A lock file held for the
server's life (and removed at its end) keeps it to one per socket; it exits after ``--idle`` seconds without a job.
"""

from __future__ import annotations

import argparse
import atexit
import fcntl
import importlib
import json
import os
import reprlib
import runpy
import selectors
import signal
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from workbench.runner.warm.client import (
    DEFAULT_IDLE_S,
    MESSAGE_BYTES,
    Endpoint,
    UnsafeSocketPath,
    environment_mismatch,
    import_time_environment,
    path_entries,
    private_directory,
    send_message,
)

PRELOAD = (
    "torch", "tensordict", "gymnasium", "hydra", "warp", "newton", "mujoco_warp", "isaaclab.cli", "isaaclab.envs",
    "isaaclab_newton.physics", "isaaclab_tasks", "isaaclab_rl.rsl_rl", "rsl_rl.runners", "isaaclab_rl.rl_games",
    "workbench.runner.evaluation.loop",
)
"""What a job's child would import anyway. Not skrl: imported after Warp it initialises Warp. Not rl_games' runner:
it asks torch whether CUDA is available, after which torch refuses CUDA in forked children."""

JOB_COMMANDS = (("isaaclab", "train"), ("isaaclab", "play"), ("workbench.runner.evaluation.loop",),
                ("workbench.runner.evaluation.export",))
"""The only ``python -m`` commands the server runs (a command starts with one of these): those the runner forks
(``commands.isaaclab_command``, ``commands.evaluate_command``, ``commands.export_command``)."""

REQUEST_TIMEOUT_S = 5.0
"""How long a connection may stay open without sending its request before the server drops it."""

OPERATIONS = ("run", "status", "stop")


class Refusal(Exception):
    """A request the server does not carry out; the message, sent back as the refusal, says why."""


@dataclass(frozen=True)
class JobRequest:
    """A well-formed ``run`` request: ``python -m command[0] command[1:]`` in ``cwd`` with ``env``."""

    command: list[str]
    cwd: str
    env: dict[str, str]


def parse_request(data: bytes) -> dict:
    """The request as a JSON object with a known ``op``, else Refusal."""
    try:
        message = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Refusal(f"the request is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(message, dict):
        raise Refusal(f"the request is a JSON {type(message).__name__}, not an object")
    if message.get("op") not in OPERATIONS:
        raise Refusal(f"unknown request {reprlib.repr(message.get('op'))}")
    return message


def job_request(message: Mapping[str, object], allowed: Sequence[tuple[str, ...]]) -> JobRequest:
    """The ``run`` request's job if its fields have their types and its command is ``allowed``, else Refusal."""
    command, cwd, env = message.get("command"), message.get("cwd"), message.get("env")
    if not isinstance(command, list) or not command or not all(isinstance(part, str) for part in command):
        raise Refusal("the command must be a non-empty list of strings")
    if not isinstance(cwd, str):
        raise Refusal("the working directory must be a string")
    if not isinstance(env, dict) or not all(isinstance(value, str) for value in env.values()):
        raise Refusal("the environment must be an object of strings")
    if not any(tuple(command[:len(prefix)]) == prefix for prefix in allowed):
        raise Refusal(f"the warm process runs only the workbench's jobs ({', '.join(' '.join(p) for p in allowed)}), "
                      f"not {reprlib.repr(' '.join(command[:2]))}")
    return JobRequest(command, cwd, env)


def _reply(conn: socket.socket, message: dict) -> None:
    """Send the last message of a connection and close it; a peer that went away meanwhile is no error."""
    try:
        send_message(conn, message)
    except OSError:
        pass
    conn.close()


def _close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


class WarmServer:
    """The resident process: imports ``preload``, then forks one child per ``run`` request for an allowed command
    (``JOB_COMMANDS`` and any module of ``also_run``)."""

    def __init__(self, endpoint: Endpoint, idle_s: float, preload: Sequence[str], also_run: Sequence[str] = ()) -> None:
        self.endpoint = endpoint
        self.idle_s = idle_s
        self.preload = list(preload)
        self.allowed = [*JOB_COMMANDS, *((module,) for module in also_run)]
        self.selector = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.jobs: dict[int, tuple[socket.socket, int]] = {}
        self.pending: dict[socket.socket, float] = {}
        self.idle_since = time.monotonic()
        self.stopping = False
        self.ready_s = 0.0
        self.environment = dict(os.environ)
        self.pid = os.getpid()
        self._lock_fd = -1

    def serve(self) -> int:
        try:
            private_directory(self.endpoint.socket_path.parent, create=True)
        except UnsafeSocketPath as exc:
            print(f"warm: cannot serve: {exc}", flush=True)
            return 1
        lock_fd = _acquire_lock(self.endpoint.lock_path)
        if lock_fd is None:
            print("warm: another warm process already serves this workbench home", flush=True)
            return 0
        self._lock_fd = lock_fd
        started = time.monotonic()
        for name in self.preload:
            importlib.import_module(name)
        if reason := _initialised_too_early():
            print(f"warm: cannot serve: {reason} before any job was forked", flush=True)
            return 1
        self.ready_s = time.monotonic() - started
        self.endpoint.socket_path.unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(str(self.endpoint.socket_path))
        os.chmod(self.endpoint.socket_path, 0o600)
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, ("accept", None))
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        print(f"warm: ready in {self.ready_s:.1f} s (pid {os.getpid()}); {len(self.preload)} modules imported; "
              f"exits after {self.idle_s:g} s without a job", flush=True)
        try:
            self._loop()
        finally:
            if os.getpid() == self.pid:
                self.listener.close()
                self.endpoint.socket_path.unlink(missing_ok=True)
                self.endpoint.lock_path.unlink(missing_ok=True)
                os.close(self._lock_fd)
        return 0

    def _loop(self) -> None:
        while True:
            if not self.jobs and (self.stopping or time.monotonic() - self.idle_since > self.idle_s):
                print("warm: stopping" if self.stopping else f"warm: idle for {self.idle_s:g} s, exiting", flush=True)
                return
            for key, _ in self.selector.select(timeout=1.0):
                kind, subject = key.data
                if kind == "accept":
                    self._accept()
                elif kind == "request":
                    self._answer(subject)
                elif kind == "exited":
                    self._reap(subject)
                else:
                    self._runner_gone(subject)
            self._drop_silent()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError as exc:
            print(f"warm: could not accept a connection: {exc}", flush=True)
            return
        conn.setblocking(False)
        self.pending[conn] = time.monotonic() + REQUEST_TIMEOUT_S
        self.selector.register(conn, selectors.EVENT_READ, ("request", conn))

    def _drop_silent(self) -> None:
        """Close the connections that sent no request within ``REQUEST_TIMEOUT_S``."""
        now = time.monotonic()
        for conn in [conn for conn, deadline in self.pending.items() if deadline < now]:
            self._forget(conn)
            conn.close()
            print(f"warm: dropped a connection that sent no request within {REQUEST_TIMEOUT_S:g} s", flush=True)

    def _forget(self, conn: socket.socket) -> None:
        del self.pending[conn]
        self.selector.unregister(conn)

    def _answer(self, conn: socket.socket) -> None:
        """Read the connection's one request and carry it out, or refuse it with the reason."""
        self._forget(conn)
        try:
            data, fds, _, _ = socket.recv_fds(conn, MESSAGE_BYTES, 2)
        except OSError as exc:
            print(f"warm: unreadable request: {exc}", flush=True)
            conn.close()
            return
        try:
            message = parse_request(data)
            if message["op"] == "run":
                self._run(conn, self._job(message, len(fds)), fds)
                return
        except Refusal as exc:
            _close_all(fds)
            _reply(conn, {"refused": str(exc)})
            return
        _close_all(fds)
        if message["op"] == "status":
            _reply(conn, {"pid": os.getpid(), "jobs": sorted(self.jobs), "ready_s": round(self.ready_s, 2),
                          "idle_s": self.idle_s, "stopping": self.stopping,
                          "environment": import_time_environment(self.environment)})
        else:
            self.stopping = True
            _reply(conn, {"stopping": True, "jobs": sorted(self.jobs)})

    def _job(self, message: dict, fd_count: int) -> JobRequest:
        """The job of a ``run`` request this server can fork, else Refusal."""
        if self.stopping:
            raise Refusal("the warm process is stopping")
        job = job_request(message, self.allowed)
        if fd_count != 2:
            raise Refusal("a run request carries 2 file descriptors (the job's output and status pipes), "
                          f"not {fd_count}")
        if differ := environment_mismatch(self.environment, job.env):
            raise Refusal(f"the job's environment differs from the warm process's in {', '.join(differ)}")
        return job

    def _run(self, conn: socket.socket, job: JobRequest, fds: Sequence[int]) -> None:
        """Fork the job's child; ``fds`` (the output and status pipes' write ends) are the child's from here on."""
        try:
            pid = _fork()
        except OSError as exc:
            raise Refusal(f"could not fork the job: {exc!r}") from exc
        if pid == 0:
            self._become_child(conn, job, *fds)
        _close_all(fds)
        pidfd = os.pidfd_open(pid)
        self.jobs[pid] = (conn, pidfd)
        self.selector.register(pidfd, selectors.EVENT_READ, ("exited", pid))
        self.selector.register(conn, selectors.EVENT_READ, ("runner", pid))
        try:
            send_message(conn, {"pid": pid})
        except OSError:
            os.killpg(pid, signal.SIGKILL)
        print(f"warm: forked pid {pid} for {' '.join(job.command[:2])} in {job.cwd}", flush=True)

    def _become_child(self, conn: socket.socket, job: JobRequest, output_fd: int, status_fd: int) -> NoReturn:
        """In the forked child: become the job's process.

        The child leaves the server's code only by ``SystemExit``, which the interpreter ends as it ends any
        process (threading's exit hooks, non-daemon threads joined, atexit handlers, open files flushed); ``serve``
        leaves its clean-up to the server's own process. No local may hold the exception that ends the child: the
        cycle it would make keeps the job's module alive past the point where its open files can still be flushed.
        """
        report = _ExitReport(status_fd)
        try:
            os.setsid()
            conn.close()
            self._close_server_files()
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            os.close(null)
            os.close(output_fd)
            sys.stdout.reconfigure(line_buffering=True, write_through=True)
            sys.stderr.reconfigure(line_buffering=True, write_through=True)
            os.chdir(job.cwd)
            server_path = path_entries(self.environment.get("PYTHONPATH", ""))
            private = path_entries(job.env.get("PYTHONPATH", ""))
            sys.path[0:1] = [job.cwd, *private[: len(private) - len(server_path)]]
            set_by_imports = {k: v for k, v in os.environ.items() if k not in self.environment}
            os.environ.clear()
            os.environ.update({**set_by_imports, **job.env})
            module, *arguments = job.command
            sys.argv = [module, *arguments]
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            report.status = _exit_status(exc.code)
            raise
        except KeyboardInterrupt:
            traceback.print_exc()
            report.status = 128 + signal.SIGINT
            raise SystemExit(report.status) from None
        except BaseException:  # noqa: BLE001 - nothing but SystemExit may carry the child into the server's code
            traceback.print_exc()
            report.status = 1
            raise SystemExit(1) from None
        report.status = 0
        raise SystemExit(0)

    def _close_server_files(self) -> None:
        for conn, pidfd in self.jobs.values():
            conn.close()
            os.close(pidfd)
        for conn in self.pending:
            conn.close()
        self.listener.close()
        self.selector.close()
        os.close(self._lock_fd)

    def _reap(self, pid: int) -> None:
        conn, pidfd = self.jobs.pop(pid)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        if conn.fileno() in self.selector.get_map():
            self.selector.unregister(conn)
        _reply(conn, {"exit": code})
        self.idle_since = time.monotonic()
        print(f"warm: pid {pid} exited with {code}", flush=True)

    def _runner_gone(self, pid: int) -> None:
        """The runner's connection closed before its child ended: nobody watches the child, so stop it."""
        conn, _ = self.jobs[pid]
        self.selector.unregister(conn)
        print(f"warm: the runner of pid {pid} went away; killing its process group", flush=True)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class _ExitReport:
    """In a job's child: writes the status its interpreter ends with to the runner's status pipe, so that the
    runner learns the real exit code even when the server that would report it is gone.

    Registered with atexit before the job runs, it is called after the job's own atexit handlers (and after the
    non-daemon threads are joined), only in the child itself, not in processes the job forks.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pid = os.getpid()
        self.status = 1
        os.set_inheritable(fd, False)
        atexit.register(self.write)

    def write(self) -> None:
        if os.getpid() != self.pid:
            return
        try:
            os.write(self.fd, str(self.status).encode())
        except OSError:
            pass


def _exit_status(code: object) -> int:
    """The exit status an interpreter ends with on ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


def _acquire_lock(path: Path, patience_s: float = 1.0) -> int | None:
    """The open, exclusively locked lock file, or None while another process holds it.

    A lock file is removed by its server on exit, so the lock only counts when taken on the file still at
    ``path``. Checkers hold the lock for an instant, hence the patience.
    """
    deadline = time.monotonic() + patience_s
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
            continue
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _initialised_too_early() -> str | None:
    """Why forking would be unsafe: CUDA or Warp's runtime already initialised in this process, or torch already
    set to refuse CUDA in forked children (any CUDA device query does that)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "importing the preload initialised CUDA"
    if torch is not None and _forked_child_refuses_cuda():
        return "importing the preload queried CUDA, so torch refuses CUDA in forked children"
    warp_context = sys.modules.get("warp._src.context")
    if warp_context is not None and getattr(warp_context, "runtime", None) is not None:
        return "importing the preload initialised Warp"
    return None


def _fork() -> int:
    """``os.fork()`` without Python's warning about the idle native threads the preload left (see the module doc)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
        return os.fork()


def _forked_child_refuses_cuda() -> bool:
    pid = _fork()
    if pid == 0:
        os._exit(1 if sys.modules["torch"].cuda._is_in_bad_fork() else 0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.runner.warm.server", description=__doc__)
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--lock", type=Path, required=True)
    parser.add_argument("--idle", type=float, default=DEFAULT_IDLE_S, help="exit after this many seconds without a job")
    parser.add_argument("--preload", default=",".join(PRELOAD), help="comma-separated modules to import")
    parser.add_argument("--also-run", action="append", default=[], metavar="MODULE",
                        help="also run this module, with any arguments (the tests' stand-in jobs)")
    args = parser.parse_args(argv)
    endpoint = Endpoint(args.socket, args.lock, Path(os.devnull))
    return WarmServer(endpoint, args.idle, [m for m in args.preload.split(",") if m], args.also_run).serve()


if __name__ == "__main__":
    sys.exit(main())
