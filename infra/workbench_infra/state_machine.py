"""The internal state machine's definition (every state is described in ``orchestration``'s module docstring).

A state can only lead to states that already exist, so the definition is built from its ends backwards, one builder
a part: the ends (report to the caller), the failure path (describe the failure, terminate the Batch job, delete the
token parameters), the run states, the queue-check loop and the submit path (check the input, prepare, submit).
The states are made on the Orchestration construct, so their construct paths do not depend on this module.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from aws_cdk import Aws, Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from workbench_infra.compute import Compute, token_parameter_arn

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
RUNS = (
    ("train", "Run the training job", "train"),
    ("multi", "Run the multi-node training job", "train"),
    ("evaluate", "Run the evaluation job", "evaluate"),
)
"""``(key, state name, mode)`` of each run state; the mode picks its timeout."""
SUBMITS = ((False, "Submit the Batch job"), (True, "Submit the multi-node Batch job"))
"""``(multi-node, state name)`` of each submit state."""
QUEUE_TIMEOUT_CAUSE = (
    f"waited more than {QUEUE_LIMIT_SECONDS // 3600} h for a GPU instance: the Batch job never left "
    "RUNNABLE/STARTING (no g6/g6e/g5 capacity in the region, or the account's EC2 quota for G "
    "instances is too low; check Service Quotas); the job was stopped"
)
CALLER_GONE_CAUSE = (
    "the caller's task token is closed (it timed out or its execution ended) while the job was still "
    "waiting for a GPU instance; the job was stopped before it started"
)


class DefinitionBuilder:
    """Builds the internal state machine's states on ``scope``; :meth:`definition` returns its first state."""

    def __init__(
        self, scope: Construct, compute: Compute, prepare_function: lambda_.IFunction, prepare_module: ModuleType
    ) -> None:
        self.scope = scope
        self.compute = compute
        self.prepare_function = prepare_function
        self.prepare_module = prepare_module
        self.token_parameters = [token_parameter_arn(compute.token_parameter_prefix)]

    def definition(self) -> sfn.IChainable:
        """The whole flow, composed from its ends backwards; every caught error goes to "Describe the failure"."""
        notify_failure = self._report_failure()
        forget_tokens = self._forget_tokens(notify_failure, self._report_success())
        describe_failure = self._describe_failure(self._stop_batch_job(forget_tokens, notify_failure))
        which_job = self._runs(self._finalize(forget_tokens), describe_failure)
        start_clock = self._wait_for_start(which_job, describe_failure)
        how_to_submit = self._submits(start_clock, describe_failure)
        return self._check_input(self._prepare(how_to_submit, describe_failure), describe_failure)

    # The ends: report to the caller's token, if any, then succeed or fail the execution.

    def _report_failure(self) -> sfn.Choice:
        """Fail the caller's token with the failure's error and cause, then the execution."""
        return self._tell_caller(
            "Report the failure to the caller",
            "Is a caller waiting for the failure?",
            "sendTaskFailure",
            {"Error": sfn.JsonPath.string_at("$.failure.error"), "Cause": sfn.JsonPath.string_at("$.failure.cause")},
            then=self._fail(),
        )

    def _fail(self) -> sfn.Choice:
        """End in "Job failed"; a ``States.*`` error is renamed first, as a Fail state may not raise one."""
        job_failed = sfn.Fail(self.scope, "Job failed", error_path="$.failure.error", cause_path="$.failure.cause")
        reserved_name = sfn.Pass(
            self.scope,
            "Rename a reserved error name",
            parameters={
                "error": sfn.JsonPath.format("Workbench.{}", sfn.JsonPath.string_at("$.failure.error")),
                "cause": sfn.JsonPath.string_at("$.failure.cause"),
            },
            result_path="$.failure",
        ).next(job_failed)
        return (
            sfn.Choice(self.scope, "Is the error name reserved?", comment="A Fail state may not raise a States.* error")
            .when(sfn.Condition.string_matches("$.failure.error", "States.*"), reserved_name)
            .otherwise(job_failed)
        )

    def _report_success(self) -> sfn.Choice:
        """Send the job's output to the caller's token, then succeed with it."""
        return self._tell_caller(
            "Report the success to the caller",
            "Is a caller waiting for the result?",
            "sendTaskSuccess",
            {"Output": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.output"))},
            then=sfn.Succeed(self.scope, "Job succeeded", output_path="$.output"),
        )

    def _tell_caller(
        self, report_name: str, question: str, action: str, parameters: dict[str, Any], then: sfn.IChainable
    ) -> sfn.Choice:
        """When a caller's token waits: call ``action`` on it (a failure to send changes nothing), then ``then``."""
        report = tasks.CallAwsService(
            self.scope,
            report_name,
            service="sfn",
            action=action,
            parameters={"TaskToken": sfn.JsonPath.string_at("$.callerTaskToken"), **parameters},
            iam_resources=["*"],
            result_path=sfn.JsonPath.DISCARD,
        )
        report.add_catch(then, result_path="$.reportError").next(then)
        return (
            sfn.Choice(self.scope, question)
            .when(sfn.Condition.is_present("$.callerTaskToken"), report)
            .otherwise(then)
        )

    # The failure path: describe the failure, terminate the Batch job, delete the token parameters.

    def _forget_tokens(self, notify_failure: sfn.IChainable, notify_success: sfn.IChainable) -> tasks.CallAwsService:
        """Every end deletes the job's token parameters (a failure to delete changes nothing), then reports."""
        names = (f"$.prepared.tokenParameters.{role}" for role in self.prepare_module.TOKEN_PARAMETER_SUFFIXES)
        forget_tokens = tasks.CallAwsService(
            self.scope,
            "Delete the job's token parameters",
            comment="Every end passes here; a failure to delete does not change the job's outcome",
            service="ssm",
            action="deleteParameters",
            parameters={"Names": sfn.JsonPath.array(*(sfn.JsonPath.string_at(name) for name in names))},
            iam_resources=self.token_parameters,
            result_path=sfn.JsonPath.DISCARD,
        )
        after_forgetting = (
            sfn.Choice(self.scope, "Did the job fail?")
            .when(sfn.Condition.is_present("$.failure"), notify_failure)
            .otherwise(notify_success)
        )
        forget_tokens.add_catch(after_forgetting, result_path="$.tokenCleanupError").next(after_forgetting)
        return forget_tokens

    def _stop_batch_job(self, forget_tokens: sfn.IChainable, notify_failure: sfn.IChainable) -> sfn.Choice:
        """Terminate the failed job's Batch job, if one may have been submitted, looked up by its job name."""
        terminate_all = self._terminate_batch_jobs(forget_tokens)
        find_job = tasks.CallAwsService(
            self.scope,
            "Find the Batch job",
            service="batch",
            action="listJobs",
            parameters={
                "JobQueue": sfn.JsonPath.string_at("$.prepared.jobQueue"),
                "Filters": [
                    {"Name": "JOB_NAME", "Values": sfn.JsonPath.array(sfn.JsonPath.string_at("$.prepared.jobName"))}
                ],
            },
            iam_resources=["*"],
            result_selector={"jobs": sfn.JsonPath.list_at("$.JobSummaryList")},
            result_path="$.batchJobs",
        )
        find_job.add_catch(forget_tokens, result_path="$.cleanupError").next(terminate_all)
        return (
            sfn.Choice(self.scope, "Was a Batch job submitted?")
            .when(sfn.Condition.is_present("$.prepared.jobName"), find_job)
            .otherwise(notify_failure)
        )

    def _terminate_batch_jobs(self, forget_tokens: sfn.IChainable) -> sfn.Map:
        """Terminate every Batch job found (a failure to terminate changes nothing), then delete the tokens."""
        terminate = tasks.CallAwsService(
            self.scope,
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
            self.scope,
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
        return terminate_all

    def _describe_failure(self, clean_up: sfn.IChainable) -> sfn.Choice:
        """Turn the caught error at ``$.error`` into ``$.failure`` (``error``, ``cause``), with a cause in any case."""
        with_cause = sfn.Pass(
            self.scope,
            "Failure with its cause",
            parameters={
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.string_at("$.error.Cause"),
            },
            result_path="$.failure",
        ).next(clean_up)
        without_cause = sfn.Pass(
            self.scope,
            "Failure without a cause",
            parameters={
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.format("{} (no details were given)", sfn.JsonPath.string_at("$.error.Error")),
            },
            result_path="$.failure",
        ).next(clean_up)
        return (
            sfn.Choice(self.scope, "Describe the failure")
            .when(sfn.Condition.is_not_present("$.error.Cause"), without_cause)
            .when(sfn.Condition.is_string("$.error.Cause"), with_cause)
            .otherwise(without_cause)
        )

    def _raise(self, name: str, error: str, cause: str, describe_failure: sfn.IChainable) -> sfn.Chain:
        """A failure of the pipeline's own, put at ``$.error`` as a caught error is, so it takes the same path."""
        return sfn.Pass(
            self.scope, name, parameters={"Error": error, "Cause": cause}, result_path="$.error"
        ).next(describe_failure)

    # The run states and the success path.

    def _runs(self, finalize: sfn.IChainable, describe_failure: sfn.IChainable) -> sfn.Choice:
        """Wait on the run token, with the heartbeat and the timeout of the job's mode."""
        runs = {
            key: self._wait_for_token(
                state_name,
                "run",
                heartbeat_seconds=HEARTBEAT_SECONDS,
                timeout_seconds=TIMEOUT_SECONDS[mode],
                result_path="$.result",
            )
            for key, state_name, mode in RUNS
        }
        for run in runs.values():
            _catch_all(run, describe_failure).next(finalize)
        return (
            sfn.Choice(self.scope, "Which job?")
            .when(sfn.Condition.string_equals("$.prepared.mode", "evaluate"), runs["evaluate"])
            .when(sfn.Condition.boolean_equals("$.prepared.multiNode", True), runs["multi"])
            .otherwise(runs["train"])
        )

    def _finalize(self, forget_tokens: sfn.IChainable) -> sfn.Chain:
        """The execution's output, ``{"jobId", "outputUri", "result"}``, at ``$.output``; then the tokens go."""
        return sfn.Pass(
            self.scope,
            "Finalize",
            parameters={
                "jobId": sfn.JsonPath.string_at("$.jobId"),
                "outputUri": sfn.JsonPath.string_at("$.prepared.outputUri"),
                "result": sfn.JsonPath.object_at("$.result"),
            },
            result_path="$.output",
        ).next(forget_tokens)

    # The queue-check loop: queue time does not count against the heartbeat.

    def _wait_for_start(self, which_job: sfn.IChainable, describe_failure: sfn.IChainable) -> sfn.Chain:
        """Wait for the runner's start; each ``QUEUE_CHECK_SECONDS`` timeout checks the queued job and waits again."""
        start_wait = self._wait_for_token(
            "Wait for the job to start",
            "start",
            timeout_seconds=QUEUE_CHECK_SECONDS,
            result_path=sfn.JsonPath.DISCARD,
            comment=(
                f"Until the runner announces its start. Every {QUEUE_CHECK_SECONDS} s in the queue this times out: the "
                "loop checks the Batch job, heartbeats the caller and waits again with a new token"
            ),
        )
        start_wait.next(which_job)
        count_check = self._count_check(start_wait, describe_failure)
        heartbeat_or_count = self._heartbeat_queued_caller(count_check, describe_failure)
        check_job = self._check_queued_job(heartbeat_or_count, describe_failure)
        start_wait.add_catch(check_job, errors=[sfn.Errors.TIMEOUT], result_path="$.queueCheckError")
        _catch_all(start_wait, describe_failure)
        return sfn.Pass(
            self.scope, "Start the queue clock", parameters={"checks": 0}, result_path="$.queue"
        ).next(start_wait)

    def _check_queued_job(
        self, heartbeat_or_count: sfn.IChainable, describe_failure: sfn.IChainable
    ) -> tasks.CallAwsService:
        """A job that FAILED in the queue fails the execution even if the Batch failure hook missed it."""
        job_id = sfn.JsonPath.string_at("$.submitted.jobId")
        queued_job_failed = self._raise(
            "The Batch job failed before starting",
            "BatchJobFailed",
            sfn.JsonPath.format(
                "AWS Batch job {} ended FAILED before its runner started (its statusReason says why: "
                "aws batch describe-jobs --jobs {})",
                job_id,
                job_id,
            ),
            describe_failure,
        )
        check_job = tasks.CallAwsService(
            self.scope,
            "Check the queued Batch job",
            comment="A job that failed in the queue ends here even if the Batch failure hook missed it",
            service="batch",
            action="describeJobs",
            parameters={"Jobs": sfn.JsonPath.array(job_id)},
            iam_resources=["*"],
            result_selector={"statuses": sfn.JsonPath.list_at("$.Jobs[*].Status")},
            result_path="$.queue.batchJob",
        )
        check_job.add_catch(heartbeat_or_count, errors=[sfn.Errors.ALL], result_path="$.queueCheckError")
        failed = sfn.Condition.and_(
            sfn.Condition.is_present("$.queue.batchJob.statuses[0]"),
            sfn.Condition.string_equals("$.queue.batchJob.statuses[0]", "FAILED"),
        )
        check_job.next(
            sfn.Choice(self.scope, "Did the queued Batch job fail?")
            .when(failed, queued_job_failed)
            .otherwise(heartbeat_or_count)
        )
        return check_job

    def _heartbeat_queued_caller(self, count_check: sfn.IChainable, describe_failure: sfn.IChainable) -> sfn.Choice:
        """Keep a waiting caller's heartbeat timeout from running out; a closed token stops the unstarted job."""
        caller_gone = self._raise("The caller stopped waiting", CALLER_GONE_ERROR, CALLER_GONE_CAUSE, describe_failure)
        heartbeat_caller = tasks.CallAwsService(
            self.scope,
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
        return (
            sfn.Choice(self.scope, "Is a caller waiting while the job is queued?")
            .when(sfn.Condition.is_present("$.callerTaskToken"), heartbeat_caller)
            .otherwise(count_check)
        )

    def _count_check(self, start_wait: sfn.IChainable, describe_failure: sfn.IChainable) -> sfn.Chain:
        """Count the check: after ``QUEUE_LIMIT_SECONDS`` the job fails with ``QueueTimeout``, else it waits again."""
        waited_too_long = self._raise(
            "Waited too long for a GPU instance", QUEUE_TIMEOUT_ERROR, QUEUE_TIMEOUT_CAUSE, describe_failure
        )
        return sfn.Pass(
            self.scope,
            "Count the queue check",
            parameters={"checks": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.queue.checks"), 1)},
            result_path="$.queue",
        ).next(
            sfn.Choice(self.scope, "Has the job waited too long for a GPU?")
            .when(sfn.Condition.number_greater_than_equals("$.queue.checks", QUEUE_CHECKS), waited_too_long)
            .otherwise(start_wait)
        )

    # The submit path: check the input, prepare, keep the caller's token, submit.

    def _check_input(self, prepare: sfn.IChainable, describe_failure: sfn.IChainable) -> sfn.Choice:
        """The first state: an input without jobId and inputParameters fails before anything runs."""
        incomplete = self._raise(
            "Input is incomplete",
            "ValidationError",
            "the execution input needs jobId and inputParameters (the job spec document)",
            describe_failure,
        )
        complete = sfn.Condition.and_(
            sfn.Condition.is_present("$.jobId"), sfn.Condition.is_present("$.inputParameters")
        )
        return sfn.Choice(self.scope, "Check the input").when(complete, prepare).otherwise(incomplete)

    def _prepare(self, how_to_submit: sfn.IChainable, describe_failure: sfn.IChainable) -> tasks.LambdaInvoke:
        """Validate and prepare the job (the prepare Lambda), keep a caller's token, then submit."""
        keep_caller_token = self._keep_caller_token(how_to_submit, describe_failure)
        prepare = tasks.LambdaInvoke(
            self.scope,
            "Validate and prepare",
            lambda_function=self.prepare_function,
            payload=sfn.TaskInput.from_object(
                {
                    "jobId": sfn.JsonPath.string_at("$.jobId"),
                    "inputParameters": sfn.JsonPath.object_at("$.inputParameters"),
                }
            ),
            payload_response_only=True,
            retry_on_service_exceptions=True,
            result_path="$.prepared",
        )
        _catch_all(prepare, describe_failure).next(
            sfn.Choice(self.scope, "Does a caller wait for the job?")
            .when(sfn.Condition.is_present("$.callerTaskToken"), keep_caller_token)
            .otherwise(how_to_submit)
        )
        return prepare

    def _keep_caller_token(
        self, how_to_submit: sfn.IChainable, describe_failure: sfn.IChainable
    ) -> tasks.CallAwsService:
        """Put the caller's token where the runner reads it, to heartbeat the caller while the job runs."""
        keep_caller_token = self._put_token(
            "Keep the caller's token",
            "caller",
            sfn.JsonPath.string_at("$.callerTaskToken"),
            comment="In an SSM SecureString the runner reads, to heartbeat the caller while the job runs",
            result_path=sfn.JsonPath.DISCARD,
        )
        _catch_all(keep_caller_token, describe_failure).next(how_to_submit)
        return keep_caller_token

    def _submits(self, start_clock: sfn.IChainable, describe_failure: sfn.IChainable) -> sfn.Choice:
        """Submit the single- or the multi-node Batch job; either then starts the queue clock."""
        resources = [
            *(queue.job_queue_arn for queue in self.compute.job_queues),
            self.compute.single_node_job_definition.ref,
            self.compute.multi_node_job_definition.ref,
        ]
        submits = {multi_node: self._submit(state_name, multi_node, resources) for multi_node, state_name in SUBMITS}
        for submit in submits.values():
            _catch_all(submit, describe_failure).next(start_clock)
        return (
            sfn.Choice(self.scope, "How is the job submitted?")
            .when(sfn.Condition.boolean_equals("$.prepared.multiNode", True), submits[True])
            .otherwise(submits[False])
        )

    def _submit(self, name: str, multi_node: bool, resources: list[str]) -> tasks.CallAwsService:
        """Submit the Batch job (request-response: no task token travels with it); its id goes to ``$.submitted``."""
        environment = [
            {"Name": variable, "Value": sfn.JsonPath.string_at(f"$.prepared.environment.{variable}")}
            for variable in self.prepare_module.PER_JOB_ENVIRONMENT
        ]
        overrides = {
            "Environment": environment,
            "ResourceRequirements": sfn.JsonPath.list_at("$.prepared.resourceRequirements"),
        }
        parameters: dict[str, Any] = {
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
            self.scope,
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
        timeout_seconds: int,
        result_path: str,
        heartbeat_seconds: int | None = None,
        comment: str | None = None,
    ) -> tasks.CallAwsService:
        """Wait for a callback: this state's ``$$.Task.Token`` goes only into the job's ``role`` token parameter."""
        return self._put_token(
            name,
            role,
            sfn.JsonPath.task_token,
            comment=comment,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            heartbeat_timeout=sfn.Timeout.duration(Duration.seconds(heartbeat_seconds)) if heartbeat_seconds else None,
            task_timeout=sfn.Timeout.duration(Duration.seconds(timeout_seconds)),
            result_path=result_path,
        )

    def _put_token(self, name: str, role: str, token: str, **options: Any) -> tasks.CallAwsService:
        """Write ``token`` into the job's ``role`` SecureString parameter: the only way a token reaches the runner."""
        return tasks.CallAwsService(
            self.scope,
            name,
            service="ssm",
            action="putParameter",
            parameters={
                "Name": sfn.JsonPath.string_at(f"$.prepared.tokenParameters.{role}"),
                "Value": token,
                "Type": "SecureString",
                "Overwrite": True,
            },
            iam_resources=self.token_parameters,
            **options,
        )


def _catch_all[State: sfn.TaskStateBase](state: State, describe_failure: sfn.IChainable) -> State:
    """Send any error of ``state`` down the failure path, with the error at ``$.error``."""
    state.add_catch(describe_failure, errors=[sfn.Errors.ALL], result_path="$.error")
    return state
