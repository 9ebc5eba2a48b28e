"""The warm process: a real server (preloading a light module) forks real children over its Unix socket."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from workbench.runner.process import group_alive
from workbench.runner.warm import client as warmstart

REPO = Path(__file__).resolve().parents[2]
PRELOAD = ["email.mime.text"]
CHILD_MODULE = "tests.runner.warm_child"
"""The stand-in job: not one of the workbench's jobs, so the test servers name it in ``also_run``."""


def child_command(exit_code: int = 0, sleep_s: float = 0.0, mode: str = "alone") -> list[str]:
    return [sys.executable, "-m", CHILD_MODULE, str(exit_code), str(sleep_s), mode]


def server_environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@contextlib.contextmanager
def serving(home: Path, env: Mapping[str, str]) -> Iterator[warmstart.Endpoint]:
    """A warm server for ``home`` that preloads ``PRELOAD`` and may run the stand-in job; stopped at the end."""
    endpoint = warmstart.Endpoint.for_home(home)
    process = warmstart.start(endpoint, env, idle_s=60, preload=PRELOAD, also_run=[CHILD_MODULE])
    try:
        assert warmstart.wait_ready(endpoint, 30, process) is not None, endpoint.log_path.read_text()
        yield endpoint
    finally:
        warmstart.stop(endpoint)
        process.wait(timeout=10)


@pytest.fixture
def server_env() -> dict[str, str]:
    return server_environment()


@pytest.fixture
def endpoint(tmp_path: Path, server_env: dict[str, str]) -> Iterator[warmstart.Endpoint]:
    with serving(tmp_path / "home", server_env) as endpoint:
        yield endpoint


def run_to_end(child, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (code := child.poll()) is None:
        assert time.monotonic() < deadline, "the forked child did not end"
        time.sleep(0.05)
    child.wait_output()
    return code


def wait_gone(pgid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_forked_child_runs_the_module_with_the_jobs_environment(endpoint, server_env, tmp_path):
    lines: list[str] = []
    env = {**server_env, "WARM_TEST_MARKER": "job-7", "PYTHONPATH": f"/opt/job-private{os.pathsep}{REPO}"}
    child = warmstart.fork_child(endpoint, child_command(exit_code=3), tmp_path, env, lines.append)
    assert run_to_end(child) == 3
    seen = json.loads(lines[-1])
    assert seen["argv"] == ["3", "0.0", "alone"]
    assert seen["cwd"] == str(tmp_path)
    assert seen["pid"] == seen["sid"] == child.pid, "the child leads its own session (its pid is its group)"
    assert seen["marker"] == "job-7"
    assert seen["path"][:2] == [str(tmp_path), "/opt/job-private"]
    assert seen["preloaded"], "the child was forked from the server, which had imported the preload"


def test_the_child_ends_like_an_interpreter_with_worker_threads_and_atexit_handlers(endpoint, server_env, tmp_path):
    lines: list[str] = []
    unclosed = tmp_path / "unclosed.txt"
    child = warmstart.fork_child(endpoint, child_command(exit_code=4, mode="threads"), tmp_path,
                                 {**server_env, "WARM_TEST_FILE": str(unclosed)}, lines.append)
    assert run_to_end(child, timeout=20) == 4, "a thread pool's idle workers kept the child from exiting"
    assert lines[-1].startswith("atexit handler ran")
    assert unclosed.read_text() == "flushed when the interpreter ended"


def test_a_different_import_time_environment_is_refused(endpoint, server_env, tmp_path):
    refused = {"ISAACSIM_ASSET_ROOT": "/elsewhere", "PYTHONPATH": "/not/the/servers/path"}
    for key, value in refused.items():
        with pytest.raises(warmstart.WarmRefused, match=key):
            warmstart.fork_child(endpoint, child_command(), tmp_path, {**server_env, key: value}, print)
    with pytest.raises(warmstart.WarmRefused, match="not a Python module"):
        warmstart.fork_child(endpoint, ["/bin/true"], tmp_path, server_env, print)


def test_stop_ends_the_whole_group_and_the_server_serves_on(endpoint, server_env, tmp_path):
    child = warmstart.fork_child(endpoint, child_command(sleep_s=120, mode="grandchild"), tmp_path, server_env, print)
    time.sleep(1.0)
    assert child.stop(grace=5) < 0
    assert wait_gone(child.pid), "the grandchild outlived the stop"
    again = warmstart.fork_child(endpoint, child_command(), tmp_path, server_env, print)
    assert run_to_end(again) == 0


def test_the_child_is_killed_when_its_runner_goes_away(endpoint, server_env, tmp_path):
    child = warmstart.fork_child(endpoint, child_command(sleep_s=120, mode="grandchild"), tmp_path, server_env, print)
    time.sleep(1.0)
    assert group_alive(child.pid)
    child._connection.close()
    assert wait_gone(child.pid), "nobody watched the child, yet it kept running"
    assert warmstart.status(endpoint)["jobs"] == []


def test_one_server_per_home_and_it_exits_when_idle(tmp_path, server_env):
    endpoint = warmstart.Endpoint.for_home(tmp_path / "home")
    first = warmstart.start(endpoint, server_env, idle_s=2, preload=PRELOAD)
    assert warmstart.wait_ready(endpoint, 30, first)["pid"] == first.pid
    assert warmstart.start(endpoint, server_env, idle_s=2, preload=PRELOAD) is None
    assert first.wait(timeout=15) == 0
    assert warmstart.status(endpoint) is None
    assert not endpoint.socket_path.exists() and not endpoint.lock_path.exists()
    assert not warmstart.is_starting_or_running(endpoint)
    assert "idle for 2 s, exiting" in endpoint.log_path.read_text()


@pytest.mark.parametrize(("preload", "reason"), [
    (["warp", "skrl"], "importing the preload initialised Warp"),
    (["rl_games.torch_runner"], "importing the preload queried CUDA, so torch refuses CUDA in forked children"),
])
def test_the_server_refuses_to_serve_when_a_preload_makes_forking_unsafe(tmp_path, server_env, preload, reason):
    endpoint = warmstart.Endpoint.for_home(tmp_path / "home")
    process = warmstart.start(endpoint, server_env, idle_s=60, preload=preload)
    assert warmstart.wait_ready(endpoint, 120, process) is None
    assert process.wait(timeout=10) == 1
    assert reason in endpoint.log_path.read_text()


def test_warm_start_setting_is_checked(monkeypatch):
    from workbench.backends.local import LocalBackend
    from workbench.errors import SettingError

    monkeypatch.setenv("WORKBENCH_WARM_START", "maybe")
    with pytest.raises(SettingError, match="WORKBENCH_WARM_START must be on or off, not 'maybe'"):
        LocalBackend()
    monkeypatch.setenv("WORKBENCH_WARM_START", "off")
    monkeypatch.setenv("WORKBENCH_WARM_IDLE_S", "-5")
    with pytest.raises(SettingError, match="WORKBENCH_WARM_IDLE_S must be a positive number of seconds"):
        LocalBackend()


def test_the_cli_reports_no_server(tmp_path):
    result = subprocess.run([sys.executable, "-m", "workbench.cli", "warm", "status"], capture_output=True, text=True, check=False,
                            env={**os.environ, "WORKBENCH_HOME": str(tmp_path / "empty")}, timeout=60)
    assert result.returncode == 0
    assert "no warm process serves" in result.stdout
