"""The contract with VAMS, written from VAMS's source (awslabs/visual-asset-management-system, commit
b00eb46a396ac6f777daf1a5bbc925037836810f, 2026-04-23). Files read:

- ``backend/backend/handlers/workflows/importGlobalPipelineWorkflow.py``: the global pipeline/workflow import
  function (``parse_custom_resource_event``, ``validate_pipeline_parameters``, ``validate_workflow_parameters``,
  ``lambda_handler``, which answers ``{"statusCode", "body": "<JSON text>"}`` and never raises).
- ``backend/backend/models/pipelines.py`` (``CreatePipelineRequestModel``), ``backend/backend/models/workflows.py``
  (``CreateWorkflowRequestModel``) and ``backend/backend/common/validators.py`` (``id_pattern``,
  ``file_type_pattern``): what createPipeline/createWorkflow check after the import function forwards the values.
- ``backend/backend/handlers/workflows/createWorkflow.py`` (``generate_workflow_asl``) and
  ``backend/backend/common/stepfunctions_builder.py`` (``build_payload``, ``apply_callback``,
  ``_apply_callback_timeout``, ``LambdaTaskBuilder``): the workflow state that invokes the pipeline Lambda.
- ``backend/backend/handlers/workflows/executeWorkflow.py`` (``launchWorkflow``): the workflow execution's input.
- ``backendPipelines/*/lambda/pipelineEnd.py``: how VAMS's own pipelines close the token.

What each test proves is in its name and docstring.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from asl import all_states
from botocore.exceptions import ClientError
from infra_configs import IMPORT_FUNCTION, REGION
from workbench_infra.lambda_modules import load_lambda_module
from workbench_infra.synth import resources_of_type

entry = load_lambda_module("entry")
registration = load_lambda_module("registration")

# --- VAMS's import validation, as data (importGlobalPipelineWorkflow.py unless noted) --------------------------
REQUIRED_PIPELINE_FIELDS = (  # validate_pipeline_parameters: present and non-empty
    "pipelineId", "pipelineDescription", "pipelineType", "pipelineExecutionType", "assetType", "outputType",
    "waitForCallback",
)
REQUIRED_WORKFLOW_FIELDS = ("workflowId", "workflowDescription")  # validate_workflow_parameters
ALLOWED_VALUES = {
    "pipelineType": {"standardFile", "previewFile"},
    "pipelineExecutionType": {"Lambda", "SQS", "EventBridge"},
    "waitForCallback": {"Enabled", "Disabled"},
}
STRING_FIELDS = (  # sanitize_and_set_defaults strips these; the timeouts are read with .strip()/.isdigit()
    "pipelineId", "pipelineDescription", "workflowId", "workflowDescription", "pipelineType",
    "pipelineExecutionType", "assetType", "outputType", "waitForCallback", "lambdaName", "taskTimeout",
    "taskHeartbeatTimeout", "inputParameters",
)
ID_PATTERN = re.compile(r"^[-_a-zA-Z0-9]{3,63}$")  # validators.id_pattern
ID_LENGTH = (4, 64)  # Field(min_length=4, max_length=64) on pipelineId and workflowId; import itself: 3..63
DESCRIPTION_LENGTH = (4, 256)  # Field(min_length=4, max_length=256) on description (STRING_256)
FILE_TYPE_PATTERN = re.compile(r"^[\.]([a-zA-Z0-9]){1,7}$")  # validators.file_type_pattern (FILE_EXTENSION)
MAX_TASK_TIMEOUT_SECONDS = 604800  # CreatePipelineRequestModel.MAX_TASK_TIMEOUT_SECONDS (one week)
VAMS_APP_NAME = "vams"  # VAMS's workflow role may invoke only functions named *<config.name>* (default "vams")
CFN_EVENT_FIELDS = ("RequestType", "ResourceProperties", "ResponseURL", "StackId", "RequestId", "LogicalResourceId")


def vams_import_problems(properties: dict[str, Any]) -> list[str]:
    """Every reason VAMS's import (and the createPipeline/createWorkflow models behind it) would refuse these."""
    problems = []
    for field in REQUIRED_PIPELINE_FIELDS + REQUIRED_WORKFLOW_FIELDS:
        if not properties.get(field):
            problems.append(f"Missing required field: {field}")
    for field in STRING_FIELDS:
        if field in properties and not isinstance(properties[field], str):
            problems.append(f"{field} must be a string, not {type(properties[field]).__name__}")
    if problems:
        return problems
    for field, allowed in ALLOWED_VALUES.items():
        if properties[field] not in allowed:
            problems.append(f"Invalid {field}")
    if properties["pipelineExecutionType"] == "Lambda" and not properties.get("lambdaName"):
        problems.append("Missing required pipeline field for Lambda execution type: lambdaName")
    for field in ("pipelineId", "workflowId"):
        value = properties[field]
        if not ID_PATTERN.fullmatch(value) or not ID_LENGTH[0] <= len(value) <= ID_LENGTH[1]:
            problems.append(f"{field} must follow {ID_PATTERN.pattern} with {ID_LENGTH[0]}-{ID_LENGTH[1]} characters")
    for field in ("pipelineDescription", "workflowDescription"):
        if not DESCRIPTION_LENGTH[0] <= len(properties[field]) <= DESCRIPTION_LENGTH[1]:
            problems.append(f"{field} must have {DESCRIPTION_LENGTH[0]}-{DESCRIPTION_LENGTH[1]} characters")
    for field in ("assetType", "outputType"):
        if not FILE_TYPE_PATTERN.fullmatch(properties[field]):
            problems.append(f"{field} must follow {FILE_TYPE_PATTERN.pattern}")
    timeouts = {}
    for field in ("taskTimeout", "taskHeartbeatTimeout"):
        value = properties.get(field, "").strip()
        if value:
            if not value.isdigit() or int(value) <= 0:
                problems.append(f"{field} must be a positive integer")
            else:
                timeouts[field] = int(value)
    if timeouts.get("taskTimeout", 0) > MAX_TASK_TIMEOUT_SECONDS:
        problems.append(f"taskTimeout cannot exceed {MAX_TASK_TIMEOUT_SECONDS} seconds (1 week)")
    if len(timeouts) == 2 and timeouts["taskHeartbeatTimeout"] >= timeouts["taskTimeout"]:
        problems.append("taskHeartbeatTimeout must be less than taskTimeout")
    if properties.get("inputParameters"):
        try:
            json.loads(properties["inputParameters"])
        except ValueError:
            problems.append("inputParameters must be valid JSON")
    return problems


