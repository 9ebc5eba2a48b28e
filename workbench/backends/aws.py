"""The ``aws`` backend: jobs run on the CDK-deployed pipeline (Step Functions -> Lambda -> AWS Batch GPU container).

Configuration comes from the stack's outputs (``describe_stacks`` by stack name, default ``IsaacLabWorkbench`` or
``$WORKBENCH_AWS_STACK``) or from a JSON file (``config_file=`` or ``$WORKBENCH_AWS_CONFIG``) holding the same
output keys (``StateMachineArn``, ``BucketName``, ``JobLogGroupName``, ``JobQueueArn``; ``MultiNodeJobQueueArn``,
the multi-node jobs' queue, ``Capacity`` and the one-kind queues ``OnDemandJobQueueArn``/``SpotJobQueueArn``, where
the stack has them). In SageMaker Studio or
on a notebook instance, where no region is configured, the region, credentials and default bucket come from
``sagemaker.Session()``. boto3 (and sagemaker) are imported only when this backend is used.

- ``submit(spec)`` refuses a job whose ``computeConfig.capacity`` the stack does not offer (``on-demand`` on a
  spot-only stack, ``spot`` on an on-demand one; the pipeline's prepare Lambda picks the queue by the same rule,
  ``workbench.spec.capacity``), then uploads local inputs (custom environment package, policy file, resume
  checkpoint) to ``s3://<bucket>/inputs/<job-id>/`` and rewrites them as s3:// URIs, then starts the internal state
  machine with an execution named after the job id. A ``budget`` (USD) refuses a job whose estimate is over it.
- ``status()`` merges the execution's status, the Batch job's status (SUBMITTED ... RUNNING) and the progress
  the runner printed to the job's CloudWatch log (parsed with the runner's own progress parser); after a host
  termination that Batch retried, it says where the job was interrupted and resumed (the runner's own words,
  ``details["recovery"]``).
- ``logs(follow=True)`` streams the CloudWatch log stream(s) with forward tokens and backoff; on a multi-node
  job each line is prefixed with its node, on a retried job with its attempt.
- ``outputs()`` downloads ``s3://<bucket>/outputs/<job-id>/`` to ``$WORKBENCH_HOME/aws/runs/<job-id>/``: the same
  layout as a local job's run directory. ``video_urls()`` gives presigned URLs for the videos.
- ``cancel()`` stops the execution and terminates the Batch job(s).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from workbench.backends.aws_costs import CostEstimate, actual_cost, estimate, instance_for
from workbench.backends.base import Backend, Job, LogReader
from workbench.errors import BackendConfigError, BudgetExceededError, JobNotFoundError, WorkbenchError
from workbench.outputs.checkpoints import newest_of
from workbench.outputs.progress import ProgressParser
from workbench.spec import capacity, paths
from workbench.spec.document import (
    AWS_JOB_ID_PATTERN,
    FieldError,
    JobSpec,
    SpecError,
    check_job_id,
    is_job_id,
    parse_spec,
)
from workbench.spec.status import JobState, JobStatus, Progress
from workbench.transport import aws_sdk as aws
from workbench.transport.s3 import download_tree, list_keys, split_s3_uri

DEFAULT_STACK = "IsaacLabWorkbench"
INPUT_PREFIX = "inputs"
OUTPUT_PREFIX = "outputs"
JOB_NAME_PREFIX = "workbench-"
REQUIRED_OUTPUTS = {
    "StateMachineArn": "state_machine_arn",
    "BucketName": "bucket",
    "JobLogGroupName": "log_group",
    "JobQueueArn": "job_queue",
}
RUNNABLE_PATIENCE_S = 600.0
BATCH_STATES = {
    "SUBMITTED": JobState.SUBMITTED, "PENDING": JobState.SUBMITTED, "RUNNABLE": JobState.SUBMITTED,
    "STARTING": JobState.STARTING, "RUNNING": JobState.RUNNING,
}
EXECUTION_STATES = {
    "SUCCEEDED": JobState.SUCCEEDED, "FAILED": JobState.FAILED, "TIMED_OUT": JobState.FAILED,
    "ABORTED": JobState.CANCELLED,
}
ERROR_WORDS = {
    "States.HeartbeatTimeout": "the job stopped sending heartbeats (no progress for the heartbeat timeout); "
                               "its Batch job was terminated",
    "States.Timeout": "the job ran past its time limit or stopped sending heartbeats; its Batch job was terminated",
    "ValidationError": "the pipeline refused the job",
    "BatchJobFailed": "the Batch job failed before the runner could report",
    "QueueTimeout": "the job never started",
    "CallerStoppedWaiting": "the job was stopped before it started",
}
QUEUE_CHECK_STATES = ("Wait for the job to start", "Check the queued Batch job", "Heartbeat the caller")
"""The state machine's queue loop: its timeouts (every few minutes while queued) and caught errors are no failures."""
FAILED_LINE = "[workbench] job failed: "
RECOVERY_LINE = "[workbench] interrupted"
"""How a retried attempt's runner starts saying where it resumed the job (``workbench.runner.recovery``)."""
NO_DETAILS = "(no details were given)"


