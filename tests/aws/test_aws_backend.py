"""The aws backend end to end against the synthesized pipeline in moto, with the real runner as the Batch job.

The jobs are submitted together at the start of the module (the emulated Batch runs them side by side) and each
test follows its own: a tiny training, a training with a custom environment package uploaded from a local path,
a job whose task the container does not know (its package has no such task), one that stops heartbeating (the state machine's heartbeat scaled down to
4 s) and one that is cancelled. The evaluation uses the training's checkpoint as a local policy file.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import threading
import time
from pathlib import Path

import boto3
import pytest

from workbench.backends.aws import AwsBackend, AwsJob
from workbench.spec import parse_spec
from workbench.status import JobState

REPO = Path(__file__).resolve().parents[2]
TINY = {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 3, "device": "cpu", "seed": 3}
LONG = {**TINY, "maxIterations": 2000}
WAIT = 300


def build_custom_env(out_dir: Path) -> Path:
    spec = importlib.util.spec_from_file_location("custom_env_build", REPO / "examples" / "custom_env" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_packages(out_dir)["whl"]


def variant_task() -> str:
    text = (REPO / "examples/custom_env/package/workbench_cartpole_variant/__init__.py").read_text()
    return text.split('TASK_ID = "', 1)[1].split('"', 1)[0]


@pytest.fixture(scope="module")
def jobs(backend: AwsBackend, pipeline, tmp_path_factory) -> dict[str, AwsJob]:
    """Every job of this module, submitted at once."""
    quiet = copy.deepcopy(pipeline.definition)
    for state in _states(quiet):
        if str(state.get("Resource", "")).endswith("submitJob.waitForTaskToken"):
            state["HeartbeatSeconds"] = 4
    stalling = AwsBackend(config=dataclasses.replace(backend.config, state_machine_arn=pipeline.variant("heartbeat-4s", quiet)),
                          cache_dir=backend.cache_dir)
    wheel = build_custom_env(tmp_path_factory.mktemp("custom-env"))
    return {
        "cancel": backend.submit(parse_spec({"trainingConfig": LONG})),
        "failure": backend.submit(parse_spec({"trainingConfig": {**TINY, "task": "Workbench-No-Such-Task"},
                                              "customEnvironmentS3Uri": str(wheel)})),
        "heartbeat": stalling.submit(parse_spec({"trainingConfig": LONG})),
        "train": backend.submit(parse_spec({"trainingConfig": TINY})),
        "custom": backend.submit(parse_spec({"trainingConfig": {**TINY, "task": variant_task(), "maxIterations": 2},
                                             "customEnvironmentS3Uri": str(wheel)})),
    }


def follow_logs(job: AwsJob, timeout: float) -> list[str]:
    """``job.logs(follow=True)`` to the end, failing instead of hanging if it does not end within ``timeout``."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(job.logs(follow=True, poll_interval=0.2)), daemon=True)
    reader.start()
    reader.join(timeout)
    assert not reader.is_alive(), f"following the log did not end within {timeout} s: {job.status()}"
    return lines


def batch_job(job: AwsJob) -> dict:
    return job._batch_jobs()[0]