def vams_import_answer(event: dict[str, Any]) -> dict[str, Any]:
    """VAMS's ``lambda_handler`` answer for an event, limited to its validation (the shapes it returns)."""
    missing = [field for field in CFN_EVENT_FIELDS if field not in event]
    if missing:
        return {"statusCode": 400, "body": json.dumps({"error": f"Missing required field: {missing[0]}"})}
    if event["RequestType"] == "Delete":
        result = {"operation": "DELETE", "status": "SUCCESS", "message": "Successfully deleted pipeline"}
        return {"statusCode": 200, "body": json.dumps(result)}
    problems = vams_import_problems(event["ResourceProperties"])
    if problems:
        return {"statusCode": 400, "body": json.dumps({"error": problems[0]})}
    result = {"operation": "CREATE", "status": "SUCCESS", "message": "Successfully created pipeline and workflow"}
    return {"statusCode": 200, "body": json.dumps(result)}


# --- the template -----------------------------------------------------------------------------------------------
def registrations(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The registration custom resources' properties by pipeline id, ``lambdaName`` resolved to the function name."""
    found = {}
    for resource in resources_of_type(template, "AWS::CloudFormation::CustomResource").values():
        properties = dict(resource["Properties"])
        properties.pop("ServiceToken")
        name = properties["lambdaName"]
        if isinstance(name, dict):
            properties["lambdaName"] = template["Resources"][name["Ref"]]["Properties"]["FunctionName"]
        found[properties["pipelineId"]] = properties
    assert set(found) == {"isaaclab-training", "isaaclab-evaluation"}
    return found


ISSUE_REGISTRATION = {
    "pipelineId": "isaaclab-training", "pipelineDescription": "Isaac Lab RL training", "pipelineType": "standardFile",
    "pipelineExecutionType": "Lambda", "assetType": ".all", "outputType": ".pt", "waitForCallback": "Enabled",
    "lambdaName": "vamsExecuteIsaacLabWorkbench", "taskTimeout": "28800", "taskHeartbeatTimeout": "28800",
    "inputParameters": "{}", "workflowId": "isaaclab-training", "workflowDescription": "Train a policy",
}
"""The registration as the issue found it (heartbeat timeout equal to the timeout), which VAMS refused."""


def test_the_registered_properties_satisfy_every_vams_import_rule(template):
    for pipeline_id, properties in registrations(template).items():
        assert vams_import_problems(properties) == [], pipeline_id
        assert properties["pipelineExecutionType"] == "Lambda" and properties["waitForCallback"] == "Enabled"
        assert VAMS_APP_NAME in properties["lambdaName"], "VAMS's workflow role could not invoke the entry Lambda"


def test_the_rules_refuse_what_vams_refused_before_the_fix():
    """The issue's values (heartbeat timeout equal to the timeout) fail the encoded rules with VAMS's message."""
    properties = dict(ISSUE_REGISTRATION)
    assert vams_import_problems(properties) == ["taskHeartbeatTimeout must be less than taskTimeout"]
    assert vams_import_problems({**properties, "taskTimeout": "604801", "taskHeartbeatTimeout": "3600"}) == [
        "taskTimeout cannot exceed 604800 seconds (1 week)"
    ]
    assert vams_import_problems({**properties, "taskTimeout": 28800}) == ["taskTimeout must be a string, not int"]


def test_vams_waits_longer_than_the_state_machine_runs_and_heartbeats_are_frequent_enough(template, definition):
    """VAMS's taskTimeout is its maximum and covers the whole internal execution; the heartbeat timeout leaves
    room for several caller heartbeats (at least every 300 s while queued and running)."""
    from workbench_infra.compute import HEARTBEAT_INTERVAL_SECONDS

    for properties in registrations(template).values():
        timeout, heartbeat = int(properties["taskTimeout"]), int(properties["taskHeartbeatTimeout"])
        assert timeout == MAX_TASK_TIMEOUT_SECONDS
        assert timeout >= definition.get("TimeoutSeconds", 0)
        assert HEARTBEAT_INTERVAL_SECONDS * 4 <= heartbeat < timeout


def test_registration_goes_through_our_lambda_which_may_invoke_only_vams_import_function(template):
    resources = template["Resources"]
    (registration_function,) = [
        k for k, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function"
        and registration.IMPORT_FUNCTION_VARIABLE in r["Properties"].get("Environment", {}).get("Variables", {})
    ]
    variables = resources[registration_function]["Properties"]["Environment"]["Variables"]
    assert variables[registration.IMPORT_FUNCTION_VARIABLE] == IMPORT_FUNCTION
    assert resources[registration_function]["Properties"]["Timeout"] == 900
    for resource in resources_of_type(template, "AWS::CloudFormation::CustomResource").values():
        framework = resources[resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]]
        user_function = framework["Properties"]["Environment"]["Variables"]["USER_ON_EVENT_FUNCTION_ARN"]
        assert user_function == {"Fn::GetAtt": [registration_function, "Arn"]}
    role = resources[registration_function]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for p in resources_of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert [s["Action"] for s in statements] == ["lambda:InvokeFunction"]
    (resource,) = [statements[0]["Resource"]]
    rendered = json.dumps(resource)
    assert rendered.endswith(f':function:{IMPORT_FUNCTION}"]]}}') and "*" not in rendered


