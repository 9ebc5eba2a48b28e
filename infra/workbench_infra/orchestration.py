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

from workbench_infra.compute import RETENTION, Compute, token_parameter_arn
from workbench_infra.config import PipelineConfig
from workbench_infra.lambda_modules import LAMBDAS_DIR, load_lambda_module
from workbench_infra.storage import CHECKPOINT_ROOT, INPUT_PREFIX, OUTPUT_PREFIX, Storage

INFRA_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = INFRA_DIR.parent
SPEC_BUNDLE = ("spec", "errors.py")
"""What the Lambdas that read specs bundle from ``workbench/``: the stdlib-only spec package and its errors."""
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
HEARTBEAT_SECONDS = 1800
TIMEOUT_SECONDS = {"train": 28800, "evaluate": 7200}
QUEUE_CHECK_SECONDS = 300
"""How long "Wait for the job to start" waits before it checks the Batch job and heartbeats the caller."""
QUEUE_LIMIT_SECONDS = 86400
QUEUE_CHECKS = QUEUE_LIMIT_SECONDS // QUEUE_CHECK_SECONDS
QUEUE_TIMEOUT_ERROR = "QueueTimeout"
CALLER_GONE_ERROR = "CallerStoppedWaiting"
CALLER_GONE_ERRORS = ("Sfn.TaskTimedOutException", "Sfn.TaskDoesNotExistException", "Sfn.InvalidTokenException")
"""What SendTaskHeartbeat answers for a caller's token nobody waits on any more (the SDK integration's names)."""
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
                    "jobQueue": [compute.job_queue.job_queue_arn, compute.multi_node_job_queue.job_queue_arn],
                },
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
        token_parameters = [token_parameter_arn(self.token_parameter_prefix)]

        notify_failure = self._tell_caller(
            "Report the failure to the caller",
            "Is a caller waiting for the failure?",
            "sendTaskFailure",
            {"Error": sfn.JsonPath.string_at("$.failure.error"), "Cause": sfn.JsonPath.string_at("$.failure.cause")},
            then=fail,
        )
        notify_success = self._tell_caller(
            "Report the success to the caller",
            "Is a caller waiting for the result?",
            "sendTaskSuccess",
            {"Output": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.output"))},
            then=succeed,
        )

        forget_tokens = tasks.CallAwsService(
            self,
            "Delete the job's token parameters",
            comment="Every end passes here; a failure to delete does not change the job's outcome",
            service="ssm",
            action="deleteParameters",
            parameters={
                "Names": sfn.JsonPath.array(
                    *(sfn.JsonPath.string_at(f"$.prepared.tokenParameters.{role}") for role in prepare_module.TOKEN_PARAMETER_SUFFIXES)
                )
            },
            iam_resources=token_parameters,
            result_path=sfn.JsonPath.DISCARD,
        )
        after_forgetting = (
            sfn.Choice(self, "Did the job fail?")
            .when(sfn.Condition.is_present("$.failure"), notify_failure)
            .otherwise(notify_success)
        )
        forget_tokens.add_catch(after_forgetting, result_path="$.tokenCleanupError").next(after_forgetting)

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
        terminate_all.add_catch(forget_tokens, result_path="$.cleanupError").next(forget_tokens)
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
        find_job.add_catch(forget_tokens, result_path="$.cleanupError").next(terminate_all)
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

        finalize = sfn.Pass(
            self,
            "Finalize",
            parameters={
                "jobId": sfn.JsonPath.string_at("$.jobId"),
                "outputUri": sfn.JsonPath.string_at("$.prepared.outputUri"),
                "result": sfn.JsonPath.object_at("$.result"),
            },
            result_path="$.output",
        ).next(forget_tokens)

        runs = {
            key: self._wait_for_token(
                state_name,
                "run",
                token_parameters,
                heartbeat_seconds=HEARTBEAT_SECONDS,
                timeout_seconds=TIMEOUT_SECONDS[mode],
                result_path="$.result",
            )
            for key, state_name, mode in (
                ("train", "Run the training job", "train"),
                ("multi", "Run the multi-node training job", "train"),
                ("evaluate", "Run the evaluation job", "evaluate"),
            )
        }
        for run in runs.values():
            run.add_catch(describe_failure, errors=[sfn.Errors.ALL], result_path="$.error").next(finalize)
        which_job = (
            sfn.Choice(self, "Which job?")
            .when(sfn.Condition.string_equals("$.prepared.mode", "evaluate"), runs["evaluate"])
            .when(sfn.Condition.boolean_equals("$.prepared.multiNode", True), runs["multi"])
            .otherwise(runs["train"])
        )

        start_wait = self._wait_for_token(
            "Wait for the job to start",
            "start",
            token_parameters,
            timeout_seconds=QUEUE_CHECK_SECONDS,
            result_path=sfn.JsonPath.DISCARD,
            comment=(
                f"Until the runner announces its start. Every {QUEUE_CHECK_SECONDS} s in the queue this times out: the "
                "loop checks the Batch job, heartbeats the caller and waits again with a new token"
            ),
        )
        start_wait.next(which_job)
        waited_too_long = sfn.Pass(
            self,
            "Waited too long for a GPU instance",
            parameters={
                "Error": QUEUE_TIMEOUT_ERROR,
                "Cause": (
                    f"waited more than {QUEUE_LIMIT_SECONDS // 3600} h for a GPU instance: the Batch job never left "
                    "RUNNABLE/STARTING (no g6/g6e/g5 capacity in the region, or the account's EC2 quota for G "
                    "instances is too low; check Service Quotas); the job was stopped"
                ),
            },
            result_path="$.error",
        ).next(describe_failure)
        count_check = sfn.Pass(
            self,
            "Count the queue check",
            parameters={"checks": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.queue.checks"), 1)},
            result_path="$.queue",
        ).next(
            sfn.Choice(self, "Has the job waited too long for a GPU?")
            .when(sfn.Condition.number_greater_than_equals("$.queue.checks", QUEUE_CHECKS), waited_too_long)
            .otherwise(start_wait)
        )
        caller_gone = sfn.Pass(
            self,
            "The caller stopped waiting",
            parameters={
                "Error": CALLER_GONE_ERROR,
                "Cause": (
                    "the caller's task token is closed (it timed out or its execution ended) while the job was still "
                    "waiting for a GPU instance; the job was stopped before it started"
                ),
            },
            result_path="$.error",
        ).next(describe_failure)
        heartbeat_caller = tasks.CallAwsService(
            self,
            "Heartbeat the caller",
            comment="The caller's heartbeat timeout must not run out while the job is queued",
            service="sfn",
            action="sendTaskHeartbeat",
            parameters={"TaskToken": sfn.JsonPath.string_at("$.callerTaskToken")},
            iam_resources=["*"],
            result_path=sfn.JsonPath.DISCARD,
        )
        heartbeat_caller.add_catch(caller_gone, errors=list(CALLER_GONE_ERRORS), result_path="$.callerHeartbeatError")
        heartbeat_caller.add_catch(count_check, errors=[sfn.Errors.ALL], result_path="$.callerHeartbeatError")
        heartbeat_caller.next(count_check)
        queued_job_failed = sfn.Pass(
            self,
            "The Batch job failed before starting",
            parameters={
                "Error": "BatchJobFailed",
                "Cause": sfn.JsonPath.format(
                    "AWS Batch job {} ended FAILED before its runner started (its statusReason says why: "
                    "aws batch describe-jobs --jobs {})",
                    sfn.JsonPath.string_at("$.submitted.jobId"),
                    sfn.JsonPath.string_at("$.submitted.jobId"),
                ),
            },
            result_path="$.error",
        ).next(describe_failure)
        heartbeat_or_count = (
            sfn.Choice(self, "Is a caller waiting while the job is queued?")
            .when(sfn.Condition.is_present("$.callerTaskToken"), heartbeat_caller)
            .otherwise(count_check)
        )
        check_job = tasks.CallAwsService(
            self,
            "Check the queued Batch job",
            comment="A job that failed in the queue ends here even if the Batch failure hook missed it",
            service="batch",
            action="describeJobs",
            parameters={"Jobs": sfn.JsonPath.array(sfn.JsonPath.string_at("$.submitted.jobId"))},
            iam_resources=["*"],
            result_selector={"statuses": sfn.JsonPath.list_at("$.Jobs[*].Status")},
            result_path="$.queue.batchJob",
        )
        check_job.add_catch(heartbeat_or_count, errors=[sfn.Errors.ALL], result_path="$.queueCheckError")
        check_job.next(
            sfn.Choice(self, "Did the queued Batch job fail?")
            .when(
                sfn.Condition.and_(
                    sfn.Condition.is_present("$.queue.batchJob.statuses[0]"),
                    sfn.Condition.string_equals("$.queue.batchJob.statuses[0]", "FAILED"),
                ),
                queued_job_failed,
            )
            .otherwise(heartbeat_or_count)
        )
        start_wait.add_catch(check_job, errors=[sfn.Errors.TIMEOUT], result_path="$.queueCheckError")
        start_wait.add_catch(describe_failure, errors=[sfn.Errors.ALL], result_path="$.error")
        start_clock = sfn.Pass(
            self, "Start the queue clock", parameters={"checks": 0}, result_path="$.queue"
        ).next(start_wait)

        submit_resources = [
            compute.job_queue.job_queue_arn,
            compute.single_node_job_definition.ref,
            compute.multi_node_job_definition.ref,
        ]
        submits = {
            multi_node: self._submit(state_name, multi_node, submit_resources, prepare_module)
            for multi_node, state_name in ((False, "Submit the Batch job"), (True, "Submit the multi-node Batch job"))
        }
        for submit in submits.values():
            submit.add_catch(describe_failure, errors=[sfn.Errors.ALL], result_path="$.error").next(start_clock)
        how_to_submit = (
            sfn.Choice(self, "How is the job submitted?")
            .when(sfn.Condition.boolean_equals("$.prepared.multiNode", True), submits[True])
            .otherwise(submits[False])
        )
        keep_caller_token = tasks.CallAwsService(
            self,
            "Keep the caller's token",
            comment="In an SSM SecureString the runner reads, to heartbeat the caller while the job runs",
            service="ssm",
            action="putParameter",
            parameters={
                "Name": sfn.JsonPath.string_at("$.prepared.tokenParameters.caller"),
                "Value": sfn.JsonPath.string_at("$.callerTaskToken"),
                "Type": "SecureString",
                "Overwrite": True,
            },
            iam_resources=token_parameters,
            result_path=sfn.JsonPath.DISCARD,
        )
        keep_caller_token.add_catch(describe_failure, errors=[sfn.Errors.ALL], result_path="$.error").next(how_to_submit)

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
            sfn.Choice(self, "Does a caller wait for the job?")
            .when(sfn.Condition.is_present("$.callerTaskToken"), keep_caller_token)
            .otherwise(how_to_submit)
        )
        return check_input

    def _tell_caller(self, report_name: str, question: str, action: str, parameters: dict,
                     then: sfn.IChainable) -> sfn.Choice:
        """When a caller's token waits: call ``action`` on it (a failure to send changes nothing), then ``then``."""
        report = tasks.CallAwsService(
            self,
            report_name,
            service="sfn",
            action=action,
            parameters={"TaskToken": sfn.JsonPath.string_at("$.callerTaskToken"), **parameters},
            iam_resources=["*"],
            result_path=sfn.JsonPath.DISCARD,
        )
        report.add_catch(then, result_path="$.reportError").next(then)
        return (
            sfn.Choice(self, question)
            .when(sfn.Condition.is_present("$.callerTaskToken"), report)
            .otherwise(then)
        )

    def _submit(
        self, name: str, multi_node: bool, resources: list[str], prepare_module: ModuleType
    ) -> tasks.CallAwsService:
        """Submit the Batch job (request-response: no task token travels with it); its id goes to ``$.submitted``."""
        environment = [
            {"Name": variable, "Value": sfn.JsonPath.string_at(f"$.prepared.environment.{variable}")}
            for variable in prepare_module.PER_JOB_ENVIRONMENT
        ]
        overrides = {
            "Environment": environment,
            "ResourceRequirements": sfn.JsonPath.list_at("$.prepared.resourceRequirements"),
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
            result_selector={"jobId": sfn.JsonPath.string_at("$.JobId")},
            result_path="$.submitted",
        )

    def _wait_for_token(
        self,
        name: str,
        role: str,
        resources: list[str],
        timeout_seconds: int,
        result_path: str,
        heartbeat_seconds: int | None = None,
        comment: str | None = None,
    ) -> tasks.CallAwsService:
        """Wait for a callback: this state's ``$$.Task.Token`` goes only into the job's ``role`` token parameter."""
        return tasks.CallAwsService(
            self,
            name,
            comment=comment,
            service="ssm",
            action="putParameter",
            parameters={
                "Name": sfn.JsonPath.string_at(f"$.prepared.tokenParameters.{role}"),
                "Value": sfn.JsonPath.task_token,
                "Type": "SecureString",
                "Overwrite": True,
            },
            iam_resources=resources,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            heartbeat_timeout=sfn.Timeout.duration(Duration.seconds(heartbeat_seconds)) if heartbeat_seconds else None,
            task_timeout=sfn.Timeout.duration(Duration.seconds(timeout_seconds)),
            result_path=result_path,
        )



def _caller_callback_statement() -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="FailCallerTask", actions=["states:SendTaskFailure"], resources=["*"])
