"""The aws backend end to end against the synthesized pipeline in moto, with the real runner as the Batch job.

The jobs are submitted together at the start of the module (the emulated Batch runs them side by side) and each
test follows its own: a tiny training, a training with a custom environment package uploaded from a local path,
a job whose task the container does not know (its package has no such task), one that stops heartbeating (the state machine's heartbeat scaled down to
4 s), one that is cancelled, and one held in the queue longer than the scaled-down heartbeats (its own and its
caller's: a small outer state machine that waits on a task token, as VAMS does). The evaluation uses the
training's checkpoint as a local policy file.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest

from tests.helpers import hostile_checkpoint
from workbench.backends.aws import AwsBackend, AwsJob
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

REPO = Path(__file__).resolve().parents[2]
TINY = {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 3, "device": "cpu", "seed": 3}
LONG = {**TINY, "maxIterations": 2000}
WAIT = 300
RUN_WAIT = "putParameter.waitForTaskToken"
QUEUED_SECONDS = 75
CALLER_HEARTBEAT = 45
"""Above the longest silence of a tiny CPU training's start on a loaded machine, below the time in the queue."""


def build_custom_env(out_dir: Path) -> Path:
    spec = importlib.util.spec_from_file_location("custom_env_build", REPO / "examples" / "custom_env" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_packages(out_dir)["whl"]


def variant_task() -> str:
    text = (REPO / "examples/custom_env/package/workbench_cartpole_variant/__init__.py").read_text()
    return text.split('TASK_ID = "', 1)[1].split('"', 1)[0]


@pytest.fixture(scope="module")
def jobs(backend: AwsBackend, pipeline, tmp_path_factory, harness_root) -> dict[str, AwsJob]:
    """Every job of this module, submitted at once."""
    quiet = copy.deepcopy(pipeline.definition)
    for state in _states(quiet):
        if str(state.get("Resource", "")).endswith(RUN_WAIT) and "HeartbeatSeconds" in state:
            state["HeartbeatSeconds"] = 4
    stalling = AwsBackend(config=dataclasses.replace(backend.config, state_machine_arn=pipeline.variant("heartbeat-4s", quiet)),
                          cache_dir=backend.cache_dir)
    wheel = build_custom_env(tmp_path_factory.mktemp("custom-env"))
    hostile, _ = hostile_checkpoint(tmp_path_factory.mktemp("hostile"))
    return {
        "queued": submit_queued(backend, pipeline, harness_root),
        "cancel": backend.submit(parse_spec({"trainingConfig": LONG})),
        "failure": backend.submit(parse_spec({"trainingConfig": {**TINY, "task": "Workbench-No-Such-Task"},
                                              "customEnvironmentS3Uri": str(wheel)})),
        "heartbeat": stalling.submit(parse_spec({"trainingConfig": LONG})),
        "train": backend.submit(parse_spec({"trainingConfig": TINY})),
        "custom": backend.submit(parse_spec({"trainingConfig": {**TINY, "task": variant_task(), "maxIterations": 2},
                                             "customEnvironmentS3Uri": str(wheel)})),
        "hostile-evaluate": backend.submit(parse_spec({"trainingConfig": {
            "mode": "evaluate", "task": "Isaac-Cartpole-Direct", "numEnvs": 4, "numEpisodes": 2, "device": "cpu",
            "policy": str(hostile)}})),
        "hostile-resume": backend.submit(parse_spec({"trainingConfig": {**TINY, "resumeFrom": str(hostile)}})),
    }


def submit_queued(backend: AwsBackend, pipeline, harness_root: Path) -> AwsJob:
    """A tiny training held RUNNABLE for ``QUEUED_SECONDS``, started by a caller whose heartbeat timeout is shorter.

    The variant checks the queue every 2 s (not 300 s), its run states' heartbeat is ``CALLER_HEARTBEAT`` s (not
    1800 s) and the runner heartbeats every 2 s (not 300 s), so that the queue outlasts every heartbeat timeout.
    """
    scaled = copy.deepcopy(pipeline.definition)
    states = scaled["States"]
    states["Wait for the job to start"]["TimeoutSeconds"] = 2
    for state in _states(scaled):
        if str(state.get("Resource", "")).endswith(RUN_WAIT) and "HeartbeatSeconds" in state:
            state["HeartbeatSeconds"] = CALLER_HEARTBEAT
        if "ContainerOverrides" in state.get("Parameters", {}):  # the single-node submission
            state["Parameters"]["ContainerOverrides"]["Environment"].append({"Name": "WORKBENCH_HEARTBEAT_INTERVAL", "Value": "2"})
    queued = pipeline.variant("queued", scaled)
    job_id = str(uuid.uuid4())
    caller_parameter = f"/harness/callers/{job_id}"
    caller = {"StartAt": "Wait for the pipeline", "States": {"Wait for the pipeline": {
        "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:ssm:putParameter.waitForTaskToken",
        "Parameters": {"Name": caller_parameter, "Value.$": "$$.Task.Token", "Type": "SecureString"},
        "HeartbeatSeconds": CALLER_HEARTBEAT, "TimeoutSeconds": WAIT, "End": True}}}
    sfn, ssm = boto3.client("stepfunctions"), boto3.client("ssm")
    outer = sfn.create_state_machine(name="caller", definition=json.dumps(caller), roleArn=pipeline.role_arn)["stateMachineArn"]
    sfn.start_execution(stateMachineArn=outer, name=job_id, input="{}")
    deadline = time.monotonic() + 30
    while True:  # the caller's token, as VAMS hands it to the entry Lambda
        try:
            caller_token = ssm.get_parameter(Name=caller_parameter, WithDecryption=True)["Parameter"]["Value"]
            break
        except ssm.exceptions.ParameterNotFound:
            assert time.monotonic() < deadline, "the caller never made its task token"
            time.sleep(0.2)
    (harness_root / "queue-seconds.json").write_text(json.dumps({f"workbench-{job_id}": QUEUED_SECONDS}))
    document = {"trainingConfig": TINY}
    sfn.start_execution(stateMachineArn=queued, name=job_id, input=json.dumps(
        {"jobId": job_id, "inputParameters": document, "callerTaskToken": caller_token}))
    variant_backend = AwsBackend(config=dataclasses.replace(backend.config, state_machine_arn=queued), cache_dir=backend.cache_dir)
    job = AwsJob(variant_backend, job_id)
    job.caller_arn = outer.replace(":stateMachine:", ":execution:") + f":{job_id}"
    return job


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
    assert {"training-config.json", "metrics.csv", "logs/job.log", "checkpoints/model_2.pt",
            "exported/policy.onnx", "exported/policy.pt", "exported/policy.json"} <= keys

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


def test_a_job_queued_longer_than_every_heartbeat_succeeds_and_its_caller_never_times_out(jobs):
    job = jobs["queued"]
    status = job.wait(timeout=WAIT, poll_interval=0.5)
    sfn = boto3.client("stepfunctions")
    history = sfn.get_execution_history(executionArn=job.execution_arn, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert status.state is JobState.SUCCEEDED, (status.reason, entered[-12:])
    described = wait_batch_done(job)
    queued_seconds = (described["startedAt"] - described["createdAt"]) / 1000
    assert queued_seconds > QUEUED_SECONDS - 5 > CALLER_HEARTBEAT, described
    assert entered.count("Heartbeat the caller") >= QUEUED_SECONDS // 3, entered  # a check every 2 s and a bit
    assert entered.count("Wait for the job to start") == entered.count("Heartbeat the caller") + 1
    caller = sfn.describe_execution(executionArn=job.caller_arn)
    for _ in range(50):
        if caller["status"] != "RUNNING":
            break
        time.sleep(0.2)
        caller = sfn.describe_execution(executionArn=job.caller_arn)
    assert caller["status"] == "SUCCEEDED", caller
    assert json.loads(caller["output"])["jobId"] == job.job_id


def job_tokens(job: AwsJob) -> set[str]:
    """Every task token the execution made or got (from its history: what it put into SSM, and its caller's)."""
    history = boto3.client("stepfunctions").get_execution_history(executionArn=job.execution_arn, maxResults=1000)
    tokens = set()
    for event in history["events"]:
        details = event.get("taskScheduledEventDetails") or {}
        if details.get("resource", "").startswith("putParameter"):
            tokens.add(json.loads(details["parameters"])["Value"])
    caller = json.loads(job._describe_execution()["input"]).get("callerTaskToken")
    return tokens | ({caller} if caller else set())


@pytest.mark.parametrize("name", ["train", "queued"])
def test_the_task_tokens_appear_in_no_batch_job_no_log_and_no_output_and_are_deleted_at_the_end(jobs, name):
    job = jobs[name]
    assert job.wait(timeout=WAIT).state is JobState.SUCCEEDED
    tokens = job_tokens(job)
    assert len(tokens) >= (3 if name == "queued" else 2) and all(len(token) > 20 for token in tokens)
    described = json.dumps(job._batch_jobs(), default=str)
    container = batch_job(job)["container"]
    names = {e["name"]: e["value"] for e in container["environment"]}
    assert "WORKBENCH_TASK_TOKEN" not in names and names["WORKBENCH_TASK_TOKEN_PARAMETER"].endswith(f"/jobs/{job.job_id}")
    lines = list(job.logs())
    assert any("announced the job's start" in line for line in lines)
    local = job.outputs()
    for token in tokens:
        assert token not in described, "a task token is in the Batch job's description"
        assert not [line for line in lines if token in line], "a task token is in the job's log"
        for path in local.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), f"a task token is in {path}"
    ssm = boto3.client("ssm")
    left = ssm.get_parameters_by_path(Path=names["WORKBENCH_TASK_TOKEN_PARAMETER"], Recursive=True)["Parameters"]
    assert left == [], [p["Name"] for p in left]


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


@pytest.mark.parametrize("name", ["hostile-evaluate", "hostile-resume"])
def test_a_hostile_checkpoint_fails_the_job_and_runs_nothing(jobs, name, tmp_path_factory):
    """The staged policy or resume checkpoint is refused inside the job, before any library loads it."""
    status = jobs[name].wait(timeout=WAIT, poll_interval=1)
    assert status.state is JobState.FAILED and "refusing to load" in status.reason, status.reason
    assert "it contains posix.system" in status.reason
    assert not list(tmp_path_factory.getbasetemp().rglob("payload-ran"))


def _list(uri: str) -> list[tuple[str, int]]:
    from workbench.transport.s3 import list_keys

    return list_keys(uri)


def _states(definition: dict):
    for state in definition.get("States", {}).values():
        yield state
        for branch in state.get("Branches", []):
            yield from _states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _states(state[key])