@dataclass(frozen=True)
class AwsConfig:
    """What the backend needs to know about the deployed pipeline."""

    state_machine_arn: str
    bucket: str
    log_group: str
    job_queue: str
    region: str | None = None
    multi_node_job_queue: str | None = None
    """Multi-node jobs' queue (output ``MultiNodeJobQueueArn``; stacks before it had one queue for all jobs)."""
    capacity: str = capacity.DEFAULT_STACK_CAPACITY
    """What the stack's single-node compute environments are (output ``Capacity``; stacks before it: on-demand)."""
    kind_queues: tuple[str, ...] = ()
    """The one-kind queues (``OnDemandJobQueueArn``, ``SpotJobQueueArn``) the stack has."""

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, str], region: str | None = None, default_bucket: str | None = None,
                     source: str = "the stack outputs") -> AwsConfig:
        values = dict(outputs)
        if default_bucket and not values.get("BucketName"):
            values["BucketName"] = default_bucket
        missing = [key for key in REQUIRED_OUTPUTS if not values.get(key)]
        if missing:
            raise BackendConfigError(f"{source} lack {', '.join(missing)}; is the pipeline enabled in the stack?")
        region = region or values.get("Region") or values["StateMachineArn"].split(":")[3]
        stack_capacity = values.get("Capacity") or capacity.DEFAULT_STACK_CAPACITY
        if stack_capacity not in capacity.STACK_CAPACITIES:
            raise BackendConfigError(f"{source} name an unknown Capacity {stack_capacity!r}; known: "
                                     f"{', '.join(capacity.STACK_CAPACITIES)}")
        return cls(**{field: values[key] for key, field in REQUIRED_OUTPUTS.items()}, region=region,
                   multi_node_job_queue=values.get(capacity.MULTI_NODE_QUEUE) or None, capacity=stack_capacity,
                   kind_queues=tuple(values[key] for key in (capacity.ON_DEMAND_QUEUE, capacity.SPOT_QUEUE)
                                     if values.get(key)))

    def placement(self, spec: JobSpec) -> capacity.Placement:
        """Where ``spec`` runs on this stack; a SpecError naming ``computeConfig.capacity`` where it cannot."""
        try:
            return capacity.placement(spec.compute["capacity"], self.capacity, spec.num_nodes > 1)
        except capacity.CapacityUnavailable as exc:
            raise SpecError([FieldError(capacity.FIELD, str(exc))]) from None

    @property
    def job_queues(self) -> tuple[str, ...]:
        """Every queue a job may be in (single-node, one-kind, then multi-node)."""
        queues = (self.job_queue, *self.kind_queues, self.multi_node_job_queue)
        return tuple(dict.fromkeys(queue for queue in queues if queue))

    @property
    def execution_prefix(self) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:", 1)


class CloudWatchLogReader(LogReader):
    """Reads the job's CloudWatch stream(s) on from each stream's forward token; a multi-node job's lines are
    prefixed with their node."""

    def __init__(self, job: AwsJob) -> None:
        self.job = job
        self.cursors: dict[str, str] = {}
        self.batch: list[dict] = []

    def read(self) -> list[str]:
        self.batch = self.job._batch_jobs()
        return [f"{label}{message}" for label, stream in self.job._log_streams(self.batch)
                for _, message in self.job._read_stream(stream, self.cursors)]