# --- the registration Lambda ------------------------------------------------------------------------------------
def cfn_event(request: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The provider framework's event for our handler (it passes CloudFormation's request with ResponseURL)."""
    return {
        "RequestType": request,
        "ServiceToken": "arn:aws:lambda:us-west-2:123456789012:function:framework-onEvent",
        "ResponseURL": "https://cloudformation-custom-resource-response-uswest2.s3.amazonaws.com/presigned",
        "StackId": "arn:aws:cloudformation:us-west-2:123456789012:stack/WorkbenchTest/1",
        "RequestId": "request-1",
        "LogicalResourceId": "IsaacLabVamsRegistrationisaaclabtraining",
        "ResourceType": "AWS::CloudFormation::CustomResource",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...:framework-onEvent", **properties},
        **extra,
    }


class Recorder:
    """An :data:`Invoke` answering like VAMS's import function (or with ``answer``), recording the events."""

    def __init__(self, answer: Any = None, function_error: str | None = None, raises: Exception | None = None):
        self.events: list[dict[str, Any]] = []
        self.answer, self.function_error, self.raises = answer, function_error, raises

    def __call__(self, event: dict[str, Any]) -> tuple[str | None, Any]:
        self.events.append(json.loads(json.dumps(event)))
        if self.raises:
            raise self.raises
        return self.function_error, self.answer if self.answer is not None else vams_import_answer(event)


