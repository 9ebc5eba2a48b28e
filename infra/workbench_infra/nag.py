"""cdk-nag: the AwsSolutions checks run as a CDK validation plugin at synth; synthesis fails on any finding not
acknowledged below. Each acknowledgment names one finding on one construct and says why it stands."""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from workbench_infra.stack import IsaacLabPipeline, WorkbenchStack

PREFIX = "AwsSolutions::AwsSolutions-"
LAMBDA_LOGGING = (
    "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    "AWSLambdaBasicExecutionRole only lets the function write its own CloudWatch logs.",
)
TRACING_AND_CALLBACKS = (
    "IAM5[Resource::*]",
    (
        "X-Ray PutTraceSegments/PutTelemetryRecords and states:SendTask* accept no resource narrower than '*' "
        "(a task token has no ARN)."
    ),
)


def apply_nag(app: cdk.App, stack: WorkbenchStack) -> None:
    """Run the AwsSolutions checks on synth and acknowledge the findings the design needs."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True))
    if stack.pipeline is not None:
        for construct, findings in acknowledgments(stack, stack.pipeline).items():
            for finding, reason in findings:
                cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=PREFIX + finding, reason=reason))


def acknowledgments(stack: WorkbenchStack, pipeline: IsaacLabPipeline) -> dict[IConstruct, list[tuple[str, str]]]:
    """Every acknowledged finding, by construct: ``(finding id, reason)``."""
    compute, storage, orchestration = pipeline.compute, pipeline.storage, pipeline.orchestration
    bucket = _bucket_arn(stack, storage.bucket)
    prefixes = [
        (f"IAM5[Resource::{bucket}/{prefix}*]", f"Objects under the pipeline's own {prefix} prefix, and nothing else.")
        for prefix in ("inputs/", "outputs/")
    ]
    tokens = (
        f"IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter"
        f"{compute.token_parameter_prefix}/*]",
        "The jobs' task token parameters (<prefix>/<job id>/*, named at run time) and no other parameter.",
    )
    instance_role = (
        "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]",
        "The documented instance role policy for Batch ECS instances (ECS agent, image pull, container logs).",
    )
    describe = ("IAM5[Resource::*]", "batch:DescribeComputeEnvironments has no resource-level permissions.")
    environments = [*compute.compute_environments.values(), compute.multi_node_compute_environment]
    lookups = [child for child in compute.node.children if child.node.id.endswith("EcsClusterLookup")]
    found: dict[IConstruct, list[tuple[str, str]]] = {
        **{environment: [instance_role] for environment in environments},
        **{lookup: [describe] for lookup in lookups},
        compute.job_role: [
            ("IAM5[Resource::*]", "states:SendTaskSuccess/Failure/Heartbeat accept no narrower resource (a token has no ARN)."),
            *prefixes,
            tokens,
        ],
        orchestration.prepare_function: [LAMBDA_LOGGING, TRACING_AND_CALLBACKS, *prefixes],
        orchestration.entry_function: [
            LAMBDA_LOGGING,
            TRACING_AND_CALLBACKS,
            (
                f"IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
                f"{_name_of(stack, orchestration.state_machine)}:*]",
                "states:DescribeExecution on the internal state machine's executions (a VAMS retry is answered "
                "from the first attempt's execution, named by the job id at run time).",
            ),
        ],
        orchestration.node.find_child("BatchFailureFunction"): [LAMBDA_LOGGING, TRACING_AND_CALLBACKS, tokens],
        orchestration.state_machine: [
            (
                "IAM5[Resource::*]",
                "batch:ListJobs/DescribeJobs, X-Ray and states:SendTask* (the caller's token) have no resource-level "
                "permissions.",
            ),
            (
                f"IAM5[Resource::<{stack.get_logical_id(orchestration.prepare_function.node.default_child)}.Arn>:*]",
                "CDK grants invoking every version of the prepare function; the function itself is fixed.",
            ),
            (
                "IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job/*]",
                "batch:TerminateJob on this account's jobs: job ids are only known at run time.",
            ),
            tokens,
        ],
        stack.node.find_child("AWS679f53fac002430cb0da5b7982bd2287"): [LAMBDA_LOGGING],
    }
    if isinstance(storage.bucket, s3.Bucket):
        found[storage.bucket] = [
            ("S1", "Holds job inputs and outputs written by the pipeline's own roles; audit access with CloudTrail.")
        ]
    if pipeline.registration is not None:
        registration = pipeline.registration.function
        found[registration] = [LAMBDA_LOGGING]
        found[pipeline.registration.provider] = [
            LAMBDA_LOGGING,
            (
                f"IAM5[Resource::<{stack.get_logical_id(registration.node.default_child)}.Arn>:*]",
                "CDK's provider framework may invoke every version of our registration function; the function is fixed.",
            ),
        ]
    return found


def _name_of(stack: cdk.Stack, state_machine: IConstruct) -> str:
    """How cdk-nag renders the state machine's name in an execution ARN (CDK splits it out of the ARN)."""
    ref = {"Ref": stack.get_logical_id(state_machine.node.default_child)}
    return json.dumps({"Fn::Select": [6, {"Fn::Split": [":", ref]}]}, separators=(",", ":"))


def _bucket_arn(stack: cdk.Stack, bucket: s3.IBucket) -> str:
    if isinstance(bucket, s3.Bucket):
        return f"<{stack.get_logical_id(bucket.node.default_child)}.Arn>"
    return f"arn:<AWS::Partition>:s3:::{bucket.bucket_name}"
