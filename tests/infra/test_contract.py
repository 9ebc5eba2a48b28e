"""The contract across every hop, with the real code at each end:

VAMS event -> entry Lambda (starts the execution) -> state machine input -> "Validate and prepare" (the real
handler) -> the submit state's parameters (rendered from the synthesized definition) -> a valid Batch SubmitJob
request (checked against botocore's Batch model) -> the container's environment (job definition + overrides +
what Batch adds) -> the runner's settings (``workbench.runner.__main__.settings_from``); and the run state's
token parameter -> a valid SSM PutParameter request named as the runner and the Batch failure hook read it.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.session
import pytest
from asl import lookup, render
from botocore.validate import ParamValidator
from infra_configs import BUCKET, REGION
from workbench_infra.lambda_modules import load_lambda_module
from workbench_infra.synth import definition_with, resources_of_type

from workbench.spec.document import parse_spec

QUEUE = f"arn:aws:batch:{REGION}:123456789012:job-queue/workbench"
SINGLE = f"arn:aws:batch:{REGION}:123456789012:job-definition/single:1"
MULTI = f"arn:aws:batch:{REGION}:123456789012:job-definition/multi:1"
TOKEN = "TASK-TOKEN-FROM-STEP-FUNCTIONS"
CALLER_TOKEN = "CALLER-TOKEN-FROM-VAMS"
PACKAGE = f"s3://{BUCKET}/inputs/my_env-1.0.tar.gz"


@pytest.fixture()
def aws(s3):
    s3.put_object(Bucket=BUCKET, Key=PACKAGE.split("/", 3)[3], Body=b"package")
    return s3


def resource_names(template: dict[str, Any]) -> dict[str, str]:
    """Deployed values for the template's references, as a real deployment would resolve them."""
    refs = {}
    for logical_id, resource in template["Resources"].items():
        refs[logical_id] = {
            "AWS::S3::Bucket": BUCKET,
            "AWS::Batch::JobQueue": QUEUE,
        }.get(resource["Type"], f"<{logical_id}>")
        if resource["Type"] == "AWS::Batch::JobDefinition":
            refs[logical_id] = MULTI if resource["Properties"]["Type"] == "multinode" else SINGLE
    return refs


def lambda_environment(template: dict[str, Any], handler_name: str, refs: dict[str, str]) -> dict[str, str]:
    functions = resources_of_type(template, "AWS::Lambda::Function")
    (function,) = [f for k, f in functions.items() if handler_name in k]
    resolved = {}
    for key, value in function["Properties"]["Environment"]["Variables"].items():
        if isinstance(value, dict):
            (kind, target), = value.items()
            value = refs[target if kind == "Ref" else target[0]]
        resolved[key] = value
    return resolved


def choose(definition: dict[str, Any], state_input: dict[str, Any], choice_name: str = "Which job?") -> str:
    """The state the Choice ``choice_name`` goes to for this input."""
    choice = definition["States"][choice_name]
    for rule in choice["Choices"]:
        value = lookup(rule["Variable"], state_input)
        if value == rule.get("StringEquals", rule.get("BooleanEquals", object())):
            return rule["Next"]
    return choice["Default"]


def to_api(value: Any, shape: Any) -> Any:
    """Step Functions' PascalCase SDK parameters as the API's member names (matched case-insensitively)."""
    if shape.type_name == "structure":
        members = {name.lower(): name for name in shape.members}
        return {members[k.lower()]: to_api(v, shape.members[members[k.lower()]]) for k, v in value.items()}
    if shape.type_name == "list":
        return [to_api(item, shape.member) for item in value]
    if shape.type_name == "map":
        return {k: to_api(v, shape.value) for k, v in value.items()}
    return value


