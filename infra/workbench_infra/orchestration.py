"""Orchestration: the internal state machine, its Lambdas, the VAMS entry Lambda and the Batch failure hook.

The internal state machine's input (the ``aws`` backend starts it directly; the entry Lambda does for VAMS)::

    {"jobId": "<job id, also the execution name>",
     "inputParameters": {<job spec document, see workbench.spec.document>},
     "callerTaskToken": "<optional: a task token to report the job's end to>"}

Flow: "Check the input" (jobId and inputParameters present) -> "Validate and prepare" (Lambda, the same
``workbench.spec.document`` code; it also names the job's token parameters, ``$.prepared.tokenParameters``) -> with a
caller's token, "Keep the caller's token" (``aws-sdk:ssm:putParameter``, SecureString) -> "How is the job
submitted?" -> "Submit the Batch job" or "Submit the multi-node Batch job" (``aws-sdk:batch:submitJob``,
request-response: no token in the job; its environment names the parameters, ``WORKBENCH_TASK_TOKEN_PARAMETER``)
-> "Start the queue clock" -> "Wait for the job to start" -> "Which job?" (a Choice on mode and node count) ->
"Run the training job", "Run the multi-node training job" or "Run the evaluation job" -> "Finalize" -> "Delete
the job's token parameters" -> success to the caller's token, if any. Output: ``{"jobId", "outputUri",
"result"}`` where ``result`` is what the runner sent with SendTaskSuccess.

Tokens. A waiting state is ``aws-sdk:ssm:putParameter.waitForTaskToken``: its ``$$.Task.Token`` goes only into
the job's SecureString parameter (``<prefix>/<job id>/start-token`` or ``run-token``, prefix
``/<stack name>/jobs``), never into the Batch job, so ``batch:DescribeJobs`` shows no token. The runner
(``workbench/transport/sfn_channel.py``) reads them with the job role's ``ssm:GetParameter`` on that prefix only.

Queue time does not count against the heartbeat. "Wait for the job to start" has no heartbeat and a
``QUEUE_CHECK_SECONDS`` (300 s) timeout: the runner's first act is SendTaskSuccess on the start token. On each
timeout the loop "Check the queued Batch job" (``aws-sdk:batch:describeJobs``: a job that FAILED in the queue
fails the execution even if the Batch failure hook missed it) -> "Heartbeat the caller" (``aws-sdk:sfn:
sendTaskHeartbeat``; a caller whose token is closed stops the job, which has not started; any other error is
ignored until the next check) -> "Count the queue check" -> after ``QUEUE_LIMIT_SECONDS`` (24 h) the job fails
with ``QueueTimeout``, else it waits again with a new token (overwriting the parameter; the runner retries its
announcement with the new one). The run states wait on the run token with heartbeat 1800 s and timeout 28800 s
(training) or 7200 s (evaluation), counted from the start; the runner sends every heartbeat to the run token
and the caller's token.

Every failure (invalid job, the runner's SendTaskFailure, a failed Batch job, heartbeat timeout, timeout, the
queue limit) is caught: the failure is described at ``$.failure`` (``error``, ``cause``), the Batch job is
looked up by its name (``aws-sdk:batch:listJobs``, response read as ``$.JobSummaryList[*].JobId``) and
terminated (``aws-sdk:batch:terminateJob``), the job's token parameters are deleted (``aws-sdk:ssm:
deleteParameters``, on every end; a failure to delete changes nothing), the caller's token is failed with the
same error and cause, and the execution ends in the Fail state "Job failed" with that error and cause. A
stopped execution (the ``aws`` backend's cancel) runs none of this: its parameters stay, holding dead tokens.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from workbench.spec.capacity import ON_DEMAND, SPOT
from workbench_infra.compute import RETENTION, Compute, token_parameter_arn
from workbench_infra.config import PipelineConfig
from workbench_infra.lambda_modules import LAMBDAS_DIR, load_lambda_module
from workbench_infra.state_machine import QUEUE_LIMIT_SECONDS, TIMEOUT_SECONDS, DefinitionBuilder
from workbench_infra.storage import CHECKPOINT_ROOT, INPUT_PREFIX, OUTPUT_PREFIX, Storage

INFRA_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = INFRA_DIR.parent
SPEC_BUNDLE = ("spec", "errors.py")
"""What the Lambdas that read specs bundle from ``workbench/``: the stdlib-only spec package and its errors."""
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
QUEUE_VARIABLES = {ON_DEMAND: "ON_DEMAND_JOB_QUEUE", SPOT: "SPOT_JOB_QUEUE"}
"""The prepare Lambda's variables naming the queue of each capacity kind (``Settings`` of its handler)."""
EXECUTION_TIMEOUT = Duration.seconds(QUEUE_LIMIT_SECONDS + max(TIMEOUT_SECONDS.values()) + 3600)


