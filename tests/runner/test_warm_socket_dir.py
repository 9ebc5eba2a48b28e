"""A job's request carries its whole environment (cloud keys included): it must never reach another user's process.

A second local user (created with ``useradd``; the tests need root) sets the traps the review found: it pre-creates
the socket directory world-writable, links it elsewhere, or puts its own socket where ours belongs, and listens
there, keeping whatever it receives. The runner's side must refuse each with the reason, before sending anything;
the server must refuse to serve from such a directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.runner.test_warmstart import PRELOAD, child_command, server_environment
from workbench.runner.warm import client as warmstart

OTHER_USER = "workbench-warm-other"
OTHER_PYTHON = shutil.which("python3", path="/usr/bin:/bin")
"""A system interpreter the other user can run (the project's venv may sit in root's home)."""

LISTENER = """
import json, os, socket, sys
socket_path, loot = sys.argv[1:]
listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
listener.bind(socket_path)
os.chmod(socket_path, 0o777)
listener.listen(4)
print("listening", flush=True)
while True:
    conn, _ = listener.accept()
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 4)
    if not data:
        continue
    with open(loot, "ab") as kept:
        kept.write(data + b"\\n")
    conn.send(json.dumps({"pid": 1, "jobs": [], "ready_s": 0, "idle_s": 1, "stopping": False}).encode())
"""
"""The other user's server: keeps every request it receives (environment included) and answers like a warm one.
A connection that sends nothing (the runner's side saw who listens and left) leaves nothing."""


@dataclass
class Trap:
    """The other user and the place the test plays in: ``base`` stands for /tmp (sticky, writable by all)."""

    uid: int
    gid: int
    base: Path
    endpoint: warmstart.Endpoint
    listeners: list[subprocess.Popen]

    @property
    def run_dir(self) -> Path:
        return self.endpoint.socket_path.parent

    @property
    def loot(self) -> Path:
        return self.base / "loot" / "requests"

    def as_other(self, *command: str) -> None:
        subprocess.run(command, user=self.uid, group=self.gid, extra_groups=[], cwd="/", check=True,
                       env={"PATH": "/usr/bin:/bin"})

    def listen(self, socket_path: Path) -> None:
        """The other user's server, listening on ``socket_path``."""
        listener = subprocess.Popen([OTHER_PYTHON, "-c", LISTENER, str(socket_path), str(self.loot)], user=self.uid,
                                    group=self.gid, extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin"},
                                    stdout=subprocess.PIPE, text=True)
        self.listeners.append(listener)
        assert listener.stdout.readline() == "listening\n"


@pytest.fixture(scope="module")
def other_user() -> Iterator[pwd.struct_passwd]:
    """A second local user, created for these tests (and removed after them) unless it exists."""
    if os.getuid() != 0:
        pytest.skip("needs root: creates a second local user (useradd) and runs processes as that user")
    if OTHER_PYTHON is None:
        pytest.skip("no system python3 in /usr/bin or /bin for the second user to run")
    created = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
                             capture_output=True, text=True, check=False).returncode == 0
    yield pwd.getpwnam(OTHER_USER)
    if created:
        subprocess.run(["userdel", OTHER_USER], capture_output=True, check=False)


@pytest.fixture
def trap(other_user: pwd.struct_passwd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Trap]:
    base = Path(tempfile.mkdtemp(prefix="warm-trap-"))
    base.chmod(0o1777)
    (base / "loot").mkdir()
    os.chown(base / "loot", other_user.pw_uid, other_user.pw_gid)
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    trap = Trap(other_user.pw_uid, other_user.pw_gid, base, warmstart.Endpoint.for_home(tmp_path / "home"), [])
    assert trap.run_dir == base / f"workbench-{os.getuid()}"
    yield trap
    for listener in trap.listeners:
        listener.kill()
        listener.wait()
    shutil.rmtree(base)


def their_world_writable_directory(trap: Trap) -> str:
    trap.as_other("mkdir", "-m", "0777", str(trap.run_dir))
    trap.listen(trap.endpoint.socket_path)
    return f"the warm socket directory {trap.run_dir} belongs to another user (uid {trap.uid}); not using it"


