"""The Step Functions channel against moto server: real waitForTaskToken tasks receive the callbacks, tokens in SSM."""

from __future__ import annotations

import copy
import json
import logging
import time

import pytest

from workbench.errors import RunnerError
from workbench.spec.status import JobState, JobStatus, Progress
from workbench.transport.channels import open_channel
from workbench.transport.sfn_channel import StepFunctionsChannel

JOB = "11111111-2222-3333-4444-555555555555"
DEFINITION = {
    "StartAt": "Job",
    "States": {
        "Job": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl.$": "$.queue", "MessageBody": {"token.$": "$$.Task.Token"}},
            "HeartbeatSeconds": 60,
            "TimeoutSeconds": 600,
            "End": True,
        }
    },
}


@pytest.fixture
def waiting(moto_server, request):
    """An execution waiting on a task token; yields (sfn client, execution arn, token)."""
    import boto3

    sqs = boto3.client("sqs")
    sfn = boto3.client("stepfunctions")
    name = request.node.name.replace("_", "-")[:60]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    machine = sfn.create_state_machine(
        name=name, definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="e1", input=json.dumps({"queue": queue}))
    token = None
    for _ in range(200):
        messages = sqs.receive_message(QueueUrl=queue).get("Messages", [])
        if messages:
            token = json.loads(messages[0]["Body"])["token"]
            break
        time.sleep(0.05)
    assert token, "the execution never sent its task token"
    yield sfn, execution["executionArn"], token


def settle(sfn, arn: str) -> dict:
    for _ in range(100):
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            return desc
        time.sleep(0.05)
    return desc


def status(state: JobState, **kw) -> JobStatus:
    return JobStatus(job_id=JOB, state=state, **kw)


def test_success_reports_output_location_and_progress(waiting, monkeypatch, caplog):
    sfn, arn, token = waiting
    monkeypatch.setenv("WORKBENCH_TASK_TOKEN", token)
    caplog.set_level(logging.DEBUG)
    channel = open_channel("sfn:")
    assert isinstance(channel, StepFunctionsChannel)
    channel.publish(status(JobState.STARTING), heartbeat=True)
    channel.publish(status(JobState.RUNNING, progress=Progress(iteration=1, max_iterations=3)), heartbeat=True)
    channel.publish(status(JobState.SUCCEEDED, output_uri="s3://b/outputs/x", progress=Progress(iteration=3, max_iterations=3)))
    desc = settle(sfn, arn)
    assert desc["status"] == "SUCCEEDED"
    output = json.loads(desc["output"])
    assert output == {
        "jobId": JOB, "state": "SUCCEEDED", "outputUri": "s3://b/outputs/x",
        "progress": {"iteration": 3, "max_iterations": 3, "mean_reward": None, "mean_episode_length": None, "steps_per_second": None},
    }
    history = [e["type"] for e in sfn.get_execution_history(executionArn=arn)["events"]]
    assert "TaskSucceeded" in history
    assert token not in caplog.text and "SUCCEEDED" in caplog.text and "s3://b/outputs/x" in caplog.text
    assert token not in repr(channel)


def test_failure_sends_the_reason(waiting, monkeypatch):
    sfn, arn, token = waiting
    channel = StepFunctionsChannel({"WORKBENCH_TASK_TOKEN": token})
    channel.publish(status(JobState.FAILED, reason="the task 'Isaac-Nope' is not registered"))
    desc = settle(sfn, arn)
    assert desc["status"] == "FAILED"
    failed = [e for e in sfn.get_execution_history(executionArn=arn)["events"] if e["type"] == "TaskFailed"]
    assert failed[0]["taskFailedEventDetails"]["error"] == "WorkbenchJobFailed"


def test_worker_nodes_heartbeat_but_leave_the_end_to_the_main_node(waiting):
    sfn, arn, token = waiting
    env = {"WORKBENCH_TASK_TOKEN": token, "AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_NODE_INDEX": "1",
           "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0", "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.0.1"}
    worker = StepFunctionsChannel(env)
    worker.publish(status(JobState.RUNNING), heartbeat=True)
    worker.publish(status(JobState.FAILED, reason="rendezvous closed"))
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    StepFunctionsChannel({**env, "AWS_BATCH_JOB_NODE_INDEX": "0"}).publish(status(JobState.SUCCEEDED, output_uri="s3://b/o"))
    assert settle(sfn, arn)["status"] == "SUCCEEDED"


def test_a_stopped_execution_is_noticed_not_fatal(waiting):
    sfn, arn, token = waiting
    sfn.stop_execution(executionArn=arn)
    channel = StepFunctionsChannel({"WORKBENCH_TASK_TOKEN": token})
    channel.publish(status(JobState.RUNNING), heartbeat=True)
    channel.publish(status(JobState.SUCCEEDED, output_uri="s3://b/o"))
    assert channel.ended_by in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")


def test_without_a_token_the_channel_refuses_to_start():
    with pytest.raises(RunnerError, match="WORKBENCH_TASK_TOKEN_PARAMETER"):
        StepFunctionsChannel({})


