"""The Step Functions callback channel: task heartbeats and the job's end, sent with the execution's task token.

The token comes from ``WORKBENCH_TASK_TOKEN`` only. It is kept in this object, never logged, written or uploaded;
the log gets each status in plain words instead. Heartbeats go out at start and whenever the runner publishes
one (every interval while the job makes progress). SUCCEEDED sends ``SendTaskSuccess`` with the job id, output
location and final progress; FAILED and CANCELLED send ``SendTaskFailure`` with the reason as the cause.

On a multi-node job every node heartbeats, and only the main node reports the end: a worker node's torchrun
often fails when the main node finishes first, and that must not fail a job the main node is completing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from workbench import aws
from workbench.errors import RunnerError
from workbench.runner.channels import Channel
from workbench.runner.multinode import is_main_node
from workbench.status import JobState, JobStatus

log = logging.getLogger(__name__)

TOKEN_VARIABLE = "WORKBENCH_TASK_TOKEN"
ERROR_NAMES = {JobState.FAILED: "WorkbenchJobFailed", JobState.CANCELLED: "WorkbenchJobCancelled"}
GONE = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")
"""Errors meaning the execution no longer waits for this token (it ended, timed out or was stopped)."""
MAX_CAUSE = 32768


SDK_LOGGERS = ("botocore", "boto3", "urllib3")
"""At DEBUG level these log request bodies, which hold the token: kept at INFO or above."""


class StepFunctionsChannel(Channel):
    """Publishes the runner's statuses to the Step Functions execution waiting on the task token."""

    def __init__(self, environ: Mapping[str, str] | None = None, client: Any = None) -> None:
        environ = os.environ if environ is None else environ
        token = environ.get(TOKEN_VARIABLE, "")
        if not token:
            raise RunnerError(f"the sfn: channel needs the task token in {TOKEN_VARIABLE}, which is not set")
        self._token = token
        if not log.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("[workbench] %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False
        for name in SDK_LOGGERS:
            if logging.getLogger(name).getEffectiveLevel() < logging.INFO:
                logging.getLogger(name).setLevel(logging.INFO)
        self._client = client
        self.reports_end = is_main_node(environ)
        self.ended_by: str | None = None
        """Set when Step Functions says the execution stopped waiting (timed out, aborted): the job may stop."""
        self._last_state: JobState | None = None
        self._finished = False

    def __repr__(self) -> str:
        return f"StepFunctionsChannel(reports_end={self.reports_end})"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("stepfunctions")
        return self._client

    def publish(self, status: JobStatus, heartbeat: bool = False) -> None:
        if heartbeat or status.state is not self._last_state or status.state.is_terminal:
            log.info("status %s%s", _describe(status), " (heartbeat)" if heartbeat else "")
        if self._finished:
            return
        if status.state.is_terminal:
            if self.reports_end:
                self._finished = True
                self._send_end(status)
            else:
                log.info("worker node: the main node reports the job's end")
            return
        if heartbeat or status.state is not self._last_state:
            self._last_state = status.state
            try:
                self._call("heartbeat", self.client.send_task_heartbeat, taskToken=self._token)
            except RunnerError as exc:
                log.warning("%s; the next heartbeat will try again", exc)

    def _send_end(self, status: JobStatus) -> None:
        if status.state is JobState.SUCCEEDED:
            output = {
                "jobId": status.job_id,
                "state": status.state.value,
                "outputUri": status.output_uri,
                "progress": asdict(status.progress),
            }
            self._call("success", self.client.send_task_success, taskToken=self._token, output=json.dumps(output))
        else:
            cause = status.reason or f"the job ended {status.state.value} without a reason"
            self._call(
                "failure",
                self.client.send_task_failure,
                taskToken=self._token,
                error=ERROR_NAMES[status.state],
                cause=cause[:MAX_CAUSE],
            )

    def _call(self, what: str, method: Any, **kwargs: Any) -> None:
        try:
            method(**kwargs)
        except aws.sdk_errors() as exc:
            code = aws.error_code(exc)
            if code in GONE:
                self.ended_by = code
                log.warning("Step Functions no longer waits for this job (%s); the %s was not delivered", code, what)
                return
            raise RunnerError(f"could not send the task {what} to Step Functions: {_scrub(aws.error_message(exc), self._token)}") from None


def _describe(status: JobStatus) -> str:
    words = f"{status.state.value}: {status.progress.describe()}"
    if status.reason:
        words += f"; reason: {status.reason}"
    if status.output_uri:
        words += f"; outputs at {status.output_uri}"
    return words


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "<task token>") if token else text
