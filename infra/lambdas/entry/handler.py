"""The VAMS pipeline entry point: start the internal state machine with the caller's task token, once per job.

VAMS invokes this Lambda with ``{"body": {"TaskToken": ..., "inputParameters": "<spec JSON>", ...}}`` (``body``
may be JSON text). It starts one execution of the internal state machine, named by the job id, with the input
``{"jobId", "inputParameters", "callerTaskToken"}``; the state machine reports the end of the job to that token.
When the execution cannot be started, the caller's token is failed here at once with the reason.

One job per VAMS workflow execution. VAMS's pipeline state (``stepfunctions_builder.LambdaTaskBuilder``) retries
every error (``States.ALL``, ``MaxAttempts`` 2, 5 s then 10 s): after our SendTaskFailure, a heartbeat timeout, a
timeout or a failed invocation it invokes this Lambda again with the same body and a new token. So the job id is
not random: it is a uuid5 of :data:`EXECUTION_FIELD` (``outputS3AssetFilesPath``, which VAMS renders with its
``$$.Execution.Name``: the same on every retry of one execution, different for every execution) and of
:data:`PIPELINE_FIELDS` (the pipeline within the workflow: training and evaluation in one workflow are two jobs).
The execution name is that id, and Step Functions keeps names unique per state machine for 90 days, so a retry
gets ``ExecutionAlreadyExists`` and starts no second job. The existing execution is described and the new token
answered at once:

- FAILED, TIMED_OUT or ABORTED: the token fails with the first execution's error and its cause, prefixed
  "this VAMS execution's job already failed, not retried: ". A retry would only pay for the same failure again
  (a bad spec, a crash); run the workflow again to retry deliberately (a new VAMS execution, a new job).
- SUCCEEDED: the token succeeds with the execution's output (what the first token would have received).
- RUNNING (or any other status): the token fails, saying the first attempt still runs. VAMS retries only after it
  stopped waiting on the first attempt, so that job's result can never reach this workflow execution; a second job
  would only duplicate it, and this Lambda cannot wait hours for the first one. Failing lets VAMS end the workflow
  now; the first execution is left alone (a job still queued stops at its next queue check because its caller's
  token is closed, a running one finishes and writes its outputs to S3; stop it with its execution name to end it).

A repeated invocation with the same token as well gives the same input, which ``start_execution`` answers with
the existing execution: nothing new starts. A body without :data:`EXECUTION_FIELD` (not VAMS) gets a new uuid4
job id, as before. The same pipeline twice in one workflow, both after the first step, cannot be told apart (the
same body): the second step gets the first one's answer.

Neither the event nor a token is ever logged.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

ENTRY_ERROR = "WorkbenchEntryError"
EXECUTION_FIELD = "outputS3AssetFilesPath"
"""The body field that names the VAMS workflow execution (``.../output/<$$.Execution.Name>/files/``)."""
PIPELINE_FIELDS = ("inputOutputS3AssetAuxiliaryFilesPath", "inputS3AssetFilePath", "inputParameters")
"""Body fields that tell the pipelines of one workflow execution apart (the pipeline name, its input, its spec)."""
JOB_ID_NAMESPACE = uuid.UUID("6f1c3a52-7d4e-5b8a-9c0d-2e6f4a1b3c5d")
"""The uuid5 namespace of derived job ids; changing it changes the id of every VAMS execution."""
FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
ALREADY_FAILED = "this VAMS execution's job already failed, not retried: "
MAX_CAUSE = 32768  # SendTaskFailure's limit


class EntryError(Exception):
    """The VAMS request cannot become a job; the message is the reason sent to the caller."""


def start_job(event: dict[str, Any], state_machine_arn: str, sfn_client: Any) -> dict[str, Any]:
    """Start the internal execution for a VAMS event (or answer a retry from the existing one); returns the Lambda
    response (job id and execution ARN)."""
    from botocore.exceptions import ClientError

    token = None
    try:
        body = _body(event)
        token = body.get("TaskToken")
        if not isinstance(token, str) or not token:
            raise EntryError("no TaskToken in the request: register the pipeline in VAMS with waitForCallback enabled")
        parameters = _input_parameters(body.get("inputParameters"))
        job_id = job_id_for(body)
        document = {"jobId": job_id, "inputParameters": parameters, "callerTaskToken": token}
        try:
            execution = sfn_client.start_execution(
                stateMachineArn=state_machine_arn, name=job_id, input=json.dumps(document)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise EntryError(f"cannot start the job's execution: {exc}") from None
            return _answer_retry(sfn_client, _execution_arn(state_machine_arn, job_id), job_id, token)
    except EntryError as exc:
        _fail_caller(sfn_client, token, str(exc))
        print(json.dumps({"status": "rejected", "reason": str(exc)}))
        return {"statusCode": 400, "body": json.dumps({"message": str(exc)})}
    print(json.dumps({"status": "started", "jobId": job_id, "executionArn": execution["executionArn"]}))
    body = {"jobId": job_id, "executionArn": execution["executionArn"], "status": "SUBMITTED"}
    return {"statusCode": 200, "body": json.dumps(body)}


def job_id_for(body: dict[str, Any]) -> str:
    """The job id: a uuid5 of the VAMS execution and pipeline fields when the body has them, else a new uuid4."""
    execution = body.get(EXECUTION_FIELD)
    if not isinstance(execution, str) or not execution:
        return str(uuid.uuid4())
    identity = [execution, *(body.get(field) for field in PIPELINE_FIELDS)]
    return str(uuid.uuid5(JOB_ID_NAMESPACE, json.dumps(identity, sort_keys=True, separators=(",", ":"))))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point."""
    import boto3

    return start_job(event, os.environ["STATE_MACHINE_ARN"], boto3.client("stepfunctions"))


