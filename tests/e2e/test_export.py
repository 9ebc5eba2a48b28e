"""Every successful training exports its policy (``exported/``): the ONNX file run by onnxruntime and the
TorchScript file run by torch reproduce the library's own actions, an evaluation of the ONNX file plays the same
episodes as one of the checkpoint, and an export that fails leaves the training succeeded and no partial files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch
from evaluation_fixtures import EVALUATION, LIBRARIES, TASK, backend, evaluated_jobs, log_tail, wait_all  # noqa: F401
from trained_jobs import TASK as CUSTOM_TASK
from trained_jobs import first_training

from workbench.backends.local import LocalBackend
from workbench.outputs import checkpoints, exported
from workbench.outputs.layout import CHECKPOINTS, EXPORTED
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

pytestmark = pytest.mark.slow


def _described(job_dir: Path) -> dict:
    folder = job_dir / EXPORTED
    assert {p.name for p in folder.iterdir()} == {exported.ONNX, exported.TORCHSCRIPT, exported.DESCRIPTION}
    return json.loads((folder / exported.DESCRIPTION).read_text())


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_exported_files_reproduce_the_librarys_actions(library: str, trained_job) -> None:
    job_dir = trained_job(library).outputs()
    described = _described(job_dir)
    newest = checkpoints.newest_checkpoint(job_dir / CHECKPOINTS)
    assert (described["task"], described["rl_library"], described["checkpoint"]) == (TASK, library, newest.name)
    assert (described["observation_size"], described["action_size"]) == (4, 1)  # the cartpole's sizes
    observations = np.asarray(described["check"]["observations"], dtype=np.float32)
    expected = np.asarray(described["check"]["actions"], dtype=np.float32)
    assert observations.shape == (16, 4) and expected.shape == (16, 1)
    assert np.ptp(expected) > 0, "the recorded actions are all the same: they check nothing"

    session = onnxruntime.InferenceSession(str(job_dir / EXPORTED / exported.ONNX))
    (given,), (returned,) = session.get_inputs(), session.get_outputs()
    assert (given.name, returned.name) == (exported.INPUT_NAME, exported.OUTPUT_NAME)
    assert given.shape[1] == 4 and not isinstance(given.shape[0], int), "the batch size must stay free"
    onnx_actions = session.run(None, {given.name: observations})[0]
    script = torch.jit.load(str(job_dir / EXPORTED / exported.TORCHSCRIPT))
    script_actions = script(torch.from_numpy(observations)).detach().numpy()
    assert np.abs(onnx_actions - expected).max() <= exported.TOLERANCE
    assert np.abs(script_actions - expected).max() <= exported.TOLERANCE
    single = session.run(None, {given.name: observations[:1]})[0]  # one robot: a batch of one
    assert np.abs(single - expected[:1]).max() <= exported.TOLERANCE


def test_a_custom_environments_training_exports_its_policy() -> None:
    """The export runs with the job's custom package on its path (the task is registered by that package only)."""
    described = _described(first_training("rsl_rl").outputs())
    assert described["task"] == CUSTOM_TASK and described["max_abs_difference"]["onnx"] <= exported.TOLERANCE


def test_evaluating_the_exported_onnx_runs_the_file_itself(trained_job, evaluated_jobs) -> None:  # noqa: F811
    """``evaluate --policy .../exported/policy.onnx`` runs the file (onnxruntime on the raw environment) with the
    seed of the shared evaluations of the checkpoints. rsl_rl's deterministic actor draws no random numbers and its
    environments are reset as the ONNX run's are, so the first episode of each environment is the checkpoint's;
    rl_games and skrl draw random numbers while they act, so later resets differ and only the shape is compared."""
    local = LocalBackend(max_concurrent=3)
    jobs = {
        library: local.submit(parse_spec({"trainingConfig": {
            "mode": "evaluate", "task": TASK, "rlLibrary": library, "device": "cpu", "seed": 3, **EVALUATION,
            "recordVideo": False,
            "policy": str(trained_job(library).outputs() / EXPORTED / exported.ONNX),
        }}))
        for library in LIBRARIES
    }
    wait_all(jobs)
    columns = ["episode", "env_index", "length"]
    for library, job in jobs.items():
        summary = json.loads((job.outputs() / "evaluation-summary.json").read_text())
        described = _described(trained_job(library).outputs())
        assert summary["checkpoint"].endswith(f"{EXPORTED}/{exported.ONNX}")
        assert summary["checkpoint_iteration"] == described["checkpoint_iteration"]
        onnx_run = pd.read_csv(job.outputs() / "metrics.csv")
        checkpoint_run = pd.read_csv(evaluated_jobs[library].outputs() / "metrics.csv")
        pd.testing.assert_frame_equal(onnx_run[columns], checkpoint_run[columns])
    onnx_run = pd.read_csv(jobs["rsl_rl"].outputs() / "metrics.csv").drop_duplicates("env_index")
    checkpoint_run = pd.read_csv(evaluated_jobs["rsl_rl"].outputs() / "metrics.csv").drop_duplicates("env_index")
    np.testing.assert_allclose(onnx_run["return"], checkpoint_run["return"], rtol=0, atol=1e-4)


def test_a_killed_export_leaves_the_training_succeeded_without_partial_files() -> None:
    job = LocalBackend().submit(parse_spec({"trainingConfig": {
        "task": TASK, "rlLibrary": "rsl_rl", "numEnvs": 16, "maxIterations": 2, "device": "cpu", "seed": 5,
    }}))
    status_file = job.outputs() / "status.json"
    deadline = time.monotonic() + 600
    killed = None
    while killed is None and time.monotonic() < deadline and not job.status().state.is_terminal:
        try:
            status = json.loads(status_file.read_text())
        except (OSError, ValueError):
            status = {}
        if status.get("reason") == "exporting the policy":
            killed = status["details"]["child_pgid"]
            os.killpg(killed, signal.SIGKILL)
        time.sleep(0.05)
    assert killed is not None, f"the job never reported its export\n{log_tail(job)}"
    status = job.wait(timeout=300, poll_interval=0.5)
    assert status.state is JobState.SUCCEEDED, f"{status.reason}\n{log_tail(job)}"
    log = (job.outputs() / "logs" / "job.log").read_text()
    assert "policy export failed" in log and "SIGKILL" in log, log_tail(job)
    assert not (job.outputs() / EXPORTED).exists() and not (job.outputs() / exported.PARTIAL).exists()
    assert checkpoints.newest_checkpoint(job.outputs() / CHECKPOINTS) is not None


def test_the_export_of_a_wrong_checkpoint_fails_with_the_reason_and_writes_nothing(tmp_path, trained_job) -> None:
    checkpoint = checkpoints.newest_checkpoint(trained_job("skrl").outputs() / CHECKPOINTS)
    result = subprocess.run(
        [sys.executable, "-m", "workbench.runner.evaluation.export", "--task", TASK, "--rl-library", "rsl_rl",
         "--checkpoint", str(checkpoint), "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "WORKBENCH_ERROR" in result.stdout and "written by skrl" in result.stdout
    assert list(tmp_path.iterdir()) == []
