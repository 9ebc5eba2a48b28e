"""The child process: started in its own process group, its output streamed line by line, stopped as a group.

Isaac Lab's ``play`` ignores SIGTERM (and rl_games only stops on SIGINT), so stopping sends SIGINT and SIGTERM to
the whole group and SIGKILL after a grace period: nothing the job started is left running. A fresh child is also
killed by the kernel when its runner dies without stopping it (SIGKILL, a crash): nobody would watch or report it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


class Child:
    """What the runner needs of its child: pid (= process group), output lines, ``poll``, group ``stop``."""

    def __init__(self, pid: int, output_fd: int, on_line: Callable[[str], None]) -> None:
        self.pid = pid
        self.last_output_at = time.monotonic()
        self._on_line = on_line
        self._reader = threading.Thread(target=self._read, args=(output_fd,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        pending = b""
        with os.fdopen(fd, "rb", buffering=0) as stream:
            while chunk := stream.read(65536):
                self.last_output_at = time.monotonic()
                pending += chunk
                *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
                for line in lines:
                    if line.strip():
                        self._on_line(line.decode("utf-8", "replace"))
        if pending.strip():
            self._on_line(pending.decode("utf-8", "replace"))

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal) once the child has ended, else None."""
        raise NotImplementedError

    def wait_output(self, timeout: float = 10.0) -> None:
        """Wait for the reader to drain what the child wrote before it exited."""
        self._reader.join(timeout)

    def stop(self, grace: float = 10.0) -> int:
        """Stop the whole process group: SIGINT + SIGTERM, then SIGKILL after ``grace`` seconds."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            _signal_group(self.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self.poll() is not None and not group_alive(self.pid):
                break
            time.sleep(0.1)
        _signal_group(self.pid, signal.SIGKILL)
        code = self._wait()
        self.wait_output(timeout=2.0)
        return code

    def _wait(self) -> int:
        while (code := self.poll()) is None:
            time.sleep(0.05)
        return code


class ChildProcess(Child):
    """A fresh process for ``command``, in its own session; ``on_line`` gets every output line (reader thread).

    Start it from the thread that watches it: the kernel's parent-death signal follows the thread that forked.
    """

    def __init__(
        self,
        command: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        on_line: Callable[[str], None],
    ) -> None:
        self.command = list(command)
        self._popen = subprocess.Popen(
            self.command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_dies_with(os.getpid()),
        )
        super().__init__(self._popen.pid, os.dup(self._popen.stdout.fileno()), on_line)
        self._popen.stdout.close()

    def poll(self) -> int | None:
        return self._popen.poll()

    def _wait(self) -> int:
        return self._popen.wait()


def _dies_with(runner_pid: int) -> Callable[[], None]:
    """Run in the forked child before it executes the command: SIGKILL it when the runner (its parent) ends, and
    end it at once when the runner is gone already."""

    def arrange() -> None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != runner_pid:
            os._exit(1)

    return arrange


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies waiting to be reaped do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def describe_exit(code: int) -> str:
    """``exit code 1`` or ``killed by SIGKILL`` for a Popen return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
