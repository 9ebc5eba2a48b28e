"""The harness itself: the synthesized pipeline deployed into moto is what the backend sees."""

from __future__ import annotations

import json

import boto3


def test_the_backend_reads_its_configuration_from_the_stack_outputs(backend, pipeline):
    config = backend.config
    assert config.state_machine_arn == pipeline.state_machine_arn
    assert config.bucket == pipeline.outputs["BucketName"]
    assert config.log_group == pipeline.outputs["JobLogGroupName"]
    assert config.job_queue == pipeline.outputs["JobQueueArn"]


def test_the_state_machine_runs_the_synthesized_definition(pipeline):
    described = boto3.client("stepfunctions").describe_state_machine(stateMachineArn=pipeline.state_machine_arn)
    definition = json.loads(described["definition"])
    resources = {s.get("Resource") for s in definition["States"].values()}
    assert "arn:aws:states:::aws-sdk:batch:submitJob" in resources
    assert "arn:aws:states:::aws-sdk:ssm:putParameter.waitForTaskToken" in resources
