"""The VAMS pipeline entry point: start the internal state machine with the caller's task token.

VAMS invokes this Lambda with ``{"body": {"TaskToken": ..., "inputParameters": "<spec JSON>", ...}}`` (``body``
may be JSON text). It starts one execution of the internal state machine, named by a new job id, with the input
``{"jobId", "inputParameters", "callerTaskToken"}``; the state machine reports the end of the job to that token.
When the execution cannot be started, the caller's token is failed here at once with the reason.

Neither the event nor the token is ever logged.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

ENTRY_ERROR = "WorkbenchEntryError"


class EntryError(Exception):
    """The VAMS request cannot become a job; the message is the reason sent to the caller."""


def start_job(event: dict[str, Any], state_machine_arn: str, sfn_client: Any) -> dict[str, Any]:
    """Start the internal execution for a VAMS event; returns the Lambda response (job id and execution ARN)."""
    from botocore.exceptions import ClientError

    token = None
    try:
        body = _body(event)
        token = body.get("TaskToken")
        if not isinstance(token, str) or not token:
            raise EntryError("no TaskToken in the request: register the pipeline in VAMS with waitForCallback enabled")
        parameters = _input_parameters(body.get("inputParameters"))
        job_id = str(uuid.uuid4())
        document = {"jobId": job_id, "inputParameters": parameters, "callerTaskToken": token}
        try:
            execution = sfn_client.start_execution(
                stateMachineArn=state_machine_arn, name=job_id, input=json.dumps(document)
            )
        except ClientError as exc:
            raise EntryError(f"cannot start the job's execution: {exc}") from None
    except EntryError as exc:
        _fail_caller(sfn_client, token, str(exc))
        print(json.dumps({"status": "rejected", "reason": str(exc)}))
        return {"statusCode": 400, "body": json.dumps({"message": str(exc)})}
    print(json.dumps({"status": "started", "jobId": job_id, "executionArn": execution["executionArn"]}))
    body = {"jobId": job_id, "executionArn": execution["executionArn"], "status": "SUBMITTED"}
    return {"statusCode": 200, "body": json.dumps(body)}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point."""
    import boto3

    return start_job(event, os.environ["STATE_MACHINE_ARN"], boto3.client("stepfunctions"))


def _body(event: Any) -> dict[str, Any]:
    body = event.get("body") if isinstance(event, dict) else None
    return _json_object(body, "the request body", "the request has no body object")


def _input_parameters(value: Any) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    return _json_object(value, "inputParameters", "inputParameters must be a JSON object (the job spec)")


def _json_object(value: Any, what: str, not_an_object: str) -> dict[str, Any]:
    """``value`` as a dict, decoding it first when it is JSON text (VAMS sends either)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise EntryError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise EntryError(not_an_object)
    return value


def _fail_caller(sfn_client: Any, token: str | None, reason: str) -> None:
    if token:
        sfn_client.send_task_failure(taskToken=token, error=ENTRY_ERROR, cause=reason)