def test_the_registration_lambda_registers_the_templates_properties_and_vams_never_answers_cloudformation(template):
    for pipeline_id, properties in registrations(template).items():
        invoke = Recorder()
        answer = registration.on_event(cfn_event("Create", properties), invoke)
        assert answer["PhysicalResourceId"] == pipeline_id
        (sent,) = invoke.events
        assert all(field in sent for field in CFN_EVENT_FIELDS)
        assert sent["ResourceProperties"]["taskHeartbeatTimeout"] == properties["taskHeartbeatTimeout"]
        assert "://" not in sent["ResponseURL"]  # VAMS's own PUT to CloudFormation cannot happen


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            {"statusCode": 400, "body": json.dumps({"error": "taskHeartbeatTimeout must be less than taskTimeout"})},
            "statusCode 400): taskHeartbeatTimeout must be less than taskTimeout",
        ),
        (
            {"statusCode": 500, "body": json.dumps({"error": "Pipeline isaaclab-training already exists. Use UPDATE operation to modify it."})},
            "already exists",
        ),
        ({"statusCode": 403, "body": json.dumps({"error": "Not authorized"})}, "statusCode 403): Not authorized"),
        ({"statusCode": 500, "body": json.dumps({"error": "Internal server error"})}, "Internal server error"),
    ],
)
def test_a_vams_refusal_fails_the_deployment_with_vams_message(answer, message):
    properties = {"pipelineId": "isaaclab-training", "workflowId": "isaaclab-training"}
    for request, extra in (("Create", {}), ("Update", {"PhysicalResourceId": "isaaclab-training", "OldResourceProperties": properties})):
        with pytest.raises(registration.RegistrationError, match=re.escape(message)):
            registration.on_event(cfn_event(request, properties, **extra), Recorder(answer=answer))


def test_the_issues_registration_fails_the_deployment_instead_of_succeeding_with_nothing_registered():
    properties = dict(ISSUE_REGISTRATION)
    with pytest.raises(registration.RegistrationError, match="taskHeartbeatTimeout must be less than taskTimeout"):
        registration.on_event(cfn_event("Create", properties), Recorder())


