"""Real Isaac Lab 3.0 training through the workbench CLI and local backend (tiny: 16 envs, 3 iterations)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import TRAIN_ITERATIONS, job_id_from, run_cli
from workbench.backends.local import LocalBackend, LocalJob
from workbench.runner.process import group_alive
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("library", ["rsl_rl", "rl_games", "skrl"])
def test_training_through_the_cli_writes_the_output_layout(trained_job, library: str) -> None:
    job: LocalJob = trained_job(library)
    status = job.status()
    assert status.state is JobState.SUCCEEDED, status.reason
    out = job.outputs()
    config = json.loads((out / "training-config.json").read_text())
    assert config["trainingConfig"]["rlLibrary"] == library and config["trainingConfig"]["numEnvs"] == 16
    checkpoints = sorted((out / "checkpoints").glob("model_*.pt"))
    assert checkpoints, "no normalized checkpoints"
    numbers = sorted(int(p.stem.split("_")[1]) for p in checkpoints)
    assert numbers[-1] == TRAIN_ITERATIONS[library] - (1 if library == "rsl_rl" else 0)
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {"step", "iteration", "wall_time", "reward", "episode_length"} <= set(rows[0])
    assert any(row["reward"] for row in rows), "metrics.csv has no reward value"
    log = (out / "logs" / "job.log").read_text()
    assert "[workbench] job succeeded" in log and "--device cpu" in log and "--headless" not in log
    assert status.progress.iteration == status.progress.max_iterations


def test_training_runs_offline_from_the_local_asset_root(trained_job, workbench_home: Path) -> None:
    job = trained_job("rsl_rl")
    assert (workbench_home / "assets" / "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd").exists()
    assert "omniverse-content-production" not in (job.outputs() / "logs" / "job.log").read_text()


def test_ant_trains_offline_from_newtons_ant(workbench_home: Path) -> None:
    """Isaac-Ant-Direct from the offline root's ant (newton's ``ant.usda``): 16 envs, 2 iterations on the CPU."""
    result = run_cli("train", "--task", "Isaac-Ant-Direct", "--rl-library", "rsl_rl", "--num-envs", "16",
                     "--max-iterations", "2", "--seed", "7", "--device", "cpu", "--wait", timeout=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    job = LocalBackend().job(job_id_from(result.stdout))
    status = job.status()
    assert status.state is JobState.SUCCEEDED, status.reason
    assert sorted(p.name for p in (job.outputs() / "checkpoints").glob("model_*.pt"))[-1] == "model_1.pt"
    assert (workbench_home / "assets" / "Isaac/Robots/IsaacSim/Ant/ant_instanceable.usd").exists()
    log = (job.outputs() / "logs" / "job.log").read_text()
    assert "Isaac-Ant-Direct" in log and "omniverse-content-production" not in log


def test_warp_kernel_cache_is_kept_under_the_workbench_home(trained_job, workbench_home: Path) -> None:
    trained_job("rsl_rl")
    assert any((workbench_home / "cache" / "warp").rglob("*")), "no warp kernels cached"


def _submit(**training) -> LocalJob:
    spec = parse_spec({"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "device": "cpu", **training}})
    return LocalBackend(heartbeat_timeout=training.pop("timeout", None), stop_grace=3).submit(spec)


def _wait_for_state(job: LocalJob, state: JobState, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while job.status().state is not state:
        assert not job.status().state.is_terminal, job.status()
        assert time.monotonic() < deadline, f"job never reached {state}: {job.status()}"
        time.sleep(0.5)


def _wait_for_progress(job: LocalJob, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while job.status().progress.iteration is None:
        assert not job.status().state.is_terminal, job.status()
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.5)


def test_killed_training_process_fails_the_job_with_a_reason() -> None:
    job = _submit(maxIterations=100000)
    _wait_for_progress(job)
    pgid = job.status().details["child_pgid"]
    os.killpg(pgid, signal.SIGKILL)
    killed_at = time.monotonic()
    status = job.wait(timeout=30, poll_interval=0.2)
    assert status.state is JobState.FAILED
    assert time.monotonic() - killed_at < 15
    assert "killed by SIGKILL" in status.reason
    assert not group_alive(pgid)


def test_stalled_training_is_failed_by_the_heartbeat_timeout_and_killed() -> None:
    backend = LocalBackend(heartbeat_timeout=30, heartbeat_interval=1, stop_grace=2)
    job = backend.submit(parse_spec({"trainingConfig": {
        "task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 100000, "device": "cpu"}}))
    _wait_for_progress(job)
    pgid = job.status().details["child_pgid"]
    os.killpg(pgid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    status = job.wait(timeout=90, poll_interval=0.5)
    assert time.monotonic() - stopped_at >= 25, "failed before the heartbeat timeout"
    assert status.state is JobState.FAILED
    assert "heartbeat timeout" in status.reason
    deadline = time.monotonic() + 10
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_alive(pgid)


def test_cancel_stops_every_process_of_the_job() -> None:
    job = _submit(maxIterations=100000)
    _wait_for_progress(job)
    status = job.status()
    pgid, runner = status.details["child_pgid"], status.details["runner_pid"]
    result = run_cli("cancel", job.job_id)
    assert result.returncode == 0 and "CANCELLED" in result.stdout
    assert job.status().state is JobState.CANCELLED
    assert not group_alive(pgid) and not group_alive(runner)
    assert "cancelled" in job.status().reason


def test_run_with_wait_reports_failure_with_the_reason(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 2,
                                                   "device": "cpu", "overrides": {"agent.device": "no_such_device"}}}))
    result = run_cli("run", str(spec), "--wait")
    assert result.returncode == 1
    assert "FAILED" in result.stderr and "the train process failed" in result.stderr
    job = LocalBackend().job(job_id_from(result.stdout))
    assert job.status().state is JobState.FAILED


def _train_tiny() -> LocalJob:
    result = run_cli("train", "--num-envs", "16", "--max-iterations", "2", "--device", "cpu", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    return LocalBackend().job(job_id_from(result.stdout))


def test_a_job_forks_its_child_from_the_warm_process() -> None:
    ready = run_cli("warm", "start")
    assert ready.returncode == 0 and "warm process ready" in ready.stdout, ready.stderr
    job = _train_tiny()
    status = job.status()
    assert status.state is JobState.SUCCEEDED
    log = (job.outputs() / "logs" / "job.log").read_text()
    assert f"forked from the warm process as pid {status.details['child_pgid']}" in log
    assert sorted((job.outputs() / "checkpoints").glob("model_*.pt"))


def test_with_warm_start_off_the_child_is_a_fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_WARM_START", "off")
    job = _train_tiny()
    log = (job.outputs() / "logs" / "job.log").read_text()
    assert job.status().state is JobState.SUCCEEDED
    assert "warm" not in log


def test_the_first_job_leaves_a_warm_process_for_the_next(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          workbench_home: Path) -> None:
    from workbench.runner.warm import client as warmstart

    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "warp").symlink_to((workbench_home / "cache" / "warp").resolve(), target_is_directory=True)
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.setenv("WORKBENCH_WARM_IDLE_S", "120")
    job = _train_tiny()
    log = (job.outputs() / "logs" / "job.log").read_text()
    assert "warm start not used (no warm process answers" in log
    started = re.search(r"started a warm process \(pid (\d+)\)", log)
    assert started, log
    endpoint = warmstart.Endpoint.for_home(home)
    pid = int(started.group(1))
    try:
        deadline = time.monotonic() + 60
        while not warmstart.is_starting_or_running(endpoint) and group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        answer = warmstart.wait_ready(endpoint, 180)
        assert answer is not None and answer["pid"] == pid, endpoint.log_path.read_text()
        assert answer["idle_s"] == 120
    finally:
        warmstart.stop(endpoint)
