"""Fail the job's task token at once when its AWS Batch job fails before the runner could report.

An EventBridge rule sends this Lambda every "Batch Job State Change" event with status FAILED from the
pipeline's job queue. A job whose container never started (image pull error, no capacity, out of memory, a lost
instance) cannot call back; without this the execution would wait for the 30-minute heartbeat timeout (or, in
the queue, for its next check).

The job's container environment in the event names its token parameters (``WORKBENCH_TASK_TOKEN_PARAMETER``,
``<prefix>/<job id>``; the suffixes are those of ``infra/lambdas/prepare/handler.py``). The run token is failed
if the job got that far, else the start token; a start token replaced meanwhile (the state machine renews it
every few minutes while the job is queued) is read again. ``WORKBENCH_TASK_TOKEN`` (a token in the environment,
direct launches only) is still honoured. Tokens are never logged. When the runner already reported, the token
is closed and the call is a no-op.

A multi-node job sends one event per node as well as one for the whole job. A worker node's event is ignored
(:func:`is_worker_node`): its torchrun may exit non-zero after the training ended while the main node still
uploads, and the job's status is the main node's anyway (AWS Batch), whose own event, or the runner, reports.
"""

from __future__ import annotations

import json
import time
from typing import Any

TASK_TOKEN_VARIABLE = "WORKBENCH_TASK_TOKEN"
TOKEN_PARAMETER_VARIABLE = "WORKBENCH_TASK_TOKEN_PARAMETER"
RUN_TOKEN_SUFFIX = "run-token"
START_TOKEN_SUFFIX = "start-token"
BATCH_JOB_FAILED = "BatchJobFailed"
CLOSED_TOKEN_ERRORS = ("TaskDoesNotExist", "TaskTimedOut", "InvalidToken")
REREAD_ATTEMPTS = 6
REREAD_SECONDS = 3.0


def environment_value(detail: dict[str, Any], name: str) -> str | None:
    """A variable of a Batch job's container environment (single-node or any node range)."""
    containers = [detail.get("container") or {}]
    for node_range in (detail.get("nodeProperties") or {}).get("nodeRangeProperties") or []:
        containers.append(node_range.get("container") or {})
    for container in containers:
        for variable in container.get("environment") or []:
            if variable.get("name") == name and variable.get("value"):
                return variable["value"]
    return None


def task_token(detail: dict[str, Any], ssm_client: Any = None) -> str | None:
    """The token to fail for this job: its run token, else its start token (from SSM), else a direct token."""
    parameters = environment_value(detail, TOKEN_PARAMETER_VARIABLE)
    if parameters and ssm_client is not None:
        for suffix in (RUN_TOKEN_SUFFIX, START_TOKEN_SUFFIX):
            token = _parameter(ssm_client, f"{parameters.rstrip('/')}/{suffix}")
            if token is not None:
                return token
        return None
    return environment_value(detail, TASK_TOKEN_VARIABLE)


def _parameter(ssm_client: Any, name: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        return ssm_client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise


def is_worker_node(detail: dict[str, Any]) -> bool:
    """Whether the event is about a worker (non-main) node of a multi-node job (``nodeDetails.isMainNode``)."""
    return (detail.get("nodeDetails") or {}).get("isMainNode") is False


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


def report_failure(event: dict[str, Any], sfn_client: Any, ssm_client: Any = None, pause: Any = time.sleep) -> str:
    """Send the failure to the job's token; returns what happened, in words (for the log).

    A closed token is read again (``REREAD_ATTEMPTS`` times, ``REREAD_SECONDS`` apart) while the parameters hold a
    different one: the start token is replaced while the job is queued, and the run token follows the start.
    """
    from botocore.exceptions import ClientError

    detail = event.get("detail") or {}
    if detail.get("status") != "FAILED":
        return "ignored: not a failed job"
    if is_worker_node(detail):
        return "ignored: a worker node of a multi-node job; the main node decides the job's end"
    tried: set[str] = set()
    for attempt in range(REREAD_ATTEMPTS):
        token = task_token(detail, ssm_client)
        if token is None and not tried:
            return "ignored: the job carries no task token"
        if token is None:
            break  # the parameters are gone: the execution ended
        if token not in tried:
            tried.add(token)
            try:
                sfn_client.send_task_failure(taskToken=token, error=BATCH_JOB_FAILED, cause=failure_reason(detail)[:32768])
                return "reported the failure to the job's execution"
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in CLOSED_TOKEN_ERRORS:
                    raise
        if ssm_client is None or attempt == REREAD_ATTEMPTS - 1:
            break
        pause(REREAD_SECONDS)
    return "ignored: the job's task was already closed"


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Lambda entry point."""
    import boto3

    outcome = report_failure(event, boto3.client("stepfunctions"), boto3.client("ssm"))
    print(json.dumps({"jobId": (event.get("detail") or {}).get("jobId"), "outcome": outcome}))
    return {"outcome": outcome}