def lambda_code(name: str, with_spec: bool = False) -> lambda_.Code:
    """The asset of ``infra/lambdas/<name>``; ``with_spec`` adds the stdlib-only ``workbench.spec`` package."""
    root = Path(tempfile.mkdtemp(prefix=f"workbench-lambda-{name}-"))
    atexit.register(shutil.rmtree, root, True)
    shutil.copy2(LAMBDAS_DIR / name / "handler.py", root / "handler.py")
    if with_spec:
        package = root / "workbench"
        package.mkdir()
        (package / "__init__.py").write_text('"""The workbench job spec, bundled for the Lambda."""\n')
        for entry in SPEC_BUNDLE:
            source = REPO_ROOT / "workbench" / entry
            if source.is_dir():
                shutil.copytree(source, package / entry, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, package / entry)
    return lambda_.Code.from_asset(str(root))


class Orchestration(Construct):
    """The Lambdas and the internal state machine."""

    def __init__(self, scope: Construct, id: str, config: PipelineConfig, compute: Compute, storage: Storage) -> None:
        super().__init__(scope, id)
        prepare_module = load_lambda_module("prepare")
        self.token_parameter_prefix = compute.token_parameter_prefix
        self.prepare_function = self._function(
            "PrepareFunction",
            "prepare",
            config,
            with_spec=True,
            environment={
                "BUCKET_NAME": storage.bucket.bucket_name,
                "JOB_QUEUE": compute.job_queue.job_queue_arn,
                "CAPACITY": config.capacity,
                **{QUEUE_VARIABLES[kind]: queue.job_queue_arn for kind, queue in compute.kind_queues.items()},
                "MULTI_NODE_JOB_QUEUE": compute.multi_node_job_queue.job_queue_arn,
                "INSTANCE_TYPES": ",".join(config.instance_types),
                "SINGLE_NODE_JOB_DEFINITION": compute.single_node_job_definition.ref,
                "MULTI_NODE_JOB_DEFINITION": compute.multi_node_job_definition.ref,
                "CHECKPOINT_ROOT": CHECKPOINT_ROOT,
                "TOKEN_PARAMETER_PREFIX": compute.token_parameter_prefix,
            },
        )
        self.prepare_function.add_to_role_policy(
            iam.PolicyStatement(
                sid="CheckReferencedObjects",
                actions=["s3:GetObject"],
                resources=[storage.bucket.arn_for_objects(INPUT_PREFIX + "*"), storage.bucket.arn_for_objects(OUTPUT_PREFIX + "*")],
            )
        )
        self.prepare_function.add_to_role_policy(storage.list_pipeline_prefixes("TellMissingFromForbidden"))
        self.state_machine_logs = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{config.stack_name}-pipeline",
            retention=RETENTION[config.log_retention_days],
            removal_policy=RemovalPolicy.RETAIN,
        )
        definition = DefinitionBuilder(self, compute, self.prepare_function, prepare_module).definition()
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=EXECUTION_TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.state_machine_logs, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        self.entry_function = self._function(
            "EntryFunction",
            "entry",
            config,
            function_name=config.entry_function_name,
            environment={"STATE_MACHINE_ARN": self.state_machine.state_machine_arn},
        )
        self.state_machine.grant_start_execution(self.entry_function)
        self.entry_function.add_to_role_policy(_caller_callback_statement())
        # A VAMS retry is answered from the first execution: read it, succeed or fail the new token.
        self.state_machine.grant_execution(self.entry_function, "states:DescribeExecution")
        self.entry_function.add_to_role_policy(
            iam.PolicyStatement(sid="SucceedCallerTask", actions=["states:SendTaskSuccess"], resources=["*"])
        )
        self._batch_failure_hook(config, compute)

    def _function(
        self,
        id: str,
        name: str,
        config: PipelineConfig,
        environment: dict[str, str],
        with_spec: bool = False,
        function_name: str | None = None,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self, f"{id}Logs", retention=RETENTION[config.log_retention_days], removal_policy=RemovalPolicy.DESTROY
        )
        return lambda_.Function(
            self,
            id,
            runtime=LAMBDA_RUNTIME,
            handler="handler.handler",
            code=lambda_code(name, with_spec=with_spec),
            timeout=Duration.seconds(60),
            memory_size=256,
            environment=environment,
            function_name=function_name,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
        )

    def _batch_failure_hook(self, config: PipelineConfig, compute: Compute) -> None:
        """Fail the token at once when a Batch job fails before its runner could report (see its handler)."""
        function = self._function("BatchFailureFunction", "batch_events", config, environment={})
        function.add_to_role_policy(_caller_callback_statement())
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadJobTokens",
                actions=["ssm:GetParameter"],
                resources=[token_parameter_arn(self.token_parameter_prefix)],
            )
        )
        rule = events.Rule(
            self,
            "BatchJobFailedRule",
            description="Workbench: report failed Batch jobs to their Step Functions task at once",
            event_pattern=events.EventPattern(
                source=["aws.batch"],
                detail_type=["Batch Job State Change"],
                detail={
                    "status": ["FAILED"],
                    "jobQueue": [queue.job_queue_arn for queue in compute.job_queues],
                },
            ),
        )
        rule.add_target(targets.LambdaFunction(function, retry_attempts=4))


def _caller_callback_statement() -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="FailCallerTask", actions=["states:SendTaskFailure"], resources=["*"])
