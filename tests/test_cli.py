"""The ``workbench`` command's contract: validation output and exit codes, listing and inspecting jobs."""

from __future__ import annotations

import json
from pathlib import Path

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
