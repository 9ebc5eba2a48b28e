"""Register one pipeline and its workflow with VAMS: the on_event handler of the registration custom resources.

CDK's provider framework invokes this Lambda with the CloudFormation custom-resource event and answers
CloudFormation with what it returns, or with FAILED and the exception's message when it raises. It forwards the
event to VAMS's global pipeline/workflow import function (``VAMS_IMPORT_FUNCTION_NAME``) and checks the answer.

Why not hand VAMS's function to the provider framework directly: VAMS's ``lambda_handler`` never raises. It
answers ``{"statusCode": 200 | 400 | 403 | 500, "body": "<JSON text>"}`` (the error in ``body.error``) and
PUTs its own SUCCESS/FAILED to the event's ``ResponseURL``; the framework, seeing no Lambda error, would PUT
SUCCESS to the same URL, so a rejected registration could leave the stack "complete" with nothing registered.
Here VAMS gets the event without a reachable ``ResponseURL`` (its own PUT fails inside VAMS and is only logged)
and this handler decides:

- Create/Update: ``statusCode`` 200 is success; anything else, a Lambda error of VAMS's function, or a failed
  invoke raises :class:`RegistrationError` with VAMS's message, so the deployment fails with it. The physical
  id is the pipeline id (as VAMS's own handler chooses); an Update keeps the current one unless the pipeline id
  changed (then CloudFormation deletes the old registration).
- Delete: VAMS deletes the workflow and the pipeline and reports partial failures as warnings; any failure here
  (VAMS answering an error, VAMS's function gone) is logged and the deletion succeeds, so a stack can always be
  deleted. A resource whose Create failed (the framework's ``AWSCDK::...`` physical ids) registered nothing and
  is not sent to VAMS: a Create refused because the pipeline id already exists must not delete that pipeline.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

IMPORT_FUNCTION_VARIABLE = "VAMS_IMPORT_FUNCTION_NAME"
NO_RESPONSE_URL = "..."
"""Given to VAMS as ``ResponseURL`` (VAMS requires the field): not a URL, so VAMS never answers CloudFormation."""
INVOKE_READ_TIMEOUT_SECONDS = 870
"""VAMS's import function may run up to 15 minutes; this Lambda's own timeout is 900 s."""
PROVIDER_MARKER_PREFIX = "AWSCDK::"
"""Physical ids the provider framework gives resources whose Create failed or never answered: not registered."""
CLOUDFORMATION_FIELDS = (
    "RequestType",
    "ResourceProperties",
    "OldResourceProperties",
    "PhysicalResourceId",
    "StackId",
    "RequestId",
    "LogicalResourceId",
    "ResourceType",
)

Invoke = Callable[[dict[str, Any]], tuple[str | None, Any]]
"""Invoke VAMS's import function with an event: ``(FunctionError or None, the decoded answer)``."""


class RegistrationError(Exception):
    """VAMS did not register the pipeline; the message (VAMS's own reason) becomes the deployment's failure."""


def on_event(event: dict[str, Any], invoke: Invoke) -> dict[str, Any]:
    """Handle one custom-resource event; returns the provider framework's answer (``PhysicalResourceId``, ``Data``)."""
    request = event.get("RequestType")
    properties = event.get("ResourceProperties") or {}
    pipeline_id = properties.get("pipelineId")
    if request not in ("Create", "Update", "Delete"):
        raise RegistrationError(f"unknown RequestType {request!r}")
    vams_event = {key: event[key] for key in CLOUDFORMATION_FIELDS if key in event}
    vams_event["ResponseURL"] = NO_RESPONSE_URL
    if request == "Delete":
        return _delete(event, vams_event, invoke)
    outcome = _call(vams_event, invoke, f"register pipeline {pipeline_id!r}")
    print(json.dumps({"request": request, "pipelineId": pipeline_id, "vams": outcome}))
    return {"PhysicalResourceId": _physical_id(event), "Data": {"pipelineId": pipeline_id, "message": outcome}}


def lambda_invoker(lambda_client: Any, function_name: str) -> Invoke:
    """An :data:`Invoke` calling ``function_name`` synchronously through a boto3 Lambda client."""

    def invoke(payload: dict[str, Any]) -> tuple[str | None, Any]:
        response = lambda_client.invoke(
            FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
        )
        text = response["Payload"].read().decode("utf-8", errors="replace") if response.get("Payload") else ""
        try:
            answer = json.loads(text) if text else None
        except ValueError:
            answer = text
        return response.get("FunctionError"), answer

    return invoke


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point."""
    import boto3
    from botocore.config import Config

    config = Config(read_timeout=INVOKE_READ_TIMEOUT_SECONDS, connect_timeout=10, retries={"total_max_attempts": 1})
    client = boto3.client("lambda", config=config)
    return on_event(event, lambda_invoker(client, os.environ[IMPORT_FUNCTION_VARIABLE]))


def _call(vams_event: dict[str, Any], invoke: Invoke, what: str) -> str:
    """Invoke VAMS; VAMS's message on success, :class:`RegistrationError` with VAMS's reason otherwise."""
    try:
        function_error, answer = invoke(vams_event)
    except Exception as exc:  # botocore errors: the function is missing, not allowed, throttled, timed out
        raise RegistrationError(f"VAMS import function could not be invoked to {what}: {exc}") from None
    if function_error:
        detail = answer if not isinstance(answer, dict) else f"{answer.get('errorType', '')}: {answer.get('errorMessage', '')}"
        raise RegistrationError(f"VAMS import function failed ({function_error}) to {what}: {detail}")
    if not isinstance(answer, dict) or "statusCode" not in answer:
        raise RegistrationError(f"VAMS import function gave an unexpected answer to {what}: {str(answer)[:500]}")
    body = _decoded(answer.get("body"))
    if answer["statusCode"] != 200:
        reason = body.get("error") or body.get("message") or answer.get("body") or "no reason given"
        raise RegistrationError(f"VAMS refused to {what} (statusCode {answer['statusCode']}): {reason}")
    message = str(body.get("message", "")) or "registered"
    if body.get("warnings"):
        message += f" (warnings: {'; '.join(map(str, body['warnings']))})"
    return message


def _delete(event: dict[str, Any], vams_event: dict[str, Any], invoke: Invoke) -> dict[str, Any]:
    physical_id = event.get("PhysicalResourceId")
    pipeline_id = (event.get("ResourceProperties") or {}).get("pipelineId")
    if str(physical_id).startswith(PROVIDER_MARKER_PREFIX):
        print(json.dumps({"request": "Delete", "pipelineId": pipeline_id, "vams": "never registered: nothing to delete"}))
        return {"PhysicalResourceId": physical_id}
    try:
        outcome = _call(vams_event, invoke, f"delete pipeline {pipeline_id!r}")
    except RegistrationError as exc:
        outcome = f"not deleted in VAMS, deletion continues: {exc}"
    print(json.dumps({"request": "Delete", "pipelineId": pipeline_id, "vams": outcome}))
    return {"PhysicalResourceId": physical_id}


def _physical_id(event: dict[str, Any]) -> str:
    pipeline_id = event["ResourceProperties"]["pipelineId"]
    if event["RequestType"] == "Update":
        old_id = (event.get("OldResourceProperties") or {}).get("pipelineId")
        if old_id == pipeline_id and event.get("PhysicalResourceId"):
            return event["PhysicalResourceId"]
    return pipeline_id


def _decoded(body: Any) -> dict[str, Any]:
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return {"message": body}
    return body if isinstance(body, dict) else {}
