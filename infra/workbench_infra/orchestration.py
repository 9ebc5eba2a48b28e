"""Orchestration: the internal state machine, its Lambdas, the VAMS entry Lambda and the Batch failure hook.

The internal state machine's input (the ``aws`` backend starts it directly; the entry Lambda does for VAMS)::

    {"jobId": "<job id, also the execution name>",
     "inputParameters": {<job spec document, see workbench.spec>},
     "callerTaskToken": "<optional: a task token to report the job's end to>"}

Flow: "Check the input" (jobId and inputParameters present) -> "Validate and prepare" (Lambda, the same ``workbench.spec`` code) -> "Which job?" (a Choice on mode and
node count) -> one of three ``aws-sdk:batch:submitJob.waitForTaskToken`` states (the token travels only as the
container environment variable ``WORKBENCH_TASK_TOKEN``; heartbeat 1800 s; timeout 28800 s for training, 7200 s
for evaluation) -> "Finalize" -> success to the caller's token, if any. Output: ``{"jobId", "outputUri",
"result"}`` where ``result`` is what the runner sent with SendTaskSuccess.

Every failure (invalid job, the runner's SendTaskFailure, a failed Batch job, heartbeat timeout, timeout) is
caught: the failure is described at ``$.failure`` (``error``, ``cause``), the Batch job is looked up by its name
(``aws-sdk:batch:listJobs``, response read as ``$.JobSummaryList[*].JobId``) and terminated
(``aws-sdk:batch:terminateJob``), the caller's token is failed with the same error and cause, and the execution
ends in the Fail state "Job failed" with that error and cause.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from workbench_infra.compute import RETENTION, Compute
from workbench_infra.config import PipelineConfig
from workbench_infra.lambda_modules import LAMBDAS_DIR, load_lambda_module
from workbench_infra.storage import CHECKPOINT_ROOT, INPUT_PREFIX, OUTPUT_PREFIX, Storage

INFRA_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = INFRA_DIR.parent
SPEC_MODULES = ("spec.py", "task_catalogue.py")
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
HEARTBEAT_SECONDS = 1800
TIMEOUT_SECONDS = {"train": 28800, "evaluate": 7200}
EXECUTION_TIMEOUT = Duration.hours(9)


def lambda_code(name: str, with_spec: bool = False) -> lambda_.Code:
    """The asset of ``infra/lambdas/<name>``; ``with_spec`` adds the stdlib-only ``workbench.spec`` modules."""
    root = Path(tempfile.mkdtemp(prefix=f"workbench-lambda-{name}-"))
    atexit.register(shutil.rmtree, root, True)
    shutil.copy2(LAMBDAS_DIR / name / "handler.py", root / "handler.py")
    if with_spec:
        package = root / "workbench"
        package.mkdir()
        (package / "__init__.py").write_text('"""The workbench job spec, bundled for the Lambda."""\n')
        for module in SPEC_MODULES:
            shutil.copy2(REPO_ROOT / "workbench" / module, package / module)
    return lambda_.Code.from_asset(str(root))


class Orchestration(Construct):
    """The Lambdas and the internal state machine."""

    def __init__(self, scope: Construct, id: str, config: PipelineConfig, compute: Compute, storage: Storage) -> None:
        super().__init__(scope, id)
        prepare_module = load_lambda_module("prepare")
        self.prepare_function = self._function(
            "PrepareFunction",
            "prepare",
            config,
            with_spec=True,
            environment={
                "BUCKET_NAME": storage.bucket.bucket_name,
                "JOB_QUEUE": compute.job_queue.job_queue_arn,
                "SINGLE_NODE_JOB_DEFINITION": compute.single_node_job_definition.ref,
                "MULTI_NODE_JOB_DEFINITION": compute.multi_node_job_definition.ref,
                "CHECKPOINT_ROOT": CHECKPOINT_ROOT,
            },
        )
        self.prepare_function.add_to_role_policy(
            iam.PolicyStatement(
                sid="CheckReferencedObjects",
                actions=["s3:GetObject"],
                resources=[storage.bucket.arn_for_objects(INPUT_PREFIX + "*"), storage.bucket.arn_for_objects(OUTPUT_PREFIX + "*")],
            )
        )
        self.state_machine_logs = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{config.stack_name}-pipeline",
            retention=RETENTION[config.log_retention_days],
            removal_policy=RemovalPolicy.RETAIN,
        )
        definition = self._definition(compute, prepare_module)
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
        rule = events.Rule(
            self,
            "BatchJobFailedRule",
            description="Workbench: report failed Batch jobs to their Step Functions task at once",
            event_pattern=events.EventPattern(
                source=["aws.batch"],
                detail_type=["Batch Job State Change"],
                detail={"status": ["FAILED"], "jobQueue": [compute.job_queue.job_queue_arn]},
            ),
        )
        rule.add_target(targets.LambdaFunction(function, retry_attempts=4))

    def _definition(self, compute: Compute, prepare_module: ModuleType) -> sfn.IChainable:
        job_failed = sfn.Fail(self, "Job failed", error_path="$.failure.error", cause_path="$.failure.cause")
        reserved_name = sfn.Pass(
            self,
            "Rename a reserved error name",
            parameters={
                "error": sfn.JsonPath.format("Workbench.{}", sfn.JsonPath.string_at("$.failure.error")),
                "cause": sfn.JsonPath.string_at("$.failure.cause"),
            },
            result_path="$.failure",
        ).next(job_failed)
        fail = (
            sfn.Choice(self, "Is the error name reserved?", comment="A Fail state may not raise a States.* error")
            .when(sfn.Condition.string_matches("$.failure.error", "States.*"), reserved_name)
            .otherwise(job_failed)
        )
        succeed = sfn.Succeed(self, "Job succeeded", output_path="$.output")

        report_failure = tasks.CallAwsService(
            self,
            "Report the failure to the caller",
            service="sfn",
            action="sendTaskFailure",
            parameters={
                "TaskToken": sfn.JsonPath.string_at("$.callerTaskToken"),
                "Error": sfn.JsonPath.string_at("$.failure.error"),
                "Cause": sfn.JsonPath.string_at("$.failure.cause"),
            },
            iam_resources=["*"],
            result_path=sfn.JsonPath.DISCARD,
        )
        report_failure.add_catch(fail, result_path="$.reportError").next(fail)
        notify_failure = (
            sfn.Choice(self, "Is a caller waiting for the failure?")
            .when(sfn.Condition.is_present("$.callerTaskToken"), report_failure)
            .otherwise(fail)
        )

        terminate = tasks.CallAwsService(
            self,
            "Terminate one Batch job",
            service="batch",
            action="terminateJob",
            parameters={
                "JobId": sfn.JsonPath.string_at("$.jobId"),
                "Reason": sfn.JsonPath.format("Workbench pipeline: {}", sfn.JsonPath.string_at("$.error")),
            },
            iam_resources=[f"arn:{Aws.PARTITION}:batch:{Aws.REGION}:{Aws.ACCOUNT_ID}:job/*"],
            result_path=sfn.JsonPath.DISCARD,
        )
        terminate_all = sfn.Map(
            self,
            "Terminate the Batch job",
            items_path="$.batchJobs.jobs",
            item_selector={
                "jobId": sfn.JsonPath.string_at("$$.Map.Item.Value.JobId"),
                "error": sfn.JsonPath.string_at("$.failure.error"),
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        terminate_all.item_processor(terminate)
        terminate_all.add_catch(notify_failure, result_path="$.cleanupError").next(notify_failure)
        find_job = tasks.CallAwsService(
            self,
            "Find the Batch job",
            service="batch",
            action="listJobs",
            parameters={
                "JobQueue": sfn.JsonPath.string_at("$.prepared.jobQueue"),
                "Filters": [{"Name": "JOB_NAME", "Values": sfn.JsonPath.array(sfn.JsonPath.string_at("$.prepared.jobName"))}],
            },
            iam_resources=["*"],
            result_selector={"jobs": sfn.JsonPath.list_at("$.JobSummaryList")},
            result_path="$.batchJobs",
        )
        find_job.add_catch(notify_failure, result_path="$.cleanupError").next(terminate_all)
        clean_up = (
            sfn.Choice(self, "Was a Batch job submitted?")
            .when(sfn.Condition.is_present("$.prepared.jobName"), find_job)
            .otherwise(notify_failure)
        )
        with_cause = sfn.Pass(
            self,
            "Failure with its cause",
            parameters={"error": sfn.JsonPath.string_at("$.error.Error"), "cause": sfn.JsonPath.string_at("$.error.Cause")},
            result_path="$.failure",
        ).next(clean_up)
        without_cause = sfn.Pass(
            self,
            "Failure without a cause",
            parameters={
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.format("{} (no details were given)", sfn.JsonPath.string_at("$.error.Error")),
            },
            result_path="$.failure",
        ).next(clean_up)
        describe_failure = (
            sfn.Choice(self, "Describe the failure")
            .when(sfn.Condition.is_not_present("$.error.Cause"), without_cause)
            .when(sfn.Condition.is_string("$.error.Cause"), with_cause)
            .otherwise(without_cause)
        )

        report_success = tasks.CallAwsService(
            self,
            "Report the success to the caller",
            service="sfn",
            action="sendTaskSuccess",
            parameters={
                "TaskToken": sfn.JsonPath.string_at("$.callerTaskToken"),
                "Output": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.output")),
            },
            iam_resources=["*"],
            result_path=sfn.JsonPath.DISCARD,
        )
        report_success.add_catch(succeed, result_path="$.reportError").next(succeed)
        finalize = sfn.Pass(
            self,
            "Finalize",
            parameters={
                "jobId": sfn.JsonPath.string_at("$.jobId"),
                "outputUri": sfn.JsonPath.string_at("$.prepared.outputUri"),
                "result": sfn.JsonPath.object_at("$.result"),
            },
            result_path="$.output",
        ).next(
            sfn.Choice(self, "Is a caller waiting for the result?")
            .when(sfn.Condition.is_present("$.callerTaskToken"), report_success)
            .otherwise(succeed)
        )

        submit_resources = [
            compute.job_queue.job_queue_arn,
            compute.single_node_job_definition.ref,
            compute.multi_node_job_definition.ref,
        ]
        submits = {
            key: self._submit(state_name, TIMEOUT_SECONDS[mode], multi_node, submit_resources, prepare_module)
            for key, state_name, mode, multi_node in (
                ("train", "Run the training job", "train", False),
                ("multi", "Run the multi-node training job", "train", True),
                ("evaluate", "Run the evaluation job", "evaluate", False),
            )
        }
        for submit in submits.values():
            submit.add_catch(describe_failure, errors=[sfn.Errors.ALL], result_path="$.error").next(finalize)

        prepare = tasks.LambdaInvoke(
            self,
            "Validate and prepare",
            lambda_function=self.prepare_function,
            payload=sfn.TaskInput.from_object(
                {"jobId": sfn.JsonPath.string_at("$.jobId"), "inputParameters": sfn.JsonPath.object_at("$.inputParameters")}
            ),
            payload_response_only=True,
            retry_on_service_exceptions=True,
            result_path="$.prepared",
        )
        prepare.add_catch(describe_failure, errors=[sfn.Errors.ALL], result_path="$.error")
        incomplete = sfn.Pass(
            self,
            "Input is incomplete",
            parameters={
                "Error": "ValidationError",
                "Cause": "the execution input needs jobId and inputParameters (the job spec document)",
            },
            result_path="$.error",
        ).next(describe_failure)
        check_input = (
            sfn.Choice(self, "Check the input")
            .when(
                sfn.Condition.and_(sfn.Condition.is_present("$.jobId"), sfn.Condition.is_present("$.inputParameters")),
                prepare,
            )
            .otherwise(incomplete)
        )
        prepare.next(
            sfn.Choice(self, "Which job?")
            .when(sfn.Condition.string_equals("$.prepared.mode", "evaluate"), submits["evaluate"])
            .when(sfn.Condition.boolean_equals("$.prepared.multiNode", True), submits["multi"])
            .otherwise(submits["train"])
        )
        return check_input

    def _submit(
        self, name: str, timeout_seconds: int, multi_node: bool, resources: list[str], prepare_module: ModuleType
    ) -> tasks.CallAwsService:
        environment = [
            {"Name": variable, "Value": sfn.JsonPath.string_at(f"$.prepared.environment.{variable}")}
            for variable in prepare_module.PER_JOB_ENVIRONMENT
        ]
        environment.append({"Name": prepare_module.TASK_TOKEN_VARIABLE, "Value": sfn.JsonPath.task_token})
        overrides = {
            "Environment": environment,
            "ResourceRequirements": [{"Type": "GPU", "Value": sfn.JsonPath.string_at("$.prepared.gpusPerNode")}],
        }
        parameters: dict = {
            "JobName": sfn.JsonPath.string_at("$.prepared.jobName"),
            "JobQueue": sfn.JsonPath.string_at("$.prepared.jobQueue"),
            "JobDefinition": sfn.JsonPath.string_at("$.prepared.jobDefinition"),
            "Timeout": {"AttemptDurationSeconds": sfn.JsonPath.number_at("$.prepared.attemptDurationSeconds")},
        }
        if multi_node:
            parameters["NodeOverrides"] = {
                "NumNodes": sfn.JsonPath.number_at("$.prepared.numNodes"),
                "NodePropertyOverrides": [{"TargetNodes": "0:", "ContainerOverrides": overrides}],
            }
        else:
            parameters["ContainerOverrides"] = overrides
        return tasks.CallAwsService(
            self,
            name,
            service="batch",
            action="submitJob",
            parameters=parameters,
            iam_resources=resources,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            heartbeat_timeout=sfn.Timeout.duration(Duration.seconds(HEARTBEAT_SECONDS)),
            task_timeout=sfn.Timeout.duration(Duration.seconds(timeout_seconds)),
            result_path="$.result",
        )


def _caller_callback_statement() -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="FailCallerTask", actions=["states:SendTaskFailure"], resources=["*"])