def test_a_crash_or_an_unreachable_import_function_fails_the_deployment():
    properties = {"pipelineId": "isaaclab-training", "workflowId": "isaaclab-training"}
    crash = Recorder(answer={"errorMessage": "'StackId'", "errorType": "KeyError", "requestId": "r"}, function_error="Unhandled")
    with pytest.raises(registration.RegistrationError, match="failed \\(Unhandled\\).*KeyError: 'StackId'"):
        registration.on_event(cfn_event("Create", properties), crash)
    missing = ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "Function not found"}}, "Invoke")
    with pytest.raises(registration.RegistrationError, match="could not be invoked.*Function not found"):
        registration.on_event(cfn_event("Create", properties), Recorder(raises=missing))
    with pytest.raises(registration.RegistrationError, match="unexpected answer"):
        registration.on_event(cfn_event("Create", properties), Recorder(answer="null-ish"))


def test_update_keeps_the_physical_id_unless_the_pipeline_id_changes():
    old = {"pipelineId": "isaaclab-training", "workflowId": "isaaclab-training"}
    ok = {"statusCode": 200, "body": json.dumps({"operation": "UPDATE", "status": "SUCCESS", "message": "updated"})}
    same = cfn_event("Update", old, PhysicalResourceId="legacy-request-id", OldResourceProperties=old)
    assert registration.on_event(same, Recorder(answer=ok))["PhysicalResourceId"] == "legacy-request-id"
    renamed = cfn_event("Update", {**old, "pipelineId": "isaaclab-train2"}, PhysicalResourceId="isaaclab-training", OldResourceProperties=old)
    assert registration.on_event(renamed, Recorder(answer=ok))["PhysicalResourceId"] == "isaaclab-train2"


def test_delete_never_fails_the_stack_and_skips_resources_whose_create_failed():
    properties = {"pipelineId": "isaaclab-training", "workflowId": "isaaclab-training"}
    for invoke in (
        Recorder(answer={"statusCode": 400, "body": json.dumps({"error": "Missing required field for DELETE: pipelineId"})}),
        Recorder(raises=ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "gone"}}, "Invoke")),
        Recorder(answer={"statusCode": 200, "body": json.dumps({"status": "SUCCESS_WITH_WARNINGS", "warnings": ["x"]})}),
    ):
        event = cfn_event("Delete", properties, PhysicalResourceId="isaaclab-training")
        assert registration.on_event(event, invoke) == {"PhysicalResourceId": "isaaclab-training"}
        assert invoke.events[0]["RequestType"] == "Delete"
    never_created = Recorder()
    marker = "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"
    assert registration.on_event(cfn_event("Delete", properties, PhysicalResourceId=marker), never_created) == {
        "PhysicalResourceId": marker
    }
    assert never_created.events == []