class AwsJob(Job):
    """A job of the pipeline: its Step Functions execution, its Batch job(s) and its S3 outputs."""

    def __init__(self, backend: AwsBackend, job_id: str) -> None:
        super().__init__(job_id)
        self.backend = backend
        self.execution_arn = f"{backend.config.execution_prefix}:{job_id}"
        self.output_uri = f"s3://{backend.config.bucket}/{OUTPUT_PREFIX}/{job_id}"
        self._parser: ProgressParser | None = None
        self._progress = Progress()
        self._progress_cursor: dict[str, str] = {}
        self._last_log_at: float | None = None
        self._failure_line: str | None = None
        self._recovery: str | None = None
        self._final: JobStatus | None = None
        self._cancel_reason: str | None = None

    # ---------------------------------------------------------------- status

    def status(self) -> JobStatus:
        if self._final is not None:
            return self._final
        execution = self._describe_execution()
        batch = self._batch_jobs()
        self._read_progress(batch)
        details: dict[str, Any] = {"execution_arn": self.execution_arn, "execution_status": execution["status"]}
        if batch:
            details.update(batch_job_id=batch[0]["jobId"], batch_status=batch[0]["status"],
                           log_streams=[s for _, s in self._log_streams(batch)])
        cost = self._cost(batch)
        if cost is not None:
            details["cost_usd"] = round(cost, 4)
        if self._recovery is not None:
            details["recovery"] = self._recovery
        common = dict(job_id=self.job_id, heartbeat_at=self._last_log_at, progress=self._progress, details=details)
        if execution["status"] in EXECUTION_STATES:
            state = EXECUTION_STATES[execution["status"]]
            if state is JobState.SUCCEEDED:
                output = json.loads(execution.get("output") or "{}")
                status = JobStatus(state=state, reason="finished", output_uri=output.get("outputUri") or self.output_uri,
                                   **common)
            else:
                status = JobStatus(state=state, reason=self._failure_reason(execution, batch), **common)
            if not batch or batch[0]["status"] in ("SUCCEEDED", "FAILED"):
                self._final = status
            return status
        state, reason = running_state(batch[0] if batch else None, time.time())
        if self._recovery is not None:
            reason = f"{reason}; {self._recovery}"
        return JobStatus(state=state, reason=reason, **common)

    def _failure_reason(self, execution: dict, batch: list[dict]) -> str:
        if execution["status"] == "ABORTED":
            return execution.get("cause") or self._cancel_reason or "cancelled (the execution was stopped)"
        if execution["status"] == "TIMED_OUT":
            return "the execution ran past its time limit; its Batch job was terminated"
        error, cause = self._root_failure() or (execution.get("error") or "", execution.get("cause") or "")
        cause = "" if cause.endswith(NO_DETAILS) else cause
        self._read_progress(batch)
        runner_reason = self._failure_line
        if error in ("WorkbenchJobFailed", "WorkbenchJobCancelled"):
            return cause or runner_reason or error
        words = ERROR_WORDS.get(error, error or "the job failed")
        if cause:
            return f"{words}: {cause}"
        return f"{words}; the runner said: {runner_reason}" if runner_reason else words

    def _root_failure(self) -> tuple[str, str] | None:
        """The first task failure of the execution (error, cause): the root cause, whatever the clean-up did after."""
        sfn = self.backend.client("stepfunctions")
        try:
            events = sfn.get_execution_history(executionArn=self.execution_arn, maxResults=1000)["events"]
        except aws.sdk_errors():
            return None
        state = ""
        for event in events:
            state = (event.get("stateEnteredEventDetails") or {}).get("name", state)
            for key in ("taskFailedEventDetails", "taskTimedOutEventDetails", "lambdaFunctionFailedEventDetails",
                        "lambdaFunctionTimedOutEventDetails"):
                found = event.get(key)
                if found and found.get("error") and not _queue_check(state, found["error"]):
                    return found["error"], _plain_cause(found.get("cause") or "")
        return None

    # ---------------------------------------------------------------- logs

    def logs(self, follow: bool = False, poll_interval: float = 0.5) -> Iterator[str]:
        reader = self.log_reader()
        delay = poll_interval
        ended_at: float | None = None
        while True:
            lines = reader.read()
            yield from lines
            if not follow:
                return
            if ended_at is None and self.status().state.is_terminal:
                ended_at = time.monotonic()
            elif ended_at is not None:
                batch_done = all(job["status"] in ("SUCCEEDED", "FAILED") for job in reader.batch)
                if not lines and (batch_done or time.monotonic() - ended_at > 30):
                    return
            delay = poll_interval if lines else min(delay * 2, 5.0)
            time.sleep(delay)

    def log_reader(self) -> CloudWatchLogReader:
        return CloudWatchLogReader(self)

    def _read_stream(self, stream: str, cursors: dict[str, str]) -> Iterator[tuple[int, str]]:
        """New events of one stream after the cursor, following forward tokens to the end."""
        logs = self.backend.client("logs")
        while True:
            request = {"logGroupName": self.backend.config.log_group, "logStreamName": stream, "startFromHead": True}
            if stream in cursors:
                request["nextToken"] = cursors[stream]
            try:
                page = logs.get_log_events(**request)
            except aws.sdk_errors() as exc:
                if aws.error_code(exc) == "ResourceNotFoundException":
                    return
                raise
            for event in page["events"]:
                yield event["timestamp"], event["message"]
            token = page.get("nextForwardToken")
            if not token or token == cursors.get(stream):
                return
            cursors[stream] = token
            if not page["events"]:
                return

    def _log_streams(self, batch: list[dict]) -> list[tuple[str, str]]:
        """``(prefix, stream)`` of the job's log stream(s); one per node on a multi-node job."""
        if not batch:
            return []
        job = batch[0]
        if "nodeProperties" in job and job.get("nodeProperties", {}).get("numNodes", 1) > 1:
            nodes = self._node_jobs(job)
            return [(f"[node {n}] ", s) for n, s in nodes if s]
        containers = [a.get("container") or {} for a in job.get("attempts") or []] + [job.get("container") or {}]
        streams = list(dict.fromkeys(c["logStreamName"] for c in containers if c.get("logStreamName")))
        if len(streams) > 1:
            return [(f"[attempt {n}] ", s) for n, s in enumerate(streams, start=1)]
        return [("", s) for s in streams]

    def _node_jobs(self, job: dict) -> list[tuple[int, str | None]]:
        count = job["nodeProperties"]["numNodes"]
        ids = [f"{job['jobId']}#{n}" for n in range(count)]
        try:
            described = self.backend.client("batch").describe_jobs(jobs=ids)["jobs"]
        except aws.sdk_errors():
            return []
        by_id = {d["jobId"]: d for d in described}
        return [(n, (by_id.get(i, {}).get("container") or {}).get("logStreamName")) for n, i in enumerate(ids)]

    def _read_progress(self, batch: list[dict]) -> None:
        """Feed new log lines to the runner's progress parser (and remember the runner's failure and recovery
        lines): the main node's on a multi-node job, every attempt's in turn on a retried one."""
        if self._parser is None:
            self._parser = ProgressParser(self.spec().rl_library)
        streams = self._log_streams(batch)
        if batch and (batch[0].get("nodeProperties") or {}).get("numNodes", 1) > 1:
            streams = streams[:1]
        for _, stream in streams:
            for timestamp, message in self._read_stream(stream, self._progress_cursor):
                self._last_log_at = timestamp / 1000
                if message.startswith(FAILED_LINE):
                    self._failure_line = message[len(FAILED_LINE):].strip()
                if message.startswith(RECOVERY_LINE):
                    self._recovery = message.removeprefix("[workbench] ").strip()
                update = self._parser.feed(message)
                if update is not None:
                    self._progress = self._progress.merged(update)

    # ---------------------------------------------------------------- outputs, cancel, cost

    def outputs(self) -> Path:
        """The outputs downloaded to ``$WORKBENCH_HOME/aws/runs/<job-id>/`` (only new files are fetched).

        A job that uploaded nothing (refused, or failed before its runner started) gives an empty directory.
        """
        dest = self.backend.cache_dir / self.job_id
        if not list_keys(self.output_uri, self.backend.client("s3")):
            dest.mkdir(parents=True, exist_ok=True)
            return dest
        return download_tree(self.output_uri, dest, self.backend.client("s3"))

    def video_urls(self, expires_in: int = 3600) -> dict[str, str]:
        """Presigned URLs of the job's videos (``videos/*.mp4``), valid for ``expires_in`` seconds."""
        s3 = self.backend.client("s3")
        bucket, prefix = split_s3_uri(self.output_uri)
        return {
            relative: s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": f"{prefix}/{relative}"},
                                                ExpiresIn=expires_in)
            for relative, _ in list_keys(self.output_uri, s3)
            if relative.startswith("videos/") and relative.endswith(".mp4")
        }

    def cancel(self, reason: str = "cancelled by the user") -> JobStatus:
        """Stop the execution and terminate the Batch job(s), so no instance keeps running for it."""
        sfn = self.backend.client("stepfunctions")
        self._cancel_reason = reason
        try:
            sfn.stop_execution(executionArn=self.execution_arn, error="WorkbenchJobCancelled", cause=reason)
        except aws.sdk_errors() as exc:
            if aws.error_code(exc) not in ("ExecutionDoesNotExist",):
                raise
        batch_client = self.backend.client("batch")
        for job in self._batch_jobs():
            if job["status"] not in ("SUCCEEDED", "FAILED"):
                batch_client.terminate_job(jobId=job["jobId"], reason=f"Workbench: {reason}")
        self._final = None
        return self.status()

    def cost(self) -> float | None:
        """The job's cost so far in USD: run time x the on-demand price of its instance (None before it runs).

        The instance type comes from the Batch job's container instance; where that is unknown, the type the
        estimate assumed. An estimate either way (see :mod:`workbench.backends.aws_costs`).
        """
        return self._cost(self._batch_jobs())

    def _cost(self, batch: list[dict]) -> float | None:
        if not batch:
            return None
        job = batch[0]
        instance = self.backend.instance_type_of(job) or instance_for(self.spec())
        nodes = (job.get("nodeProperties") or {}).get("numNodes", 1)
        return actual_cost(instance, nodes, job.get("startedAt"), job.get("stoppedAt"), int(time.time() * 1000))

    # ---------------------------------------------------------------- helpers

    @cached_property
    def _spec(self) -> JobSpec:
        document = json.loads(self._describe_execution().get("input") or "{}").get("inputParameters")
        if not document:
            raise WorkbenchError(f"the execution of AWS job {self.job_id} has no inputParameters")
        return parse_spec(document)

    def spec(self) -> JobSpec:
        return self._spec

    def _describe_execution(self) -> dict:
        try:
            return self.backend.client("stepfunctions").describe_execution(executionArn=self.execution_arn)
        except aws.sdk_errors() as exc:
            if aws.error_code(exc) == "ExecutionDoesNotExist":
                raise JobNotFoundError(f"no AWS job {self.job_id!r} (no execution {self.execution_arn})") from None
            raise

    def _batch_jobs(self) -> list[dict]:
        """The Batch job(s) named after this job, described (newest first)."""
        batch = self.backend.client("batch")
        summaries = [
            summary
            for queue in self.backend.config.job_queues
            for summary in batch.list_jobs(
                jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [JOB_NAME_PREFIX + self.job_id]}]
            )["jobSummaryList"]
        ]
        if not summaries:
            return []
        ids = [s["jobId"] for s in sorted(summaries, key=lambda s: s.get("createdAt", 0), reverse=True)]
        return batch.describe_jobs(jobs=ids)["jobs"]


