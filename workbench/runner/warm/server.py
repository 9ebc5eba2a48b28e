"""The warm process: imports torch, Isaac Lab and Newton once, then forks each local job's child on request.

``python -m workbench.runner.warm.server`` (started by ``warmstart.start``) serves one Unix socket. For each
request the server forks; the child leads its own session, points stdin at /dev/null and stdout/stderr at the
job's pipe, takes the job's environment and working directory, runs the module as ``__main__`` and ends the way a
fresh interpreter would. The server reports the child's exit code on the request's connection; when that
connection drops (the runner died) it kills the child's group.

Nothing may initialise CUDA or Warp before the fork (checked once the modules are imported). Importing torch and
Newton leaves idle native threads behind; they do not exist in the child, which starts its own (torch resets its
pools at fork), so Python's warning about forking a multi-threaded process is silenced. A lock file held for the
server's life (and removed at its end) keeps it to one per socket; it exits after ``--idle`` seconds without a job.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from workbench.runner.warm.client import (
    DEFAULT_IDLE_S,
    MESSAGE_BYTES,
    Endpoint,
    environment_mismatch,
    import_time_environment,
    path_entries,
    send_message,
)

PRELOAD = (
    "torch", "tensordict", "gymnasium", "hydra", "warp", "newton", "mujoco_warp", "isaaclab.cli", "isaaclab.envs",
    "isaaclab_newton.physics", "isaaclab_tasks", "isaaclab_rl.rsl_rl", "rsl_rl.runners", "isaaclab_rl.rl_games",
    "workbench.runner.evaluation.loop",
)
"""What a job's child would import anyway. Not skrl: imported after Warp it initialises Warp. Not rl_games' runner:
it asks torch whether CUDA is available, after which torch refuses CUDA in forked children."""


def _reply(conn: socket.socket, message: dict) -> None:
    """Send the last message of a connection and close it; a peer that went away meanwhile is no error."""
    try:
        send_message(conn, message)
    except OSError:
        pass
    conn.close()


class WarmServer:
    """The resident process: imports ``preload``, then forks one child per ``run`` request."""

    def __init__(self, endpoint: Endpoint, idle_s: float, preload: Sequence[str]) -> None:
        self.endpoint = endpoint
        self.idle_s = idle_s
        self.preload = list(preload)
        self.selector = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.jobs: dict[int, tuple[socket.socket, int]] = {}
        self.idle_since = time.monotonic()
        self.stopping = False
        self.ready_s = 0.0
        self.environment = dict(os.environ)
        self.pid = os.getpid()
        self._lock_fd = -1

    def serve(self) -> int:
        self.endpoint.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
                kind, pid = key.data
                if kind == "accept":
                    self._accept()
                elif kind == "exited":
                    self._reap(pid)
                else:
                    self._runner_gone(pid)

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(5.0)
        try:
            data, fds, _, _ = socket.recv_fds(conn, MESSAGE_BYTES, 1)
            request = json.loads(data) if data else {}
        except (OSError, ValueError) as exc:
            print(f"warm: unreadable request: {exc}", flush=True)
            conn.close()
            return
        op = request.get("op")
        if op == "run" and fds and not self.stopping:
            try:
                self._run(conn, request, fds[0])
            except ValueError as exc:
                _reply(conn, {"refused": str(exc)})
            except (KeyError, TypeError, AttributeError, OSError) as exc:
                _reply(conn, {"refused": f"could not fork the job: {exc!r}"})
            return
        for fd in fds:
            os.close(fd)
        if op == "status":
            _reply(conn, {"pid": os.getpid(), "jobs": sorted(self.jobs), "ready_s": round(self.ready_s, 2),
                          "idle_s": self.idle_s, "stopping": self.stopping,
                          "environment": import_time_environment(self.environment)})
        elif op == "stop":
            self.stopping = True
            _reply(conn, {"stopping": True, "jobs": sorted(self.jobs)})
        else:
            _reply(conn, {"refused": "the warm process is stopping" if self.stopping else f"unknown request {op!r}"})

    def _run(self, conn: socket.socket, request: dict, output_fd: int) -> None:
        try:
            env = {str(k): str(v) for k, v in request["env"].items()}
            if differ := environment_mismatch(self.environment, env):
                raise ValueError(f"the job's environment differs from the warm process's in {', '.join(differ)}")
            if not all(isinstance(part, str) for part in [request["cwd"], *request["command"]]):
                raise TypeError("the command and working directory must be strings")
            pid = _fork()
        except BaseException:
            os.close(output_fd)
            raise
        if pid == 0:
            self._become_child(request, env, output_fd)
        os.close(output_fd)
        pidfd = os.pidfd_open(pid)
        self.jobs[pid] = (conn, pidfd)
        self.selector.register(pidfd, selectors.EVENT_READ, ("exited", pid))
        self.selector.register(conn, selectors.EVENT_READ, ("runner", pid))
        try:
            send_message(conn, {"pid": pid})
        except OSError:
            os.killpg(pid, signal.SIGKILL)
        print(f"warm: forked pid {pid} for {' '.join(request['command'][:2])} in {request['cwd']}", flush=True)

    def _become_child(self, request: dict, env: dict[str, str], output_fd: int) -> NoReturn:
        """In the forked child: become the job's process.

        The child leaves the server's code only by ``SystemExit``, which the interpreter ends as it ends any
        process (threading's exit hooks, non-daemon threads joined, atexit handlers, open files flushed); ``serve``
        leaves its clean-up to the server's own process.
        """
        try:
            os.setsid()
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
            os.chdir(request["cwd"])
            server_path = path_entries(self.environment.get("PYTHONPATH", ""))
            private = path_entries(env.get("PYTHONPATH", ""))
            sys.path[0:1] = [request["cwd"], *private[: len(private) - len(server_path)]]
            set_by_imports = {k: v for k, v in os.environ.items() if k not in self.environment}
            os.environ.clear()
            os.environ.update({**set_by_imports, **env})
            module, *arguments = request["command"]
            sys.argv = [module, *arguments]
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit:
            raise
        except KeyboardInterrupt:
            traceback.print_exc()
            raise SystemExit(128 + signal.SIGINT) from None
        except BaseException:  # noqa: BLE001 - nothing but SystemExit may carry the child into the server's code
            traceback.print_exc()
            raise SystemExit(1) from None
        raise SystemExit(0)

    def _close_server_files(self) -> None:
        for conn, pidfd in self.jobs.values():
            conn.close()
            os.close(pidfd)
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
    args = parser.parse_args(argv)
    endpoint = Endpoint(args.socket, args.lock, Path(os.devnull))
    return WarmServer(endpoint, args.idle, [m for m in args.preload.split(",") if m]).serve()


if __name__ == "__main__":
    sys.exit(main())