def container_environment(template: dict[str, Any], request: dict[str, Any], node_index: int | None) -> dict[str, str]:
    """What the container sees: the job definition's environment, the overrides, and Batch's own variables."""
    definitions = {d["Properties"]["Type"]: d["Properties"] for d in resources_of_type(template, "AWS::Batch::JobDefinition").values()}
    if node_index is None:
        base = definitions["container"]["ContainerProperties"]["Environment"]
        overrides = request["containerOverrides"]["environment"]
        batch = {"AWS_BATCH_JOB_ID": "1234"}
    else:
        base = definitions["multinode"]["NodeProperties"]["NodeRangeProperties"][0]["Container"]["Environment"]
        (node_overrides,) = request["nodeOverrides"]["nodePropertyOverrides"]
        assert node_overrides["targetNodes"] == "0:"
        overrides = node_overrides["containerOverrides"]["environment"]
        batch = {
            "AWS_BATCH_JOB_ID": f"1234#{node_index}",
            "AWS_BATCH_JOB_NODE_INDEX": str(node_index),
            "AWS_BATCH_JOB_NUM_NODES": str(request["nodeOverrides"]["numNodes"]),
            "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
        }
        if node_index != 0:
            batch["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = "10.0.1.23"
    environment = {e["Name"]: e["Value"] if isinstance(e["Value"], str) else REGION for e in base}
    environment.update({e["name"]: e["value"] for e in overrides})
    return {**environment, **batch}


def run_hops(template: dict[str, Any], spec_document: dict[str, Any], s3: Any, monkeypatch: pytest.MonkeyPatch) -> dict:
    refs = resource_names(template)
    definition = definition_with(template, refs)

    entry = load_lambda_module("entry")
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="workbench", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    vams_event = {"body": {"TaskToken": CALLER_TOKEN, "inputParameters": json.dumps(spec_document)}}
    response = entry.start_job(vams_event, machine, sfn)
    assert response["statusCode"] == 200, response
    job_id = json.loads(response["body"])["jobId"]
    execution = json.loads(response["body"])["executionArn"]
    state_input = json.loads(sfn.describe_execution(executionArn=execution)["input"])
    assert state_input == {"jobId": job_id, "inputParameters": spec_document, "callerTaskToken": CALLER_TOKEN}

    prepare = load_lambda_module("prepare")
    for key, value in lambda_environment(template, "PrepareFunction", refs).items():
        monkeypatch.setenv(key, value)
    payload = render(definition["States"]["Validate and prepare"]["Parameters"], state_input, {})
    assert "callerTaskToken" not in json.dumps(payload)
    prepared = prepare.prepare(payload, prepare.Settings.from_environment(), s3)
    state_input = {**state_input, "prepared": json.loads(json.dumps(prepared))}

    submit_state = definition["States"][choose(definition, state_input, "How is the job submitted?")]
    parameters = render(submit_state["Parameters"], state_input, {})  # no token: the context has none to give
    request = valid_request("batch", "SubmitJob", parameters)
    assert TOKEN not in json.dumps(request) and CALLER_TOKEN not in json.dumps(request)

    run_state = definition["States"][choose(definition, state_input)]
    stored = valid_request("ssm", "PutParameter", render(run_state["Parameters"], state_input, {"Task": {"Token": TOKEN}}))
    assert stored == {"Name": prepared["tokenParameters"]["run"], "Value": TOKEN, "Type": "SecureString", "Overwrite": True}
    keep = render(definition["States"]["Keep the caller's token"]["Parameters"], state_input, {})
    assert valid_request("ssm", "PutParameter", keep)["Value"] == CALLER_TOKEN
    return {"job_id": job_id, "prepared": prepared, "state": run_state, "request": request}


def valid_request(service: str, operation_name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Step Functions' SDK parameters as the API request, checked against botocore's model of the operation."""
    operation = botocore.session.get_session().get_service_model(service).operation_model(operation_name)
    request = to_api(parameters, operation.input_shape)
    report = ParamValidator().validate(request, operation.input_shape)
    assert not report.has_errors(), report.generate_report()
    return request


def runner_settings(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path) -> Any:
    from workbench.runner.__main__ import settings_from

    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return settings_from(["--work-dir", str(tmp_path / "work")], environment)


def test_single_node_training_from_vams_event_to_runner(template, aws, monkeypatch, tmp_path):
    document = {
        "trainingConfig": {"mode": "train", "task": "Isaac-Cartpole-Direct-v0", "numEnvs": 1024, "maxIterations": 50},
        "customEnvironmentS3Uri": PACKAGE,
    }
    hops = run_hops(template, document, aws, monkeypatch)
    job_id, request = hops["job_id"], hops["request"]
    assert hops["state"]["TimeoutSeconds"] == 28800 and hops["state"]["HeartbeatSeconds"] == 1800
    assert request["jobDefinition"] == SINGLE and request["jobQueue"] == QUEUE
    assert request["jobName"] == f"workbench-{job_id}"
    assert request["timeout"]["attemptDurationSeconds"] > 28800
    assert {"type": "GPU", "value": "1"} in request["containerOverrides"]["resourceRequirements"]

    environment = container_environment(template, request, node_index=None)
    assert "WORKBENCH_TASK_TOKEN" not in environment
    assert environment["WORKBENCH_TASK_TOKEN_PARAMETER"] == hops["prepared"]["tokenParameters"]["run"].rsplit("/", 1)[0]
    assert environment["WORKBENCH_OUTPUT_URI"] == f"s3://{BUCKET}/outputs/{job_id}"
    assert environment["WORKBENCH_CHECKPOINT_DIR"] == f"/mnt/efs/checkpoints/{job_id}"
    settings = runner_settings(environment, monkeypatch, tmp_path)
    assert settings.job_id == job_id
    assert parse_spec(settings.spec_text) == parse_spec(document)
    assert str(settings.checkpoint_dir) == f"/mnt/efs/checkpoints/{job_id}"
    assert settings.heartbeat_interval == 300 and settings.heartbeat_timeout == 1800
    assert type(settings.channel).__name__ == "StepFunctionsChannel" and settings.channel.reports_end
    assert type(settings.storage).__name__ == "S3Storage"
    assert TOKEN not in settings.spec_text and TOKEN not in repr(settings.channel)


def test_multi_node_training_reaches_every_node_and_only_the_main_node_reports(template, aws, monkeypatch, tmp_path):
    from workbench.runner.multinode import node_context_from_env

    document = {
        "trainingConfig": {"mode": "train", "task": "Isaac-Ant-v0", "numEnvs": 4096},
        "computeConfig": {"numNodes": 3, "gpusPerNode": 4},
    }
    hops = run_hops(template, document, aws, monkeypatch)
    request = hops["request"]
    assert hops["state"]["TimeoutSeconds"] == 28800
    assert request["jobDefinition"] == MULTI
    assert "containerOverrides" not in request
    assert request["nodeOverrides"]["numNodes"] == 3
    (overrides,) = request["nodeOverrides"]["nodePropertyOverrides"]
    assert {"type": "GPU", "value": "4"} in overrides["containerOverrides"]["resourceRequirements"]

    for node_index in (0, 2):
        environment = container_environment(template, request, node_index)
        assert environment["WORKBENCH_TASK_TOKEN_PARAMETER"].endswith(f"/jobs/{hops['job_id']}")
        context = node_context_from_env(environment, local_address="10.0.1.23")
        assert (context.num_nodes, context.node_index, context.is_main) == (3, node_index, node_index == 0)
        settings = runner_settings(environment, monkeypatch, tmp_path / str(node_index))
        assert settings.channel.reports_end is (node_index == 0)
        assert parse_spec(settings.spec_text).num_nodes == 3


def test_evaluation_gets_the_evaluation_timeout(template, aws, monkeypatch):
    document = {"trainingConfig": {"mode": "evaluate", "task": "Isaac-Cartpole-Direct", "policyS3Uri": PACKAGE.replace(".tar.gz", ".pt")}}
    aws.put_object(Bucket=BUCKET, Key="inputs/my_env-1.0.pt", Body=b"policy")
    hops = run_hops(template, document, aws, monkeypatch)
    assert hops["state"]["TimeoutSeconds"] == 7200
    assert hops["request"]["jobDefinition"] == SINGLE
    assert 7200 < hops["request"]["timeout"]["attemptDurationSeconds"] < 28800


def test_the_token_parameter_names_agree_across_prepare_the_runner_and_the_batch_failure_hook():
    from workbench.transport import sfn_channel

    prepare = load_lambda_module("prepare")
    batch_events = load_lambda_module("batch_events")
    assert prepare.TOKEN_PARAMETER_SUFFIXES == sfn_channel.PARAMETER_SUFFIXES
    assert prepare.TOKEN_PARAMETER_VARIABLE == sfn_channel.PARAMETER_VARIABLE == batch_events.TOKEN_PARAMETER_VARIABLE
    assert (batch_events.RUN_TOKEN_SUFFIX, batch_events.START_TOKEN_SUFFIX) == (
        prepare.TOKEN_PARAMETER_SUFFIXES["run"], prepare.TOKEN_PARAMETER_SUFFIXES["start"])