class AwsBackend(Backend):
    """Runs jobs on the deployed pipeline; see the module documentation."""

    name = "aws"

    def __init__(
        self,
        stack_name: str | None = None,
        config_file: str | os.PathLike[str] | None = None,
        config: AwsConfig | None = None,
        region: str | None = None,
        session: Any = None,
        budget: float | None = None,
        expected_duration_s: float | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.stack_name = stack_name or os.environ.get("WORKBENCH_AWS_STACK") or DEFAULT_STACK
        self.config_file = config_file or os.environ.get("WORKBENCH_AWS_CONFIG")
        self.region = region
        self.budget = budget
        self.expected_duration_s = expected_duration_s
        self.cache_dir = Path(cache_dir) if cache_dir else paths.workbench_home() / "aws" / "runs"
        self._session = session
        self._default_bucket: str | None = None
        self._config = config
        self._clients: dict[str, Any] = {}
        self._instance_types: dict[str, str | None] = {}

    # ---------------------------------------------------------------- configuration

    @property
    def session(self) -> Any:
        """The boto3 session: the one given, else the default one, else SageMaker's where no region is set."""
        if self._session is None:
            session = aws.boto3().session.Session(region_name=self.region)
            if session.region_name is None:
                picked = sagemaker_session()
                if picked is not None:
                    session, self._default_bucket = picked
            self._session = session
        return self._session

    @property
    def config(self) -> AwsConfig:
        if self._config is None:
            self._config = self._load_config()
        return self._config

    def _load_config(self) -> AwsConfig:
        if self.config_file:
            path = Path(self.config_file).expanduser()
            try:
                outputs = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise BackendConfigError(f"cannot read the AWS backend config {path}: {exc}") from None
            return AwsConfig.from_outputs(outputs, self.region or outputs.get("Region"), self._default_bucket, str(path))
        cloudformation = self.client("cloudformation")
        try:
            stack = cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
        except aws.sdk_errors() as exc:
            raise BackendConfigError(
                f"cannot read the stack {self.stack_name!r} ({aws.error_message(exc)}); deploy infra/ with the "
                "pipeline enabled, or pass stack_name=... or config_file=..."
            ) from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        region = self.region or self.session.region_name
        return AwsConfig.from_outputs(outputs, region, self._default_bucket, f"the outputs of stack {self.stack_name!r}")

    def client(self, service: str) -> Any:
        if service not in self._clients:
            region = self._config.region if self._config is not None else self.region
            self._clients[service] = aws.client(service, region=region, session=self.session)
        return self._clients[service]

    # ---------------------------------------------------------------- jobs

    def estimate(self, spec: JobSpec) -> CostEstimate:
        """The estimated cost of ``spec`` on this stack's capacity (before submission; see
        :mod:`workbench.backends.aws_costs`)."""
        return estimate(spec, self.expected_duration_s, uses=self.config.placement(spec).uses)

    def submit(self, spec: JobSpec, budget: float | None = None) -> AwsJob:
        cost = self.estimate(spec)
        limit = budget if budget is not None else self.budget
        if limit is not None and cost.usd > limit:
            raise BudgetExceededError(cost.usd, limit, cost.describe())
        job_id = str(uuid.uuid4())
        document = self.stage_inputs(spec, job_id)
        self.client("stepfunctions").start_execution(
            stateMachineArn=self.config.state_machine_arn,
            name=job_id,
            input=json.dumps({"jobId": job_id, "inputParameters": document}),
        )
        record = {"job_id": job_id, "submitted_at": time.time(), "estimate": asdict(cost), "spec": document}
        records = paths.workbench_home() / "aws" / "jobs"
        records.mkdir(parents=True, exist_ok=True)
        (records / f"{job_id}.json").write_text(json.dumps(record, indent=2))
        return AwsJob(self, job_id)

    def stage_inputs(self, spec: JobSpec, job_id: str) -> dict[str, Any]:
        """The spec document with local inputs uploaded to ``inputs/<job-id>/`` and replaced by their s3:// URIs."""
        document = spec.to_dict()
        training = document["trainingConfig"]
        custom = document.get("customEnvironmentS3Uri")
        if custom and not custom.startswith("s3://"):
            document["customEnvironmentS3Uri"] = self._upload(custom, job_id)
        policy = training.get("policy")
        if policy:
            training["policyS3Uri"] = self._latest_checkpoint(policy) if is_job_id(policy) else self._stage(policy, job_id)
            training["policy"] = None
        resume = training.get("resumeFrom")
        if resume and not resume.startswith("s3://") and not is_job_id(resume):
            training["resumeFrom"] = self._upload(resume, job_id)
        parse_spec(document)
        return document

    def _stage(self, value: str, job_id: str) -> str:
        return value if value.startswith("s3://") else self._upload(value, job_id)

    def _upload(self, local: str, job_id: str) -> str:
        path = Path(local.removeprefix("file://")).expanduser()
        if not path.is_file():
            raise WorkbenchError(f"cannot upload {local!r}: not a file on this machine")
        key = f"{INPUT_PREFIX}/{job_id}/{path.name}"
        try:
            self.client("s3").upload_file(str(path), self.config.bucket, key)
        except aws.sdk_errors() as exc:
            raise WorkbenchError(f"could not upload {path} to s3://{self.config.bucket}/{key}: {aws.error_message(exc)}") from None
        return f"s3://{self.config.bucket}/{key}"

    def _latest_checkpoint(self, job_id: str) -> str:
        """The newest checkpoint a previous AWS training job uploaded (numbers compared as numbers)."""
        prefix = f"s3://{self.config.bucket}/{OUTPUT_PREFIX}/{job_id}/checkpoints"
        newest = newest_of(PurePosixPath(rel) for rel, _ in list_keys(prefix, self.client("s3")))
        if newest is None:
            raise WorkbenchError(f"AWS job {job_id} uploaded no checkpoints under {prefix}/")
        return f"{prefix}/{newest}"

    def job(self, job_id: str) -> AwsJob:
        job = AwsJob(self, check_job_id(job_id, AWS_JOB_ID_PATTERN))
        job._describe_execution()
        return job

    def list_jobs(self) -> list[JobStatus]:
        """Every execution of the state machine (newest first), with the state of its execution."""
        sfn = self.client("stepfunctions")
        statuses = []
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=self.config.state_machine_arn):
            for execution in page["executions"]:
                state = EXECUTION_STATES.get(execution["status"], JobState.RUNNING)
                stopped = execution.get("stopDate") or execution["startDate"]
                statuses.append(JobStatus(
                    job_id=execution["name"], state=state, reason=f"execution {execution['status']}",
                    updated_at=stopped.timestamp(), details={"execution_arn": execution["executionArn"]},
                ))
        return sorted(statuses, key=lambda s: s.updated_at, reverse=True)

    def estimate_cost(self, job_id: str) -> float:
        """The job's cost so far in USD (used by sweeps' cost budgets); 0 before its instance starts."""
        return AwsJob(self, job_id).cost() or 0.0

    def instance_type_of(self, batch_job: dict) -> str | None:
        """The EC2 instance type a Batch job ran on (container instance -> EC2 instance), or None if unknown."""
        arn = (batch_job.get("container") or {}).get("containerInstanceArn")
        if not arn or not arn.startswith("arn:"):
            return None
        if arn not in self._instance_types:
            self._instance_types[arn] = self._lookup_instance_type(arn)
        return self._instance_types[arn]

    def _lookup_instance_type(self, container_instance_arn: str) -> str | None:
        cluster = container_instance_arn.split(":container-instance/", 1)[-1].split("/")[0]
        try:
            found = self.client("ecs").describe_container_instances(
                cluster=cluster, containerInstances=[container_instance_arn])["containerInstances"]
            if not found:
                return None
            reservations = self.client("ec2").describe_instances(InstanceIds=[found[0]["ec2InstanceId"]])["Reservations"]
            return reservations[0]["Instances"][0]["InstanceType"]
        except (aws.sdk_errors(), KeyError, IndexError):
            return None


