"""Validate a job and prepare its AWS Batch submission: the internal state machine's first step.

Input (the state machine passes these two fields of its own input)::

    {"jobId": "<job id>", "inputParameters": {<job spec document>} or its JSON text}

Output (the state machine keeps it at ``$.prepared``; every value the Batch ``SubmitJob`` call needs)::

    {"jobName": "workbench-<job id>", "jobQueue": "<queue ARN>", "jobDefinition": "<job definition ARN>",
     "mode": "train" | "evaluate", "multiNode": false, "numNodes": 1, "gpusPerNode": "1",
     "resourceRequirements": [{"Type": "GPU", "Value": "1"}, {"Type": "VCPU", "Value": "4"},
                              {"Type": "MEMORY", "Value": "15073"}],
     "attemptDurationSeconds": 29700, "outputUri": "s3://<bucket>/outputs/<job id>",
     "environment": {"WORKBENCH_JOB_ID": ..., "WORKBENCH_JOB_SPEC": ..., "WORKBENCH_OUTPUT_URI": ...,
                     "WORKBENCH_CHECKPOINT_DIR": ..., "WORKBENCH_TASK_TOKEN_PARAMETER": "<prefix>/<job id>"},
     "tokenParameters": {"start": "<prefix>/<job id>/start-token", "run": ".../run-token",
                         "caller": ".../caller-token"},
     "notices": ["..."]}

No task token passes through here, and none reaches the container's environment (Batch DescribeJobs would show
it): the state machine keeps each token in an SSM SecureString parameter named in ``tokenParameters`` (the
caller's token, and the ``$$.Task.Token`` of the "wait for the job to start" and "run" states), and the runner
reads them by the name ``WORKBENCH_TASK_TOKEN_PARAMETER`` gives (see ``workbench/transport/sfn_channel.py`` and
``infra/lambdas/batch_events``, which use the same suffixes, ``TOKEN_PARAMETER_SUFFIXES``). A bad job raises :class:`ValidationError` (the state machine's error name), whose message
lists every problem. Settings come from the Lambda's environment (see :class:`Settings`).

``resourceRequirements`` is one node's size (``workbench.spec.instance_types``, bundled here): the job's GPU share of
``computeConfig.instanceType`` (which must be one the stack offers) or, without one, of the smallest offered
instance with ``gpusPerNode`` GPUs. A multi-node job goes to the multi-node queue (one Availability Zone, a
cluster placement group, on-demand instances), every other job to the single-node queue its
``computeConfig.capacity`` picks on this stack's ``CAPACITY`` (``workbench.spec.capacity``: the main queue for
``any``; a job asking for a kind the stack does not offer is refused with the reason). A missing S3 input ("does
not exist": the role may list the pipeline's prefixes, so S3 answers 404) reads differently from one the pipeline
may not read (403, "forbidden").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from workbench.spec import capacity as capacities
from workbench.spec.document import AWS_JOB_ID_PATTERN, JobSpec, SpecError, is_job_id, parse_spec
from workbench.spec.instance_types import DEFAULT_INSTANCE_TYPES, JobSize, SizingError, job_size

TOKEN_PARAMETER_VARIABLE = "WORKBENCH_TASK_TOKEN_PARAMETER"
PER_JOB_ENVIRONMENT = (
    "WORKBENCH_JOB_ID",
    "WORKBENCH_JOB_SPEC",
    "WORKBENCH_OUTPUT_URI",
    "WORKBENCH_CHECKPOINT_DIR",
    TOKEN_PARAMETER_VARIABLE,
)
TOKEN_PARAMETER_SUFFIXES = {"start": "start-token", "run": "run-token", "caller": "caller-token"}
"""The job's token parameters, ``<prefix>/<job id>/<suffix>``; the runner and the Batch failure hook use the same."""
JOB_NAME_PREFIX = "workbench-"
TIMEOUT_SECONDS = {"train": 28800, "evaluate": 7200}
BATCH_TIMEOUT_MARGIN_SECONDS = 900
INPUT_PREFIX = "inputs/"
OUTPUT_PREFIX = "outputs/"


class ValidationError(Exception):
    """The job cannot run: the message lists every problem (the state machine sees the error 'ValidationError')."""


