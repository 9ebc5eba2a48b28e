"""Capacity on the synthesized pipeline in moto: the stack says what it offers, a job asking for capacity the stack
does not have fails at submit with the reason (nothing is started), and the deployed prepare Lambda puts each job
in the queue of its kind."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest
from pipeline import BUCKET, _infra

from workbench.backends.aws import AwsBackend, AwsConfig
from workbench.errors import BackendConfigError, SpecError
from workbench.spec.document import parse_spec

TRAINING = {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 2, "device": "cpu"}
QUEUES = {"main": "arn:aws:batch:us-west-2:123456789012:job-queue/main",
          "on-demand": "arn:aws:batch:us-west-2:123456789012:job-queue/on-demand",
          "spot": "arn:aws:batch:us-west-2:123456789012:job-queue/spot",
          "multi": "arn:aws:batch:us-west-2:123456789012:job-queue/multi"}


def spec(capacity: str, nodes: int = 1):
    return parse_spec({"trainingConfig": TRAINING, "computeConfig": {"capacity": capacity, "numNodes": nodes}})


def invoke_prepare(capacity: str) -> dict:
    """The deployed prepare Lambda (the stack's code and environment) on a job asking for ``capacity``."""
    payload = {"jobId": f"capacity-{capacity}", "inputParameters": spec(capacity).to_dict()}
    answer = boto3.client("lambda").invoke(FunctionName="workbench-prepare", Payload=json.dumps(payload).encode())
    return json.loads(answer["Payload"].read())


def test_the_stack_says_its_capacity_and_the_backend_reads_it(backend, pipeline):
    assert pipeline.outputs["Capacity"] == backend.config.capacity == "on-demand"
    assert pipeline.outputs["OnDemandJobQueueArn"] == pipeline.outputs["JobQueueArn"]
    assert "SpotJobQueueArn" not in pipeline.outputs
    assert set(backend.config.job_queues) == {pipeline.outputs["JobQueueArn"], pipeline.outputs["MultiNodeJobQueueArn"]}


@pytest.mark.parametrize(("stack", "asked"), [("on-demand", "spot"), ("spot", "on-demand")])
def test_a_job_asking_for_capacity_the_stack_lacks_fails_at_submit_and_starts_nothing(backend, stack, asked):
    other = AwsBackend(config=dataclasses.replace(backend.config, capacity=stack), cache_dir=backend.cache_dir)
    before = len(other.list_jobs())
    with pytest.raises(SpecError) as refused:
        other.submit(spec(asked))
    (error,) = refused.value.errors
    assert error.path == "computeConfig.capacity"
    assert repr(asked) in error.message and repr(stack) in error.message
    assert len(other.list_jobs()) == before


def test_the_estimate_prices_the_capacity_the_stack_gives_the_job(backend):
    on_demand = backend.estimate(spec("any"))
    spot = AwsBackend(config=dataclasses.replace(backend.config, capacity="spot")).estimate(spec("any"))
    assert on_demand.uses == "on-demand" and on_demand.price_per_hour == on_demand.on_demand_per_hour
    assert spot.uses == "spot" and spot.price_per_hour == spot.spot_per_hour < on_demand.price_per_hour
    assert "will use spot capacity" in spot.describe()


def test_the_deployed_prepare_lambda_queues_by_capacity_and_refuses_what_the_stack_lacks(pipeline):
    for asked in ("any", "on-demand"):
        prepared = invoke_prepare(asked)
        assert prepared["jobQueue"] == pipeline.outputs["JobQueueArn"], prepared
        assert "the job runs on on-demand capacity" in prepared["notices"]
    refused = invoke_prepare("spot")
    assert refused["errorType"] == "ValidationError"
    assert "computeConfig.capacity" in refused["errorMessage"] and "'spot'" in refused["errorMessage"]


@pytest.mark.parametrize(("asked", "queue", "uses"), [
    ("any", "main", "spot first, else on-demand"), ("on-demand", "on-demand", "on-demand"), ("spot", "spot", "spot"),
])
def test_on_a_stack_with_both_kinds_each_job_gets_the_queue_of_its_kind(asked, queue, uses):
    from workbench_infra.lambda_modules import load_lambda_module

    _infra()
    prepare = load_lambda_module("prepare")
    settings = prepare.Settings(bucket=BUCKET, job_queue=QUEUES["main"], single_node_job_definition="single",
                                multi_node_job_definition="multi", checkpoint_root="/mnt/efs/checkpoints",
                                multi_node_job_queue=QUEUES["multi"], capacity="spot-then-on-demand",
                                on_demand_job_queue=QUEUES["on-demand"], spot_job_queue=QUEUES["spot"])
    prepared = prepare.prepare({"jobId": f"both-{asked}", "inputParameters": spec(asked).to_dict()}, settings)
    assert prepared["jobQueue"] == QUEUES[queue]
    assert f"the job runs on {uses} capacity" in prepared["notices"]
    if asked != "spot":
        multi_node = {"jobId": f"multi-{asked}", "inputParameters": spec(asked, nodes=2).to_dict()}
        multi = prepare.prepare(multi_node, settings)
        assert multi["jobQueue"] == QUEUES["multi"]


def test_stack_outputs_before_capacity_mean_on_demand_and_an_unknown_capacity_is_an_error(pipeline):
    outputs = {k: v for k, v in pipeline.outputs.items() if k not in ("Capacity", "OnDemandJobQueueArn")}
    assert AwsConfig.from_outputs(outputs).capacity == "on-demand"
    with pytest.raises(BackendConfigError, match="cheapest"):
        AwsConfig.from_outputs({**outputs, "Capacity": "cheapest"})
    both = AwsConfig.from_outputs({**outputs, "Capacity": "spot-then-on-demand",
                                   "OnDemandJobQueueArn": QUEUES["on-demand"], "SpotJobQueueArn": QUEUES["spot"]})
    assert {QUEUES["on-demand"], QUEUES["spot"]} <= set(both.job_queues)
