"""The Step Functions callback channel: the job's start, task heartbeats and the job's end, sent with task tokens.

On AWS the tokens are SSM SecureString parameters under ``WORKBENCH_TASK_TOKEN_PARAMETER`` (``<prefix>/<job id>``;
Batch DescribeJobs shows only that name), written by the state machine (see ``infra/workbench_infra/
orchestration.py``):

- ``start-token``: "Wait for the job to start". The runner's first act is ``SendTaskSuccess`` on it, so time in
  the queue never counts against the heartbeat. While the job waits for an instance the state machine replaces
  this token every few minutes: every newer start token is announced too, until the run token appears (for at
  most ``wait_seconds``).
- ``run-token``: "Run the ... job", written once the start is announced. Heartbeats and the end go to it.
- ``caller-token``: the caller's (VAMS) token, when there is one. Every heartbeat also goes to it; a caller that
  stopped waiting is not fatal (its heartbeats stop, the job and its outputs go on).

For a direct launch, ``WORKBENCH_TASK_TOKEN`` may hold one token instead (used for heartbeats and the end, no
start announcement, no caller).

Tokens are kept in this object, never logged, written or uploaded; the log gets each status in plain words
instead. Heartbeats go out at start and whenever the runner publishes one (every interval while the job makes
progress). SUCCEEDED sends ``SendTaskSuccess`` with the job id, output location and final progress; FAILED and
CANCELLED send ``SendTaskFailure`` with the reason as the cause.

On a multi-node job every node heartbeats, and only the main node announces the start and reports the end: a
worker node's torchrun often fails when the main node finishes first, and that must not fail a job the main
node is completing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from workbench.errors import RunnerError
from workbench.spec.settings import is_main_node
from workbench.spec.status import JobState, JobStatus
from workbench.transport import aws_sdk as aws
from workbench.transport.channels import Channel

log = logging.getLogger(__name__)

TOKEN_VARIABLE = "WORKBENCH_TASK_TOKEN"
PARAMETER_VARIABLE = "WORKBENCH_TASK_TOKEN_PARAMETER"
PARAMETER_SUFFIXES = {"start": "start-token", "run": "run-token", "caller": "caller-token"}
"""The same names as ``TOKEN_PARAMETER_SUFFIXES`` of ``infra/lambdas/prepare/handler.py`` (a contract test checks)."""
ERROR_NAMES = {JobState.FAILED: "WorkbenchJobFailed", JobState.CANCELLED: "WorkbenchJobCancelled"}
GONE = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")
"""Errors meaning the execution no longer waits for this token (it ended, timed out, was stopped or replaced)."""
MAX_CAUSE = 32768
WAIT_SECONDS = 300.0
"""How long the runner looks for a live start token, and for the run token, before it gives up."""
POLL_SECONDS = 1.0


SDK_LOGGERS = ("botocore", "boto3", "urllib3")
"""At DEBUG level these log request and response bodies, which hold the tokens: kept at INFO or above."""


class StepFunctionsChannel(Channel):
    """Publishes the runner's statuses to the Step Functions execution waiting on the job's task tokens."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        client: Any = None,
        ssm_client: Any = None,
        wait_seconds: float = WAIT_SECONDS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        environ = os.environ if environ is None else environ
        self._parameters = environ.get(PARAMETER_VARIABLE, "").rstrip("/")
        direct = "" if self._parameters else environ.get(TOKEN_VARIABLE, "")
        if not self._parameters and not direct:
            raise RunnerError(
                f"the sfn: channel needs the job's token parameters in {PARAMETER_VARIABLE} (or a task token in "
                f"{TOKEN_VARIABLE}); neither is set"
            )
        self._token: str | None = direct or None
        """The token heartbeats and the end go to: the run token (or the direct one)."""
        self._caller: str | None = None
        self._secrets: set[str] = {direct} if direct else set()
        self._started = bool(direct)
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
        self._ssm_client = ssm_client
        self._wait_seconds = wait_seconds
        self._poll_seconds = poll_seconds
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

    @property
    def ssm(self) -> Any:
        if self._ssm_client is None:
            self._ssm_client = aws.client("ssm")
        return self._ssm_client

    def publish(self, status: JobStatus, heartbeat: bool = False) -> None:
        if heartbeat or status.state is not self._last_state or status.state.is_terminal:
            log.info("status %s%s", _describe(status), " (heartbeat)" if heartbeat else "")
        if self._finished:
            return
        self._start(status)
        if status.state.is_terminal:
            if self.reports_end:
                self._finished = True
                self._send_end(status)
            else:
                log.info("worker node: the main node reports the job's end")
            return
        if heartbeat or status.state is not self._last_state:
            self._last_state = status.state
            self._heartbeat()

    # ---------------------------------------------------------------- start

    def _start(self, status: JobStatus) -> None:
        """Once: read the caller's token, announce the start (main node) and wait for the run token."""
        if self._started:
            if self._token is None and self._parameters:
                self._token = self._read("run")
            return
        self._started = True
        self._caller = self._read("caller")
        self._token = self._run_token(status if self.reports_end else None)
        if self._token is None and self.ended_by is None:
            log.warning("Step Functions has not asked for this job's run yet; heartbeats wait for it")

    def _run_token(self, announce: JobStatus | None) -> str | None:
        """The run token, once the state machine writes it; with ``announce``, announce the start until it does.

        The start is announced with SendTaskSuccess on the start token. While the job waited in the queue, the
        state machine may have closed that token and written a new one (or be about to): a closed token answers
        TaskTimedOut/InvalidToken/TaskDoesNotExist (moto accepts it silently), so every newer start token is
        announced too, until the run token appears or ``wait_seconds`` pass.
        """
        output = json.dumps({"jobId": announce.job_id, "state": "STARTED"}) if announce else ""
        tried: set[str] = set()
        closed = ""
        deadline = time.monotonic() + self._wait_seconds
        while True:
            run = self._read("run")
            if run is not None:
                return run
            start = self._read("start") if announce else None
            if start is not None and start not in tried:
                tried.add(start)
                try:
                    self.client.send_task_success(taskToken=start, output=output)
                    log.info("announced the job's start to Step Functions%s", " again, with a newer start token" if len(tried) > 1 else "")
                except aws.sdk_errors() as exc:
                    closed = aws.error_code(exc)
                    if closed not in GONE:
                        raise RunnerError(
                            f"could not announce the job's start to Step Functions: {self._scrub(aws.error_message(exc))}"
                        ) from None
                    log.info("the start token was closed (%s); looking for the one that replaced it", closed)
            if time.monotonic() >= deadline:
                if closed:
                    self.ended_by = closed
                    log.warning("Step Functions no longer waits for this job's start (%s)", closed)
                return None
            time.sleep(self._poll_seconds)

    # ---------------------------------------------------------------- heartbeats and the end

    def _heartbeat(self) -> None:
        if self._token is not None:
            try:
                self._call("heartbeat", self.client.send_task_heartbeat, taskToken=self._token)
            except RunnerError as exc:
                log.warning("%s; the next heartbeat will try again", exc)
        if self._caller is not None:
            try:
                self.client.send_task_heartbeat(taskToken=self._caller)
            except aws.sdk_errors() as exc:
                code = aws.error_code(exc)
                if code in GONE:
                    self._caller = None
                    log.warning("the caller no longer waits for this job (%s); its heartbeats stop, the job goes on", code)
                else:
                    log.warning("could not heartbeat the caller (%s); the next heartbeat will try again",
                                self._scrub(aws.error_message(exc)))

    def _send_end(self, status: JobStatus) -> None:
        token = self._token
        if token is None and self._parameters:
            token = self._read("run") or self._read("start")
        if token is None:
            log.warning("no task token to report the job's end to; Step Functions learns it from its timeouts")
            return
        if status.state is JobState.SUCCEEDED:
            output = {
                "jobId": status.job_id,
                "state": status.state.value,
                "outputUri": status.output_uri,
                "progress": asdict(status.progress),
            }
            self._call("success", self.client.send_task_success, taskToken=token, output=json.dumps(output))
        else:
            cause = status.reason or f"the job ended {status.state.value} without a reason"
            self._call(
                "failure",
                self.client.send_task_failure,
                taskToken=token,
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
            raise RunnerError(f"could not send the task {what} to Step Functions: {self._scrub(aws.error_message(exc))}") from None

    # ---------------------------------------------------------------- token parameters

    def _read(self, role: str) -> str | None:
        """The token in the job's ``role`` parameter, or None while there is none."""
        name = f"{self._parameters}/{PARAMETER_SUFFIXES[role]}"
        try:
            value = self.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except aws.sdk_errors() as exc:
            if aws.error_code(exc) == "ParameterNotFound":
                return None
            raise RunnerError(f"could not read the task token parameter {name}: {self._scrub(aws.error_message(exc))}") from None
        self._secrets.add(value)
        return value

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = _scrub(text, secret)
        return text


def _describe(status: JobStatus) -> str:
    words = f"{status.state.value}: {status.progress.describe()}"
    if status.reason:
        words += f"; reason: {status.reason}"
    if status.output_uri:
        words += f"; outputs at {status.output_uri}"
    return words


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "<task token>") if token else text