def our_world_writable_directory(trap: Trap) -> str:
    trap.run_dir.mkdir()
    trap.run_dir.chmod(0o777)
    trap.listen(trap.endpoint.socket_path)
    return f"the warm socket directory {trap.run_dir} is writable by others (mode 0777); not using it"


def a_link_to_their_directory(trap: Trap) -> str:
    theirs = trap.base / "loot" / "elsewhere"
    trap.as_other("mkdir", "-m", "0700", str(theirs))
    trap.listen(theirs / trap.endpoint.socket_path.name)
    trap.as_other("ln", "-s", str(theirs), str(trap.run_dir))
    return f"the warm socket directory {trap.run_dir} is a symbolic link; not using it"


def _their_socket_moved_into_ours(trap: Trap) -> None:
    """Only root can do this, but it leaves what a race or a careless admin could: their socket in our directory."""
    warmstart.private_directory(trap.run_dir, create=True)
    theirs = trap.base / "loot" / "warm.sock"
    trap.listen(theirs)
    theirs.rename(trap.endpoint.socket_path)


def their_socket_in_our_directory(trap: Trap) -> str:
    _their_socket_moved_into_ours(trap)
    return f"the warm socket {trap.endpoint.socket_path} belongs to another user (uid {trap.uid}); not using it"


def our_socket_with_their_process_behind_it(trap: Trap) -> str:
    _their_socket_moved_into_ours(trap)
    os.chown(trap.endpoint.socket_path, os.getuid(), os.getgid())
    return (f"the process listening on the warm socket {trap.endpoint.socket_path} runs as another user "
            f"(uid {trap.uid}); not using it")


def a_link_to_their_socket(trap: Trap) -> str:
    warmstart.private_directory(trap.run_dir, create=True)
    theirs = trap.base / "loot" / "warm.sock"
    trap.listen(theirs)
    trap.endpoint.socket_path.symlink_to(theirs)
    return f"the warm socket {trap.endpoint.socket_path} is a symbolic link; not using it"


DIRECTORY_TRAPS = [their_world_writable_directory, our_world_writable_directory, a_link_to_their_directory]
SOCKET_TRAPS = [their_socket_in_our_directory, our_socket_with_their_process_behind_it, a_link_to_their_socket]


@pytest.mark.parametrize("set_trap", DIRECTORY_TRAPS + SOCKET_TRAPS)
def test_the_runner_sends_nothing_to_a_socket_that_is_not_ours_alone(trap: Trap, set_trap: Callable[[Trap], str],
                                                                     tmp_path: Path):
    reason = set_trap(trap)
    env = {**server_environment(), "AWS_SECRET_ACCESS_KEY": "not-for-other-users"}
    with pytest.raises(warmstart.UnsafeSocketPath) as refused:
        warmstart.fork_child(trap.endpoint, child_command(), tmp_path, env, print)
    assert str(refused.value) == reason
    with pytest.raises(warmstart.UnsafeSocketPath, match="not using it"):
        warmstart.status(trap.endpoint)
    assert not trap.loot.exists(), f"the other user received: {trap.loot.read_text()[:200]}"


@pytest.mark.parametrize("set_trap", DIRECTORY_TRAPS)
def test_the_warm_process_is_not_started_in_a_directory_that_is_not_ours_alone(trap: Trap,
                                                                               set_trap: Callable[[Trap], str]):
    reason = set_trap(trap)
    with pytest.raises(warmstart.UnsafeSocketPath, match="not using it"):
        warmstart.start(trap.endpoint, server_environment(), idle_s=1, preload=PRELOAD)
    served = subprocess.run([sys.executable, "-m", "workbench.runner.warm.server", "--socket",
                             str(trap.endpoint.socket_path), "--lock", str(trap.endpoint.lock_path), "--idle", "1",
                             "--preload", ",".join(PRELOAD)], env=server_environment(), capture_output=True,
                            text=True, timeout=60, check=False)
    assert (served.returncode, served.stdout.strip()) == (1, f"warm: cannot serve: {reason}")
    assert os.lstat(trap.endpoint.socket_path).st_uid == trap.uid, "the server replaced the other user's socket"
