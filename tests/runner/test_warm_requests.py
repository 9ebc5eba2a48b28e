"""What the warm process does with requests it must not carry out: malformed ones, commands that are not the
workbench's jobs, and clients that connect and say nothing. One real server serves the module; after each fault it
must still answer and fork."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.runner.test_warmstart import CHILD_MODULE, child_command, run_to_end, server_environment, serving
from workbench.runner import commands
from workbench.runner.warm import client as warmstart
from workbench.runner.warm import server as warm_server
from workbench.spec.document import parse_spec

VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=4), max_leaves=12)
REQUESTS = st.fixed_dictionaries({"op": st.sampled_from(["run", "status", "dance"]) | VALUES}, optional={
    "command": VALUES | st.lists(st.sampled_from([CHILD_MODULE, "isaaclab", "train", "this"]) | st.text(max_size=12),
                                 max_size=3),
    "cwd": VALUES,
    "env": VALUES | st.dictionaries(st.text(max_size=8), VALUES | st.text(max_size=8)),
})
"""Request-shaped objects with fields of every type; never ``stop``, which would end the module's server."""


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[warmstart.Endpoint]:
    with serving(tmp_path_factory.mktemp("warm-requests") / "home", server_environment()) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def pipes() -> Iterator[list[int]]:
    """Two pipes' write ends to send along with requests, as a run request does."""
    ends = [os.pipe() for _ in range(2)]
    yield [write for _, write in ends]
    for read, write in ends:
        os.close(read)
        os.close(write)


def send_raw(endpoint: warmstart.Endpoint, data: bytes, fds: list[int]) -> dict | None:
    """Send ``data`` as one request with ``fds``; the answer, or None when the server closed without one."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
        conn.settimeout(10)
        conn.connect(str(endpoint.socket_path))
        socket.send_fds(conn, [data], fds)
        return warmstart.receive_message(conn)


def assert_forks(endpoint: warmstart.Endpoint, cwd: Path) -> None:
    child = warmstart.fork_child(endpoint, child_command(exit_code=2), cwd, server_environment(), print)
    assert run_to_end(child) == 2


def run_request(**fields: object) -> bytes:
    """A run request of the stand-in job, with ``fields`` replaced."""
    return json.dumps({"op": "run", "command": [CHILD_MODULE], "cwd": "/", "env": {}, **fields}).encode()


@pytest.mark.parametrize(("data", "reason"), [
    (b"[]", "the request is a JSON list, not an object"),
    (b'"run"', "the request is a JSON str, not an object"),
    (b"null", "the request is a JSON NoneType, not an object"),
    (b"\xff\xfe{", "the request is not JSON"),
    (b"[" * 50_000, "the request is not JSON (RecursionError)"),
    (run_request(command=[7]), "the command must be a non-empty list of strings"),
    (run_request(command=[]), "the command must be a non-empty list of strings"),
    (run_request(command=CHILD_MODULE), "the command must be a non-empty list of strings"),
    (run_request(cwd=None), "the working directory must be a string"),
    (run_request(env={"A": 1}), "the environment must be an object of strings"),
    (run_request(env=["A=1"]), "the environment must be an object of strings"),
])
def test_a_malformed_request_is_refused_with_the_reason_and_the_server_serves_on(endpoint, pipes, tmp_path, data,
                                                                                reason):
    answer = send_raw(endpoint, data, pipes)
    assert answer is not None and reason in answer["refused"]
    assert_forks(endpoint, tmp_path)


@pytest.mark.parametrize("fd_count", [0, 1])
def test_a_run_request_without_its_output_and_status_pipes_is_refused(endpoint, pipes, tmp_path, fd_count):
    answer = send_raw(endpoint, run_request(env=server_environment(), cwd=str(tmp_path)), pipes[:fd_count])
    assert answer == {"refused": "a run request carries 2 file descriptors (the job's output and status pipes), "
                                 f"not {fd_count}"}
    assert_forks(endpoint, tmp_path)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=64) | REQUESTS.map(lambda message: json.dumps(message).encode()),
       fd_count=st.integers(0, 2))
@example(data=b"", fd_count=0)
@example(data=b"{}", fd_count=2)
def test_no_request_stops_the_server(endpoint, pipes, data, fd_count):
    answer = send_raw(endpoint, data, pipes[:fd_count])
    assert answer is not None, "the server closed the connection without an answer"
    assert "pid" in answer or answer.get("refused")


@pytest.mark.parametrize("command", [["this"], ["http.server", "8000"], ["isaaclab"], ["isaaclab", "list_envs"],
                                     ["workbench.runner.evaluation"], ["workbench.runner.warm.server"]])
def test_a_module_outside_the_allow_list_is_refused(endpoint, tmp_path, command):
    allowed = (r"\(isaaclab train, isaaclab play, workbench\.runner\.evaluation\.loop, "
               r"workbench\.runner\.evaluation\.export, tests\.runner\.warm_child\)")
    with pytest.raises(warmstart.WarmRefused, match=f"runs only the workbench's jobs {allowed}"):
        warmstart.fork_child(endpoint, [sys.executable, "-m", *command], tmp_path, server_environment(), print)
    assert_forks(endpoint, tmp_path)


def test_the_allow_list_admits_the_commands_the_runner_forks():
    for command in (commands.isaaclab_command("train", ["--task", "Isaac-Cartpole-Direct"]),
                    commands.isaaclab_command("play", ["--task", "Isaac-Cartpole-Direct"]),
                    commands.evaluate_command(["--task", "Isaac-Cartpole-Direct"]),
                    commands.export_command(parse_spec({"trainingConfig": {"task": "Isaac-Cartpole-Direct"}}),
                                            Path("/runs/job/checkpoints/model_2.pt"), Path("/runs/job"))):
        job = warm_server.job_request({"command": command[2:], "cwd": "/", "env": {}}, warm_server.JOB_COMMANDS)
        assert job.command == command[2:]


def test_a_silent_client_holds_up_nobody_and_is_dropped(endpoint, tmp_path):
    silent = [socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(3)]
    for conn in silent:
        conn.connect(str(endpoint.socket_path))
    started = time.monotonic()
    assert warmstart.status(endpoint) is not None
    child = warmstart.fork_child(endpoint, child_command(exit_code=2), tmp_path, server_environment(), print)
    answered_s = time.monotonic() - started
    assert run_to_end(child) == 2
    assert answered_s < 3.0, f"three silent clients held up the others for {answered_s:.1f} s"
    for conn in silent:
        conn.settimeout(warm_server.REQUEST_TIMEOUT_S + 5)
        assert conn.recv(16) == b"", "the server kept a silent connection open"
        conn.close()