@dataclass(frozen=True)
class Settings:
    """Where jobs go: set by the stack as the Lambda's environment variables of the same names."""

    bucket: str
    job_queue: str
    single_node_job_definition: str
    multi_node_job_definition: str
    checkpoint_root: str
    token_parameter_prefix: str = "/workbench/jobs"
    multi_node_job_queue: str = ""
    """The queue of multi-node jobs (its compute environment has a cluster placement group); empty: ``job_queue``."""
    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    """The instance types the compute environments offer (``INSTANCE_TYPES``, comma-separated)."""
    capacity: str = capacities.DEFAULT_STACK_CAPACITY
    """What the stack's single-node compute environments are (``CAPACITY``: on-demand, spot, spot-then-on-demand)."""
    on_demand_job_queue: str = ""
    """The queue of on-demand capacity only (``ON_DEMAND_JOB_QUEUE``), where the stack has one besides the main."""
    spot_job_queue: str = ""
    """The queue of spot capacity only (``SPOT_JOB_QUEUE``), where the stack has one besides the main."""

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(
            bucket=os.environ["BUCKET_NAME"],
            job_queue=os.environ["JOB_QUEUE"],
            single_node_job_definition=os.environ["SINGLE_NODE_JOB_DEFINITION"],
            multi_node_job_definition=os.environ["MULTI_NODE_JOB_DEFINITION"],
            checkpoint_root=os.environ["CHECKPOINT_ROOT"],
            token_parameter_prefix=os.environ["TOKEN_PARAMETER_PREFIX"],
            multi_node_job_queue=os.environ.get("MULTI_NODE_JOB_QUEUE", ""),
            instance_types=tuple(filter(None, os.environ.get("INSTANCE_TYPES", "").split(","))) or DEFAULT_INSTANCE_TYPES,
            capacity=os.environ.get("CAPACITY") or capacities.DEFAULT_STACK_CAPACITY,
            on_demand_job_queue=os.environ.get("ON_DEMAND_JOB_QUEUE", ""),
            spot_job_queue=os.environ.get("SPOT_JOB_QUEUE", ""),
        )

    def queue(self, placement: capacities.Placement) -> str:
        """The ARN of the queue a placement names (see ``workbench.spec.capacity``)."""
        return {
            capacities.MAIN_QUEUE: self.job_queue,
            capacities.MULTI_NODE_QUEUE: self.multi_node_job_queue or self.job_queue,
            capacities.ON_DEMAND_QUEUE: self.on_demand_job_queue,
            capacities.SPOT_QUEUE: self.spot_job_queue,
        }[placement.queue]

    @property
    def readable_prefixes(self) -> tuple[str, ...]:
        return tuple(f"s3://{self.bucket}/{prefix}" for prefix in (INPUT_PREFIX, OUTPUT_PREFIX))