def _answer_retry(sfn_client: Any, execution_arn: str, job_id: str, token: str) -> dict[str, Any]:
    """Answer a retried VAMS invocation from the execution its first attempt started (see the module docstring)."""
    from botocore.exceptions import ClientError

    try:
        existing = sfn_client.describe_execution(executionArn=execution_arn)
    except ClientError as exc:
        raise EntryError(f"job {job_id} was already started for this VAMS execution and cannot be read: {exc}") from None
    status = existing["status"]
    answer = {"jobId": job_id, "executionArn": execution_arn, "status": status}
    print(json.dumps({"status": "retry answered", **answer}))
    if status == "SUCCEEDED":
        sfn_client.send_task_success(taskToken=token, output=existing.get("output") or "{}")
        return {"statusCode": 200, "body": json.dumps(answer)}
    if status in FAILED_STATUSES:
        first = existing.get("cause") or f"the execution ended {status} with no cause recorded"
        error, cause = existing.get("error") or ENTRY_ERROR, f"{ALREADY_FAILED}job {job_id}: {first}"
    else:
        error = ENTRY_ERROR
        cause = (
            f"the first attempt of this VAMS execution's job ({job_id}) is still {status}; VAMS stopped waiting on it, "
            "so its result cannot reach this workflow, and a retry would only start the same job again. Nothing was "
            "started; stop the execution named by the job id to end the first attempt, or let it finish (its outputs "
            "still go to S3)."
        )
    sfn_client.send_task_failure(taskToken=token, error=error, cause=cause[:MAX_CAUSE])
    return {"statusCode": 409, "body": json.dumps({**answer, "message": cause[:MAX_CAUSE]})}


def _execution_arn(state_machine_arn: str, name: str) -> str:
    """``arn:<partition>:states:<region>:<account>:execution:<state machine name>:<name>``."""
    prefix, machine = state_machine_arn.split(":stateMachine:", 1)
    return f"{prefix}:execution:{machine}:{name}"


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