def test_the_boto3_invoker_reads_vams_answer_and_lambda_errors():
    class Client:
        def __init__(self, response):
            self.response, self.calls = response, []

        def invoke(self, **kwargs):
            self.calls.append(kwargs)
            return self.response

    answer = {"statusCode": 400, "body": json.dumps({"error": "inputParameters must be valid JSON"})}
    client = Client({"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())})
    assert registration.lambda_invoker(client, IMPORT_FUNCTION)({"RequestType": "Create"}) == (None, answer)
    assert client.calls[0]["FunctionName"] == IMPORT_FUNCTION and client.calls[0]["InvocationType"] == "RequestResponse"
    crash = {"errorMessage": "Task timed out after 900.00 seconds", "errorType": "Sandbox.Timedout"}
    client = Client({"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(crash).encode())})
    assert registration.lambda_invoker(client, IMPORT_FUNCTION)({}) == ("Unhandled", crash)


# --- the pipeline Lambda's event (createWorkflow.generate_workflow_asl + stepfunctions_builder) ------------------
def vams_execution_input(input_metadata: dict[str, Any]) -> dict[str, Any]:
    """executeWorkflow.launchWorkflow's ``start_execution`` input (``inputMetadata`` is JSON text)."""
    return {
        "bucketAsset": "vams-asset-bucket",
        "bucketAssetAuxiliary": "vams-auxiliary-bucket",
        "inputAssetLocationKey": "db1/asset-1/",
        "inputAssetFileKey": "db1/asset-1/policy.pt",
        "databaseId": "db1",
        "assetId": "asset-1",
        "inputMetadata": json.dumps(input_metadata),
        "workflowDatabaseId": "GLOBAL",
        "workflowId": "isaaclab-training",
        "executingUserName": "alice",
        "executingRequestContext": {"http": {"method": "POST", "path": "/database/db1/assets/asset-1/workflows/x"}},
    }


def vams_pipeline_event(pipeline: dict[str, Any], execution: dict[str, Any], execution_name: str, token: str) -> dict:
    """The Lambda task's ``Payload`` as VAMS's workflow renders it for the first (only) pipeline of a workflow:
    ``{"body": {...}}`` with ``body`` an object, ``inputParameters`` the registered JSON text (or ``""``),
    ``inputMetadata`` JSON text, ``executingRequestContext`` an object and the task token at ``body.TaskToken``."""
    name, job = pipeline["pipelineId"], f"1a2b3-{pipeline['pipelineId']}"
    output = f"s3://{execution['bucketAsset']}/pipelines/{name}/{job}/output/{execution_name}"
    body = {
        "inputS3AssetFilePath": f"s3://{execution['bucketAsset']}/{execution['inputAssetFileKey']}",
        "outputS3AssetFilesPath": f"{output}/files/",
        "outputS3AssetPreviewPath": f"{output}/previews/",
        "outputS3AssetMetadataPath": f"{output}/metadata/",
        "inputOutputS3AssetAuxiliaryFilesPath": (
            f"s3://{execution['bucketAssetAuxiliary']}/{execution['inputAssetFileKey']}/pipelines/{name}/"
        ),
        **{key: execution[key] for key in (
            "bucketAssetAuxiliary", "bucketAsset", "assetId", "databaseId", "workflowDatabaseId", "workflowId",
            "inputAssetFileKey", "inputAssetLocationKey", "inputMetadata", "executingUserName",
            "executingRequestContext",
        )},
        "outputType": pipeline["outputType"],
        "inputParameters": pipeline.get("inputParameters", ""),
    }
    if pipeline["waitForCallback"] == "Enabled":
        body["TaskToken"] = token
    return {"body": body}


def test_the_entry_lambda_accepts_vams_exact_event_and_starts_the_job(template, sfn):
    client, machine = sfn
    metadata = {"VAMS": {"assetData": {"assetName": "a", "description": "", "tags": []}, "assetMetadata": {}}}
    for pipeline in registrations(template).values():
        token = f"VAMS-TASK-TOKEN-{pipeline['pipelineId']}"
        event = vams_pipeline_event(pipeline, vams_execution_input(metadata), "exec-1", token)
        response = entry.start_job(json.loads(json.dumps(event)), machine, client)
        assert response["statusCode"] == 200, response
        started = json.loads(response["body"])
        state_input = json.loads(client.describe_execution(executionArn=started["executionArn"])["input"])
        assert state_input == {
            "jobId": started["jobId"],
            "inputParameters": json.loads(pipeline["inputParameters"]),
            "callerTaskToken": token,
        }


def test_the_entry_lambda_takes_vams_empty_input_parameters_as_the_default_spec(template, sfn):
    client, machine = sfn
    pipeline = {**registrations(template)["isaaclab-training"], "inputParameters": ""}
    event = vams_pipeline_event(pipeline, vams_execution_input({}), "exec-2", "T")
    response = entry.start_job(event, machine, client)
    state_input = json.loads(client.describe_execution(executionArn=json.loads(response["body"])["executionArn"])["input"])
    assert state_input["inputParameters"] == {} and state_input["callerTaskToken"] == "T"


# --- the callbacks (stepfunctions_builder.LambdaTaskBuilder: ResultPath $.<state>.output, Catch States.ALL) ----
def state(definition: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [s for n, s in all_states(definition) if n == name]
    return found


def test_success_is_reported_to_the_callers_token_as_json_text(definition):
    """VAMS stores the SendTaskSuccess output at ``$.<state>.output`` and reads nothing from it (its
    process-outputs state uses the execution input); it must only be JSON text, which States.JsonToString is."""
    report = state(definition, "Report the success to the caller")
    assert report["Resource"].endswith(":states:::aws-sdk:sfn:sendTaskSuccess")
    parameters = report["Parameters"]
    assert "caller" in parameters["TaskToken.$"].lower()
    assert set(parameters) == {"TaskToken.$", "Output.$"}
    assert parameters["Output.$"].startswith("States.JsonToString($.")


def test_failure_is_reported_to_the_callers_token_with_error_and_cause(definition):
    """VAMS catches every error name (``States.ALL``) into its WorkflowProcessingJobFailed state."""
    report = state(definition, "Report the failure to the caller")
    assert report["Resource"].endswith(":states:::aws-sdk:sfn:sendTaskFailure")
    parameters = report["Parameters"]
    assert "caller" in parameters["TaskToken.$"].lower()
    assert {"Error.$", "Cause.$"} <= set(parameters)


# --- VAMS's retries (LambdaTaskBuilder: Retry States.ALL, IntervalSeconds 5, BackoffRate 2, MaxAttempts 2) --------
class RecordingCallbacks:
    """The moto client with its ``send_task_*`` calls recorded: moto accepts any token and keeps nothing, and the
    tokens here are VAMS's, which no moto execution issued."""

    def __init__(self, client: Any):
        self.client, self.calls = client, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def send_task_failure(self, **kwargs: Any) -> Any:
        self.calls.append(("failure", kwargs))
        return self.client.send_task_failure(**kwargs)

    def send_task_success(self, **kwargs: Any) -> Any:
        self.calls.append(("success", kwargs))
        return self.client.send_task_success(**kwargs)


def end_execution(arn: str, status: str, **fields: Any) -> None:
    """End a moto execution as the state machine would (in-process moto cannot run one): status, error, cause, output."""
    from datetime import datetime, timezone

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.stepfunctions.models import stepfunctions_backends

    execution = stepfunctions_backends[DEFAULT_ACCOUNT_ID][REGION].describe_execution(arn)
    execution.status, execution.stop_date = status, datetime.now(timezone.utc)
    for name, value in fields.items():
        setattr(execution, name, value)


def training_event(template, execution_name: str, token: str) -> dict[str, Any]:
    pipeline = registrations(template)["isaaclab-training"]
    return vams_pipeline_event(pipeline, vams_execution_input({}), execution_name, token)


def executions(client, machine) -> list[dict[str, Any]]:
    return client.list_executions(stateMachineArn=machine)["executions"]


def test_vams_retries_of_one_execution_start_exactly_one_job(template, sfn, capsys):
    """The same body with a new token (VAMS's retry) starts nothing and fails the new token while the first runs;
    the same body with the same token (a repeated invocation) is the same execution. No token is logged."""
    client, machine = sfn
    recording = RecordingCallbacks(client)
    first = entry.start_job(training_event(template, "exec-1", "TOKEN-1"), machine, recording)
    assert first["statusCode"] == 200
    started = json.loads(first["body"])
    assert entry.start_job(training_event(template, "exec-1", "TOKEN-1"), machine, recording) == first
    retry = entry.start_job(training_event(template, "exec-1", "TOKEN-2"), machine, recording)
    assert retry["statusCode"] == 409
    assert json.loads(retry["body"])["jobId"] == started["jobId"]
    assert [e["executionArn"] for e in executions(client, machine)] == [started["executionArn"]]
    (call,) = recording.calls
    assert call[0] == "failure" and call[1]["taskToken"] == "TOKEN-2"
    assert f"({started['jobId']}) is still RUNNING" in call[1]["cause"]
    assert json.loads(client.describe_execution(executionArn=started["executionArn"])["input"])["callerTaskToken"] == "TOKEN-1"
    assert "TOKEN-" not in capsys.readouterr().out + retry["body"]


def test_the_retry_of_a_failed_job_fails_the_new_token_at_once_with_the_first_error_and_cause(template, sfn):
    client, machine = sfn
    recording = RecordingCallbacks(client)
    cause = "AWS Batch job workbench-x (abc) failed; exit code 137"
    failed = json.loads(entry.start_job(training_event(template, "exec-1", "T1"), machine, recording)["body"])
    end_execution(failed["executionArn"], "FAILED", error="BatchJobFailed", cause=cause)
    aborted = json.loads(entry.start_job(training_event(template, "exec-2", "T1"), machine, recording)["body"])
    client.stop_execution(executionArn=aborted["executionArn"])  # moto records no error or cause for a stop
    for name, token in (("exec-1", "T2"), ("exec-1", "T3"), ("exec-2", "T2")):
        assert entry.start_job(training_event(template, name, token), machine, recording)["statusCode"] == 409
    assert len(executions(client, machine)) == 2
    assert [(kind, sent["taskToken"], sent["error"]) for kind, sent in recording.calls] == [
        ("failure", "T2", "BatchJobFailed"), ("failure", "T3", "BatchJobFailed"), ("failure", "T2", entry.ENTRY_ERROR),
    ]
    assert recording.calls[0][1]["cause"] == f"{entry.ALREADY_FAILED}job {failed['jobId']}: {cause}"
    assert recording.calls[2][1]["cause"].startswith(entry.ALREADY_FAILED)
    assert "ended ABORTED with no cause recorded" in recording.calls[2][1]["cause"]


def test_the_retry_of_a_job_that_succeeded_gets_its_output(template, sfn):
    client, machine = sfn
    recording = RecordingCallbacks(client)
    started = json.loads(entry.start_job(training_event(template, "exec-1", "T1"), machine, recording)["body"])
    output = json.dumps({"jobId": started["jobId"], "outputUri": "s3://b/outputs/x/", "result": {"status": "COMPLETED"}})
    end_execution(started["executionArn"], "SUCCEEDED", output=output)
    answer = entry.start_job(training_event(template, "exec-1", "T2"), machine, recording)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["status"] == "SUCCEEDED"
    assert recording.calls == [("success", {"taskToken": "T2", "output": output})]
    assert len(executions(client, machine)) == 1


def test_two_vams_executions_and_two_pipelines_of_one_execution_are_separate_jobs(template, sfn):
    """The job id comes from VAMS's execution name (in ``outputS3AssetFilesPath``) and the pipeline; it is what the
    prepare Lambda accepts as a job id."""
    client, machine = sfn
    prepare = load_lambda_module("prepare")
    evaluation = registrations(template)["isaaclab-evaluation"]
    events = [
        training_event(template, "exec-1", "T1"),
        training_event(template, "exec-2", "T1"),
        vams_pipeline_event(evaluation, vams_execution_input({}), "exec-1", "T1"),
    ]
    jobs = [json.loads(entry.start_job(event, machine, client)["body"])["jobId"] for event in events]
    assert len(set(jobs)) == 3 and len(executions(client, machine)) == 3
    assert all(prepare.AWS_JOB_ID_PATTERN.match(job) for job in jobs)
    assert jobs[0] == entry.job_id_for(training_event(template, "exec-1", "another token")["body"])


def test_the_entry_role_may_read_only_its_own_executions_and_answer_a_token(synthesized):
    stack, template = synthesized.stack, synthesized.template
    role = stack.get_logical_id(stack.pipeline.orchestration.entry_function.role.node.default_child)
    actions: dict[str, str] = {}
    for policy in resources_of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
                    actions[action] = json.dumps(statement["Resource"])
    assert {"states:StartExecution", "states:DescribeExecution", "states:SendTaskFailure", "states:SendTaskSuccess"} <= set(actions)
    assert ":execution:" in actions["states:DescribeExecution"] and actions["states:DescribeExecution"].endswith(':*"]]}')
    machine = stack.get_logical_id(stack.pipeline.orchestration.state_machine.node.default_child)
    assert machine in actions["states:DescribeExecution"]