def prepare(event: dict[str, Any], settings: Settings, s3_client: Any = None) -> dict[str, Any]:
    """The Batch submission for ``event``; ``s3_client`` (boto3) checks that referenced S3 objects exist."""
    job_id = event.get("jobId")
    if not isinstance(job_id, str) or not AWS_JOB_ID_PATTERN.match(job_id):
        raise ValidationError(f"jobId must be 1-80 letters, digits, '-' or '_', got {job_id!r}")
    try:
        spec = parse_spec(event.get("inputParameters") or {})
    except SpecError as exc:
        raise ValidationError(str(exc)) from None
    problems = [_check_uri(field, uri, settings, s3_client) for field, uri in _referenced_uris(spec)]
    problems = [p for p in problems if p]
    try:
        size: JobSize = job_size(settings.instance_types, spec.compute["gpusPerNode"], spec.compute.get("instanceType"))
    except SizingError as exc:
        problems.append(str(exc))
    multi_node = spec.num_nodes > 1
    try:
        placement = capacities.placement(spec.compute["capacity"], settings.capacity, multi_node)
    except capacities.CapacityUnavailable as exc:
        problems.append(f"{capacities.FIELD}: {exc}")
    if problems:
        raise ValidationError("the job's inputs are not usable on AWS:\n" + "\n".join(f"  - {p}" for p in problems))

    output_uri = f"s3://{settings.bucket}/{OUTPUT_PREFIX}{job_id}"
    token_parameters = _token_parameter_path(settings, job_id)
    notices = list(spec.notices)
    resume = spec.training.get("resumeFrom")
    if isinstance(resume, str) and is_job_id(resume):
        checkpoints = _checkpoint_dir(settings, resume)
        spec = spec.with_training(resumeFrom=checkpoints)
        notices.append(f"trainingConfig.resumeFrom: job {resume} resumes from its checkpoints on EFS, {checkpoints}")
    notices.append(
        f"each node gets {size.gpus} GPU(s), {size.vcpus} vCPUs and {size.memory_mib} MiB: its share of "
        f"{size.instance_type}" + ("" if spec.compute.get("instanceType") else " (the smallest offered instance with "
                                   "enough GPUs; name computeConfig.instanceType for a larger one)")
    )
    notices.append(f"the job runs on {placement.uses} capacity")
    return {
        "jobName": JOB_NAME_PREFIX + job_id,
        "jobQueue": settings.queue(placement),
        "jobDefinition": settings.multi_node_job_definition if multi_node else settings.single_node_job_definition,
        "mode": spec.mode,
        "multiNode": multi_node,
        "numNodes": spec.num_nodes,
        "gpusPerNode": str(spec.compute["gpusPerNode"]),
        "resourceRequirements": size.resource_requirements(),
        "attemptDurationSeconds": TIMEOUT_SECONDS[spec.mode] + BATCH_TIMEOUT_MARGIN_SECONDS,
        "outputUri": output_uri,
        "environment": {
            "WORKBENCH_JOB_ID": job_id,
            "WORKBENCH_JOB_SPEC": spec.to_json(indent=None),
            "WORKBENCH_OUTPUT_URI": output_uri,
            "WORKBENCH_CHECKPOINT_DIR": _checkpoint_dir(settings, job_id),
            TOKEN_PARAMETER_VARIABLE: token_parameters,
        },
        "tokenParameters": {role: f"{token_parameters}/{suffix}" for role, suffix in TOKEN_PARAMETER_SUFFIXES.items()},
        "notices": notices,
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point."""
    import boto3

    prepared = prepare(event, Settings.from_environment(), boto3.client("s3"))
    print(json.dumps({"jobId": event.get("jobId"), "jobDefinition": prepared["jobDefinition"], "notices": prepared["notices"]}))
    return prepared


def _referenced_uris(spec: JobSpec) -> list[tuple[str, str]]:
    uris = [("customEnvironmentS3Uri", spec.custom_environment_uri)]
    uris += [(f"trainingConfig.{key}", spec.training.get(key)) for key in ("policyS3Uri", "resumeFrom")]
    return [(field, uri) for field, uri in uris if isinstance(uri, str)]


def _checkpoint_dir(settings: Settings, job_id: str) -> str:
    """Where the runner of job ``job_id`` keeps its checkpoints (EFS, shared by every job)."""
    return f"{settings.checkpoint_root.rstrip('/')}/{job_id}"


def _token_parameter_path(settings: Settings, job_id: str) -> str:
    """The SSM path holding job ``job_id``'s task tokens (never the tokens themselves: their names)."""
    return f"/{settings.token_parameter_prefix.strip('/')}/{job_id}"


def _check_uri(field: str, uri: str, settings: Settings, s3_client: Any) -> str | None:
    if field == "trainingConfig.resumeFrom" and is_job_id(uri):
        return None  # a previous job: its checkpoints are on EFS
    if not uri.startswith("s3://"):
        return f"{field}: {uri!r} is a local file; upload it to S3 first (the aws backend does this for you)"
    if not uri.startswith(settings.readable_prefixes):
        return f"{field}: {uri} is outside the locations jobs may read ({', '.join(settings.readable_prefixes)})"
    if s3_client is None:
        return None
    from botocore.exceptions import ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        if code in ("404", "NoSuchKey", "NotFound"):
            return f"{field}: {uri} does not exist"
        if code in ("403", "AccessDenied", "Forbidden"):
            return f"{field}: {uri}: the pipeline may not read it (forbidden)"
        return f"{field}: cannot read {uri} ({code})"
    return None
