"""The warm process is killed (SIGKILL) while a job it forked runs on: the job's own exit code still reaches the
runner, not "killed by SIGKILL" for a job that finished and wrote its checkpoints."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.runner.test_warmstart import child_command, run_to_end, server_environment, serving
from workbench.runner.warm import client as warmstart


@pytest.mark.parametrize(("exit_code", "mode"), [(0, "threads"), (3, "alone")])
def test_a_job_outlives_its_warm_process_and_its_exit_code_is_its_own(tmp_path: Path, exit_code: int, mode: str):
    lines: list[str] = []
    checkpoint = tmp_path / "model_5.pt"
    env = {**server_environment(), "WARM_TEST_FILE": str(checkpoint)}
    with serving(tmp_path / "home", env) as endpoint:
        child = warmstart.fork_child(endpoint, child_command(exit_code, sleep_s=2.0, mode=mode), tmp_path, env,
                                     lines.append)
        os.kill(warmstart.status(endpoint)["pid"], signal.SIGKILL)
        code = run_to_end(child)
        assert warmstart.status(endpoint) is None, "the warm process was still serving"
    assert code == exit_code
    assert json.loads(next(line for line in lines if line.startswith("{")))["pid"] == child.pid
    if mode == "threads":
        assert lines[-1].startswith("atexit handler ran"), "the job's output stopped with the warm process"
        assert checkpoint.read_text() == "flushed when the interpreter ended"