def parameter_wait(role: str, **timing) -> dict:
    """A task that keeps its token in the job's ``role`` SSM parameter, as the pipeline's waiting states do."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::aws-sdk:ssm:putParameter.waitForTaskToken",
        "Parameters": {"Name.$": f"$.{role}", "Value.$": "$$.Task.Token", "Type": "SecureString", "Overwrite": True},
        **timing,
    }


QUEUED = {
    "StartAt": "Wait for the job to start",
    "States": {
        "Wait for the job to start": {
            **parameter_wait("start", TimeoutSeconds=3),
            "ResultPath": None,
            "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.check", "Next": "Still queued"}],
            "Next": "Run",
        },
        # moto 5.2.5 follows a Catch back to its own state as if it were the state's Next: loop through a Pass
        "Still queued": {"Type": "Pass", "Next": "Wait for the job to start"},
        "Run": {**parameter_wait("run", HeartbeatSeconds=60, TimeoutSeconds=600), "End": True},
    },
}


@pytest.fixture
def queued(moto_server, request):
    """An execution like the pipeline's: it renews its start token every 3 s until the start is announced."""
    import boto3

    sfn, ssm = boto3.client("stepfunctions"), boto3.client("ssm")
    name = request.node.name.replace("_", "-")[:60]
    prefix = f"/harness/jobs/{name}"
    machine = sfn.create_state_machine(
        name=f"q-{name}"[:80], definition=json.dumps(QUEUED), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    names = {"start": f"{prefix}/start-token", "run": f"{prefix}/run-token"}
    execution = sfn.start_execution(stateMachineArn=machine, name="e1", input=json.dumps(names))["executionArn"]
    yield sfn, ssm, execution, prefix


def parameter(ssm, name: str, wait: float = 10) -> str:
    deadline = time.monotonic() + wait
    while True:
        try:
            return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            assert time.monotonic() < deadline, f"{name} never appeared"
            time.sleep(0.1)


def test_the_start_is_announced_again_with_the_token_that_replaced_a_closed_one(queued, caplog):
    sfn, ssm, arn, prefix = queued
    first = parameter(ssm, f"{prefix}/start-token")
    while parameter(ssm, f"{prefix}/start-token") == first:  # the first wait timed out: the job is "queued"
        time.sleep(0.1)
    ssm.put_parameter(Name=f"{prefix}/start-token", Value=first, Type="SecureString", Overwrite=True)  # read too late
    caplog.set_level(logging.DEBUG)
    channel = StepFunctionsChannel({"WORKBENCH_TASK_TOKEN_PARAMETER": prefix}, poll_seconds=0.2, wait_seconds=20)
    channel.publish(status(JobState.STARTING), heartbeat=True)
    # AWS answers the closed token TaskTimedOut; moto 5.2.5 accepts it silently: either way the newer one is used
    assert "the start token was closed" in caplog.text or "announced the job's start to Step Functions again" in caplog.text
    history = sfn.get_execution_history(executionArn=arn)["events"]
    assert [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e][-1] == "Run"
    channel.publish(status(JobState.RUNNING), heartbeat=True)
    channel.publish(status(JobState.SUCCEEDED, output_uri="s3://b/o"))
    desc = settle(sfn, arn)
    assert desc["status"] == "SUCCEEDED" and json.loads(desc["output"])["outputUri"] == "s3://b/o"
    tokens = {first, parameter(ssm, f"{prefix}/start-token"), parameter(ssm, f"{prefix}/run-token")}
    assert not [t for t in tokens if t in caplog.text] and not [t for t in tokens if t in repr(channel)]
    assert channel.ended_by is None


def test_every_heartbeat_also_reaches_the_callers_token(queued, request):
    import boto3

    sfn, ssm, arn, prefix = queued
    sqs = boto3.client("sqs")
    name = "caller-" + request.node.name.replace("_", "-")[:50]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    caller_definition = copy.deepcopy(DEFINITION)
    caller_definition["States"]["Job"]["HeartbeatSeconds"] = 3
    machine = sfn.create_state_machine(
        name=name, definition=json.dumps(caller_definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    caller = sfn.start_execution(stateMachineArn=machine, name="caller", input=json.dumps({"queue": queue}))["executionArn"]
    caller_token = None
    while caller_token is None:
        messages = sqs.receive_message(QueueUrl=queue).get("Messages", [])
        caller_token = json.loads(messages[0]["Body"])["token"] if messages else None
    ssm.put_parameter(Name=f"{prefix}/caller-token", Value=caller_token, Type="SecureString")

    channel = StepFunctionsChannel({"WORKBENCH_TASK_TOKEN_PARAMETER": prefix}, poll_seconds=0.2, wait_seconds=20)
    channel.publish(status(JobState.STARTING), heartbeat=True)
    for _ in range(8):  # 8 s: more than twice the caller's 3 s heartbeat timeout
        time.sleep(1)
        channel.publish(status(JobState.RUNNING), heartbeat=True)
    assert sfn.describe_execution(executionArn=caller)["status"] == "RUNNING"
    time.sleep(5)  # silence: the caller's heartbeat timeout fires, so the heartbeats were what kept it waiting
    assert settle(sfn, caller)["status"] == "FAILED"
    channel.publish(status(JobState.RUNNING), heartbeat=True)  # a caller that stopped waiting is not fatal
    channel.publish(status(JobState.SUCCEEDED, output_uri="s3://b/o"))
    assert settle(sfn, arn)["status"] == "SUCCEEDED"


def test_a_direct_token_still_works_for_a_direct_launch(waiting):
    sfn, arn, token = waiting
    channel = StepFunctionsChannel({"WORKBENCH_TASK_TOKEN": token, "WORKBENCH_TASK_TOKEN_PARAMETER": ""})
    channel.publish(status(JobState.RUNNING), heartbeat=True)
    channel.publish(status(JobState.SUCCEEDED, output_uri="s3://b/o"))
    assert settle(sfn, arn)["status"] == "SUCCEEDED"
