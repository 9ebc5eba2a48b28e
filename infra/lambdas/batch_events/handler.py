"""Fail the job's task token at once when its AWS Batch job fails before the runner could report.

An EventBridge rule sends this Lambda every "Batch Job State Change" event with status FAILED from the
pipeline's job queue. A job whose container never started (image pull error, no capacity, out of memory, a lost
instance) cannot call back; without this the execution would wait for the 30-minute heartbeat timeout. The token
is read from the job's container environment in the event (``WORKBENCH_TASK_TOKEN``) and never logged. When the
runner already reported, the token is closed and the call is a no-op.
"""

from __future__ import annotations

import json
from typing import Any

TASK_TOKEN_VARIABLE = "WORKBENCH_TASK_TOKEN"
BATCH_JOB_FAILED = "BatchJobFailed"
CLOSED_TOKEN_ERRORS = ("TaskDoesNotExist", "TaskTimedOut", "InvalidToken")


def task_token(detail: dict[str, Any]) -> str | None:
    """The task token in a Batch job's container environment (single-node or any node range)."""
    containers = [detail.get("container") or {}]
    for node_range in (detail.get("nodeProperties") or {}).get("nodeRangeProperties") or []:
        containers.append(node_range.get("container") or {})
    for container in containers:
        for variable in container.get("environment") or []:
            if variable.get("name") == TASK_TOKEN_VARIABLE and variable.get("value"):
                return variable["value"]
    return None


def failure_reason(detail: dict[str, Any]) -> str:
    """A plain-words reason from the job's status reason and its container's reason and exit code."""
    parts = [f"AWS Batch job {detail.get('jobName')} ({detail.get('jobId')}) failed"]
    if detail.get("statusReason"):
        parts.append(detail["statusReason"])
    container = detail.get("container") or {}
    if container.get("reason"):
        parts.append(f"container: {container['reason']}")
    if container.get("exitCode") is not None:
        parts.append(f"exit code {container['exitCode']}")
    return "; ".join(parts)


def report_failure(event: dict[str, Any], sfn_client: Any) -> str:
    """Send the failure to the job's token; returns what happened, in words (for the log)."""
    from botocore.exceptions import ClientError

    detail = event.get("detail") or {}
    if detail.get("status") != "FAILED":
        return "ignored: not a failed job"
    token = task_token(detail)
    if token is None:
        return "ignored: the job carries no task token"
    try:
        sfn_client.send_task_failure(taskToken=token, error=BATCH_JOB_FAILED, cause=failure_reason(detail)[:32768])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in CLOSED_TOKEN_ERRORS:
            return "ignored: the job's task was already closed"
        raise
    return "reported the failure to the job's execution"


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Lambda entry point."""
    import boto3

    outcome = report_failure(event, boto3.client("stepfunctions"))
    print(json.dumps({"jobId": (event.get("detail") or {}).get("jobId"), "outcome": outcome}))
    return {"outcome": outcome}
