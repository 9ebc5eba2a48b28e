"""checkov: every check that fails on the synthesized template and is acknowledged rather than fixed, with why.

``tests/infra/test_validators.py`` runs checkov (``--framework cloudformation``) on the template and fails on
any failing check not acknowledged here. ``apply_checkov`` writes each acknowledgment into its resource's
``Metadata`` as ``checkov: {skip: [{id, comment}]}``, which is how checkov is told to skip a check on one
resource; the comment is the reason, and checkov reports it with the skipped check. Each acknowledgment names
one check on one construct, like the cdk-nag acknowledgments in ``nag.py``.

Fixed in the code instead: bucket versioning (CKV_AWS_21, ``storage.py``: previous versions expire after
``NONCURRENT_VERSION_DAYS``).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

from workbench_infra.stack import IsaacLabPipeline, WorkbenchStack

LOG_GROUP_KMS = (
    "CKV_AWS_158",
    (
        "CloudWatch Logs already encrypts every log group at rest; a customer-managed KMS key costs a key per month "
        "plus a key policy for the Logs service, and these logs hold job progress and resource names, no secrets."
    ),
)
OUTSIDE_VPC = (
    "CKV_AWS_117",
    (
        "Calls AWS APIs only (IAM-authorised, over TLS) and nothing inside the VPC; inside it, it would need "
        "interface endpoints or the NAT gateway and hold ENIs, for no gain."
    ),
)
NO_RESERVED_CONCURRENCY = (
    "CKV_AWS_115",
    (
        "Reserved concurrency comes out of the account's pool, and an account with a low concurrency quota (new "
        "accounts: 10) rejects any reservation, which would fail the deployment; the load is a few invocations "
        "per job, and the Batch maxvCpus caps what jobs cost."
    ),
)
DEFAULT_ENVIRONMENT_ENCRYPTION = (
    "CKV_AWS_173",
    (
        "Lambda encrypts environment variables at rest with an AWS managed key; these hold resource names and "
        "ARNs, no secrets, so a customer-managed key would add cost and nothing else."
    ),
)
SYNCHRONOUS = (
    "A dead-letter queue only receives failed asynchronous invocations, and this function is invoked synchronously: "
)
DEPLOYMENT_ONLY = (
    "CDK's own handler, invoked by CloudFormation during a deployment; it answers CloudFormation itself and any "
    "failure fails the deployment, so a request parked in a dead-letter queue would be replayed by nobody."
)


def no_dead_letter_queue(reason: str) -> tuple[str, str]:
    return "CKV_AWS_116", reason


def apply_checkov(stack: WorkbenchStack) -> None:
    """Write every acknowledgment into its resource's Metadata (``checkov: skip``)."""
    if stack.pipeline is None:
        return
    for construct, checks in acknowledgments(stack, stack.pipeline).items():
        resource = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
        assert isinstance(resource, cdk.CfnResource), construct.node.path
        resource.add_metadata("checkov", {"skip": [{"id": check, "comment": reason} for check, reason in checks]})


def acknowledgments(stack: WorkbenchStack, pipeline: IsaacLabPipeline) -> dict[IConstruct, list[tuple[str, str]]]:
    """Every acknowledged check, by construct: ``(check id, reason)``."""
    network, compute, storage = pipeline.network, pipeline.compute, pipeline.storage
    orchestration = pipeline.orchestration
    calls_aws_apis = [OUTSIDE_VPC, NO_RESERVED_CONCURRENCY]
    found: dict[IConstruct, list[tuple[str, str]]] = {
        compute.log_group: [LOG_GROUP_KMS],
        orchestration.state_machine_logs: [LOG_GROUP_KMS],
        orchestration.node.find_child("PrepareFunctionLogs"): [LOG_GROUP_KMS],
        orchestration.node.find_child("EntryFunctionLogs"): [LOG_GROUP_KMS],
        orchestration.node.find_child("BatchFailureFunctionLogs"): [LOG_GROUP_KMS],
        orchestration.prepare_function: [
            *calls_aws_apis,
            DEFAULT_ENVIRONMENT_ENCRYPTION,
            no_dead_letter_queue(SYNCHRONOUS + "the state machine's lambda:invoke task gets and handles its errors."),
        ],
        orchestration.entry_function: [
            *calls_aws_apis,
            DEFAULT_ENVIRONMENT_ENCRYPTION,
            no_dead_letter_queue(
                SYNCHRONOUS + "VAMS's workflow (a Step Functions lambda:invoke task) gets its errors, and it fails the "
                "caller's token itself when it cannot start the job."
            ),
        ],
        orchestration.node.find_child("BatchFailureFunction"): [
            *calls_aws_apis,
            no_dead_letter_queue(
                "Invoked asynchronously by EventBridge (4 retries); an event it still loses costs only time: the "
                "state machine's 30-minute heartbeat timeout fails that job anyway, and nobody would read the queue."
            ),
        ],
        stack.node.find_child("AWS679f53fac002430cb0da5b7982bd2287"): [
            *calls_aws_apis,
            no_dead_letter_queue(DEPLOYMENT_ONLY),
        ],
    }
    flow_logs = network.node.try_find_child("FlowLogs")
    if flow_logs is not None:  # a new VPC
        found[flow_logs] = [LOG_GROUP_KMS]
    if isinstance(storage.bucket, s3.Bucket):
        found[storage.bucket] = [
            (
                "CKV_AWS_18",
                (
                    "Only the pipeline's own roles and the account's users write here; audit access with CloudTrail "
                    "data events. A log bucket would need its own log bucket (cdk-nag S1 is acknowledged likewise)."
                ),
            )
        ]
    if pipeline.registration is not None:
        registration = pipeline.registration
        found[registration.node.find_child("FunctionLogs")] = [LOG_GROUP_KMS]
        found[registration.function] = [
            *calls_aws_apis,
            DEFAULT_ENVIRONMENT_ENCRYPTION,
            no_dead_letter_queue(
                SYNCHRONOUS + "CDK's provider framework invokes it and reports its errors to CloudFormation."
            ),
        ]
        found[registration.provider.node.find_child("framework-onEvent")] = [
            *calls_aws_apis,
            DEFAULT_ENVIRONMENT_ENCRYPTION,
            no_dead_letter_queue(DEPLOYMENT_ONLY),
        ]
    return found