def running_state(batch_job: Mapping[str, Any] | None, now: float) -> tuple[JobState, str]:
    """The state of a job whose execution runs, from its Batch job (None: not submitted to Batch yet)."""
    if batch_job is None:
        return JobState.SUBMITTED, "validating and preparing the job"
    batch_status = batch_job["status"]
    if batch_status == "RUNNABLE":
        waited = now - batch_job.get("createdAt", now * 1000) / 1000
        if waited > RUNNABLE_PATIENCE_S:
            return JobState.SUBMITTED, (
                f"the Batch job has waited {waited / 60:.0f} min for a GPU instance (RUNNABLE): the region may have "
                "no g6/g6e/g5 capacity right now, or the account's EC2 quota for G instances (vCPUs of 'Running "
                "On-Demand G and VT instances') is too low; check Service Quotas, or wait"
            )
        return JobState.SUBMITTED, "waiting for a GPU instance (Batch job RUNNABLE)"
    if batch_status in BATCH_STATES:
        return BATCH_STATES[batch_status], f"Batch job {batch_status}"
    return JobState.RUNNING, f"Batch job {batch_status}, waiting for the runner's report"


def _queue_check(state: str, error: str) -> bool:
    """Whether a task failure is the queue loop's routine (a start-wait timeout, a caught check or heartbeat error)."""
    if state == QUEUE_CHECK_STATES[0]:
        return error in ("States.Timeout", "States.HeartbeatTimeout")
    return state in QUEUE_CHECK_STATES


def _plain_cause(cause: str) -> str:
    """A Lambda error's cause is its JSON error document: keep the message."""
    try:
        document = json.loads(cause)
    except ValueError:
        return cause
    return str(document.get("errorMessage", cause)) if isinstance(document, dict) else cause


def sagemaker_session() -> tuple[Any, str | None] | None:
    """``(boto3 session, default bucket)`` from ``sagemaker.Session()`` inside SageMaker, else None."""
    inside = os.path.exists("/opt/ml/metadata/resource-metadata.json") or "SAGEMAKER_INTERNAL_IMAGE_URI" in os.environ
    if not inside:
        return None
    try:
        import sagemaker
    except ImportError:
        return None
    session = sagemaker.Session()
    try:
        bucket = session.default_bucket()
    except Exception:  # noqa: BLE001 - the default bucket is optional (the stack's bucket is used when present)
        bucket = None
    return session.boto_session, bucket
