"""The ``workbench`` command's contract: validation output and exit codes, listing and inspecting jobs; invalid
input of every kind (a spec, a flag, a setting, the home, a status file) is exit 2 with one message."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.backends.run_dirs import ended_pid, finished_status, tmpfs, write_run
from tests.helpers import run_cli
from workbench.spec import paths

TRAIN_DOC = {"trainingConfig": {"mode": "train", "task": "Isaac-Cartpole-Direct-v0", "numEnvs": 4096,
                                "maxIterations": 1500, "rlLibrary": "rsl_rl", "seed": 42}, "computeConfig": {"numNodes": 1}}


def test_validate_prints_the_normalized_spec(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(TRAIN_DOC))
    result = run_cli("validate", str(spec))
    assert result.returncode == 0, result.stderr
    normalized = json.loads(result.stdout)
    assert normalized["trainingConfig"]["task"] == "Isaac-Cartpole-Direct"
    assert normalized["trainingConfig"]["overrides"] == {} and normalized["computeConfig"]["numNodes"] == 1
    assert "2.x id" in result.stderr


def test_validate_exits_2_with_every_error(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"trainingConfig": {"numEnvs": "100", "rlLibrary": "ppo"}}))
    result = run_cli("validate", str(spec))
    assert result.returncode == 2
    assert "trainingConfig.numEnvs" in result.stderr and "trainingConfig.rlLibrary" in result.stderr


def test_invalid_train_flags_exit_2_and_start_nothing() -> None:
    before = set(paths.runs_dir().glob("*")) if paths.runs_dir().exists() else set()
    result = run_cli("train", "--num-envs", "0", "--rl-library", "nope", "--wait")
    assert result.returncode == 2
    assert "trainingConfig.numEnvs" in result.stderr and "trainingConfig.rlLibrary" in result.stderr
    after = set(paths.runs_dir().glob("*")) if paths.runs_dir().exists() else set()
    assert after == before


def test_evaluation_without_a_policy_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"trainingConfig": {"mode": "evaluate", "task": "Isaac-Cartpole-Direct"}}))
    result = run_cli("run", str(spec))
    assert result.returncode == 2 and "trainingConfig.policy" in result.stderr


def test_unknown_job_is_an_error() -> None:
    result = run_cli("status", "00000000-0000-4000-8000-000000000000")
    assert result.returncode == 1 and "no local job" in result.stderr


def test_list_status_logs_outputs_of_a_finished_job(trained_job) -> None:
    job = trained_job("rsl_rl")
    listing = run_cli("list")
    assert job.job_id in listing.stdout and "SUCCEEDED" in listing.stdout
    status = json.loads(run_cli("status", job.job_id).stdout)
    assert status["state"] == "SUCCEEDED" and status["progress"]["iteration"] == 3
    logs = run_cli("logs", job.job_id, "-f")
    assert "Learning iteration" in logs.stdout and logs.stdout.rstrip().endswith("job succeeded: train finished")
    outputs = run_cli("outputs", job.job_id)
    assert "metrics.csv" in outputs.stdout and "checkpoints/model_2.pt" in outputs.stdout


def _runs_before() -> set[Path]:
    return set(paths.runs_dir().glob("*")) if paths.runs_dir().exists() else set()


def test_local_multi_node_is_refused_at_submit() -> None:
    before = _runs_before()
    result = run_cli("train", "--num-nodes", "2", "--device", "cpu", "--num-envs", "16")
    assert result.returncode == 2
    assert "computeConfig.numNodes: must be 1 on the local backend, got 2" in result.stderr
    assert "multi-node training runs on the aws backend" in result.stderr
    assert _runs_before() == before


def test_tasks_lists_each_tasks_assets_and_rl_libraries() -> None:
    result = run_cli("tasks")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in result.stdout.splitlines()[1:] if line.strip()
            and not line.startswith("ASSETS:")}
    assert rows["Isaac-Ant-Direct"] == ["offline", "rsl_rl, rl_games, skrl"]
    assert rows["Isaac-Cartpole-Direct"] == ["offline", "rsl_rl, rl_games, skrl"]
    assert rows["Isaac-Humanoid"] == ["nucleus", "rsl_rl, rl_games, skrl"]
    assert rows["IsaacContrib-Humanoid-AMP-Walk-Direct"] == ["nucleus", "skrl"]
    assert "WORKBENCH_ASSETS=nucleus" in result.stdout and "WORKBENCH_ASSETS is 'offline' here" in result.stdout
    offline = run_cli("tasks", "--offline")
    assert offline.returncode == 0, offline.stderr
    assert [line.split()[0] for line in offline.stdout.splitlines()[1:5]] == [
        "Isaac-Ant", "Isaac-Ant-Direct", "Isaac-Cartpole", "Isaac-Cartpole-Direct"]
    assert "Isaac-Humanoid" not in offline.stdout.split("ASSETS:")[0]


@pytest.mark.parametrize("task", ["Isaac-Humanoid-Direct", "Isaac-Reach-Franka-v0"])
def test_a_task_without_offline_assets_exits_2_at_submit_and_starts_nothing(task: str) -> None:
    before = _runs_before()
    result = run_cli("train", "--task", task, "--device", "cpu", "--num-envs", "16", "--wait")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"trainingConfig.task: task '{task.removesuffix('-v0')}' needs" in result.stderr
    assert "WORKBENCH_ASSETS=nucleus" in result.stderr
    assert _runs_before() == before


def test_a_spec_file_that_is_not_text_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_bytes(b"\xff\xfe{\x00\x81")
    for command in ("validate", "run"):
        result = run_cli(command, str(spec))
        assert result.returncode == 2 and "not valid JSON" in result.stderr and "Traceback" not in result.stderr


def test_a_home_that_is_a_file_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    for command in (["list"], ["status", str(uuid.uuid4())], ["train", "--device", "cpu"]):
        result = run_cli(*command)
        assert result.returncode == 2, result
        assert result.stderr.strip() == f"error: WORKBENCH_HOME must be a directory, but {home} is not one"


def test_a_read_only_home_refuses_new_jobs_and_still_shows_the_old(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with tmpfs(tmp_path / "home", size_kib=1024) as home:
        monkeypatch.setenv("WORKBENCH_HOME", str(home))
        finished, orphaned = str(uuid.uuid4()), str(uuid.uuid4())
        write_run(home / "runs", finished, finished_status(finished))
        runner_died = finished_status(orphaned, state="RUNNING", details={"runner_pid": ended_pid()})
        write_run(home / "runs", orphaned, runner_died)
        subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
        submitted = run_cli("train", "--device", "cpu")
        assert submitted.returncode == 2
        assert submitted.stderr.strip() == (f"error: WORKBENCH_HOME {home} cannot be written (Read-only file system); "
                                            "set WORKBENCH_HOME to a writable directory")
        listing = run_cli("list")
        assert listing.returncode == 0 and f"{finished}  SUCCEEDED" in listing.stdout
        status = json.loads(run_cli("status", orphaned).stdout)
        assert status["state"] == "FAILED" and "not recorded" in status["reason"]


def test_malformed_status_files_exit_2_and_the_listing_shows_every_run(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    good, truncated, listed, other = (str(uuid.uuid4()) for _ in range(4))
    write_run(tmp_path / "runs", good, finished_status(good))
    write_run(tmp_path / "runs", truncated, json.dumps(finished_status(truncated)).encode()[:40])
    write_run(tmp_path / "runs", listed, b'["SUCCEEDED"]')
    write_run(tmp_path / "runs", other, finished_status(good))
    for job_id, words in ((truncated, "not JSON"), (listed, "must be a JSON object, not list"),
                          (other, f"it names job {good!r}")):
        result = run_cli("status", job_id)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"error: the status of job {job_id} at ") and words in result.stderr
    lines = run_cli("list").stdout.splitlines()
    assert len(lines) == 4 and any(line.startswith(f"{good}  SUCCEEDED") for line in lines)
    assert sum("FAILED     no progress yet  unreadable: the status of job" in line for line in lines) == 3


@pytest.mark.parametrize("command", ["status", "logs", "outputs", "cancel"])
def test_a_job_id_that_is_a_path_exits_2_and_touches_nothing(tmp_path: Path, command: str) -> None:
    """A crafted run directory outside the home (its status naming a process group) is never read or signalled."""
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    status = crafted / "status.json"
    status.write_text(json.dumps({"job_id": "x", "state": "RUNNING", "details": {"child_pgid": 1}}))
    before = status.stat().st_mtime_ns
    result = run_cli(command, str(crafted))
    assert result.returncode == 2 and "jobId: must be a UUID" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and status.stat().st_mtime_ns == before
