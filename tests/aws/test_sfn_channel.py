"""The Step Functions channel against moto server: a real waitForTaskToken task receives the callbacks."""

from __future__ import annotations

import json
import logging
import time

import pytest

from workbench.errors import RunnerError
from workbench.runner.channels import open_channel
from workbench.runner.sfn_channel import StepFunctionsChannel
from workbench.status import JobState, JobStatus, Progress

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
    with pytest.raises(RunnerError, match="WORKBENCH_TASK_TOKEN"):
        StepFunctionsChannel({})