def wait_batch_done(job: AwsJob, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = batch_job(job)
        if described["status"] in ("SUCCEEDED", "FAILED"):
            return described
        time.sleep(0.5)
    raise AssertionError(f"Batch job of {job.job_id} still {described['status']} after {timeout} s")


def test_cancel_aborts_the_execution_and_terminates_the_batch_job(jobs):
    job = jobs["cancel"]
    deadline = time.monotonic() + WAIT
    while job.status().state is not JobState.RUNNING:
        assert time.monotonic() < deadline, "the job never started running"
        time.sleep(0.5)
    status = job.cancel("enough for today")
    assert status.state is JobState.CANCELLED and "enough for today" in status.reason
    described = wait_batch_done(job)
    assert described["status"] == "FAILED" and "enough for today" in described["statusReason"]
    execution = boto3.client("stepfunctions").describe_execution(executionArn=job.execution_arn)
    assert execution["status"] == "ABORTED"


def test_a_failure_inside_the_container_fails_fast_with_the_runners_reason(jobs):
    job = jobs["failure"]
    status = job.wait(timeout=WAIT, poll_interval=0.5)
    assert status.state is JobState.FAILED
    assert "Workbench-No-Such-Task" in status.reason and "not found" in status.reason, status.reason
    stopped = wait_batch_done(job)
    assert stopped["status"] == "FAILED"
    assert (stopped["stoppedAt"] - stopped["startedAt"]) / 1000 < 60


def test_a_job_that_stops_heartbeating_is_failed_and_its_batch_job_terminated(jobs):
    job = jobs["heartbeat"]
    status = job.wait(timeout=WAIT, poll_interval=0.5)
    assert status.state is JobState.FAILED
    assert "heartbeat" in status.reason or "time limit" in status.reason, status.reason
    execution = job.backend.client("stepfunctions").describe_execution(executionArn=job.execution_arn)
    assert execution["status"] == "FAILED" and execution["error"].startswith("Workbench.States."), execution
    described = wait_batch_done(job)
    assert described["status"] == "FAILED" and "Workbench pipeline" in described["statusReason"]


def test_training_end_to_end(jobs, backend):
    job = jobs["train"]
    streamed = follow_logs(job, timeout=WAIT)
    status = job.status()
    assert status.state is JobState.SUCCEEDED, status.reason
    assert status.output_uri == f"s3://{backend.config.bucket}/outputs/{job.job_id}"
    assert status.progress.iteration == 3 and status.progress.max_iterations == 3

    keys = {key for key, _ in _list(status.output_uri)}
    assert {"training-config.json", "metrics.csv", "logs/job.log", "checkpoints/model_2.pt"} <= keys

    local = job.outputs()
    assert local == backend.cache_dir / job.job_id
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()) == sorted(keys)

    again = list(job.logs())
    first_difference = next((i for i, (a, b) in enumerate(zip(streamed, again)) if a != b), min(len(streamed), len(again)))
    assert streamed == again, (f"following the log lost or repeated lines: {len(streamed)} streamed, {len(again)} "
                               f"stored, first difference at line {first_difference}")
    job_log = (local / "logs" / "job.log").read_text().splitlines()
    position = 0
    for line in job_log:
        position = again.index(line, position) + 1
    assert any(line.startswith("[workbench] status SUCCEEDED") for line in again)


def test_the_actual_cost_comes_from_the_batch_jobs_run_time(jobs, backend):
    job = jobs["train"]
    job.wait(timeout=WAIT)
    described = wait_batch_done(job)
    hours = (described["stoppedAt"] - described["startedAt"]) / 3_600_000
    assumed = backend.estimate(job.spec())
    assert job.cost() == pytest.approx(assumed.price_per_hour * hours)
    assert backend.estimate_cost(job.job_id) == pytest.approx(job.cost())
    assert job.status().details["cost_usd"] == pytest.approx(job.cost(), abs=1e-4)


def test_the_task_token_never_leaves_the_environment(jobs):
    job = jobs["train"]
    job.wait(timeout=WAIT)
    container = batch_job(job)["container"]
    token = next(e["value"] for e in container["environment"] if e["name"] == "WORKBENCH_TASK_TOKEN")
    assert len(token) > 20
    assert token not in " ".join(container.get("command") or [])
    assert not [line for line in job.logs() if token in line]
    for path in job.outputs().rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"the task token is in {path}"


def test_a_custom_environment_uploaded_from_a_local_path_is_used(jobs, backend):
    job = jobs["custom"]
    status = job.wait(timeout=WAIT, poll_interval=1)
    assert status.state is JobState.SUCCEEDED, status.reason
    spec = job.spec()
    assert spec.custom_environment_uri.startswith(f"s3://{backend.config.bucket}/inputs/{job.job_id}/")
    assert spec.task == variant_task()
    assert any(key.startswith("checkpoints/model_") for key, _ in _list(status.output_uri))


def test_evaluation_with_a_policy_uploaded_from_a_local_file(jobs, backend):
    trained = jobs["train"]
    assert trained.wait(timeout=WAIT).state is JobState.SUCCEEDED
    checkpoint = trained.outputs() / "checkpoints" / "model_2.pt"
    spec = parse_spec({"trainingConfig": {"mode": "evaluate", "task": "Isaac-Cartpole-Direct", "numEnvs": 4,
                                          "numEpisodes": 2, "stepsPerEpisode": 40, "device": "cpu",
                                          "policy": str(checkpoint)}})
    job = backend.submit(spec)
    submitted = job.spec().training
    assert submitted["policy"] is None
    assert submitted["policyS3Uri"] == f"s3://{backend.config.bucket}/inputs/{job.job_id}/model_2.pt"
    status = job.wait(timeout=WAIT, poll_interval=1)
    assert status.state is JobState.SUCCEEDED, status.reason
    keys = {key for key, _ in _list(status.output_uri)}
    assert {"evaluation-config.json", "metrics.csv"} <= keys


def _list(uri: str) -> list[tuple[str, int]]:
    from workbench.runner.s3_storage import list_keys

    return list_keys(uri)


def _states(definition: dict):
    for state in definition.get("States", {}).values():
        yield state
        for branch in state.get("Branches", []):
            yield from _states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _states(state[key])
