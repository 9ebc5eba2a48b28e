"""The internal state machine's definition: integrations, timeouts, where the tokens go, every failure path."""

from __future__ import annotations

import json

from asl import all_states, references

WAIT_RESOURCE = "arn:<AWS::Partition>:states:::aws-sdk:ssm:putParameter.waitForTaskToken"
SUBMIT_RESOURCE = "arn:<AWS::Partition>:states:::aws-sdk:batch:submitJob"
RUNS = {"Run the training job": 28800, "Run the multi-node training job": 28800, "Run the evaluation job": 7200}
SUBMITS = ("Submit the Batch job", "Submit the multi-node Batch job")
START = "Wait for the job to start"
FORGET = "Delete the job's token parameters"
ENDS = {"Job succeeded", "Job failed"}


def reachable(definition: dict, start: str, avoiding: str | None = None, submitted: bool = False) -> set[str]:
    """Names of the states reachable from ``start`` (Next, Default, Choices, Catch) without passing ``avoiding``.

    ``submitted``: the Batch job was submitted, so "Was a Batch job submitted?" takes its first choice.
    """
    states, seen, todo = definition["States"], set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name == avoiding:
            continue
        seen.add(name)
        state = states[name]
        if submitted and name == "Was a Batch job submitted?":
            todo.append(state["Choices"][0]["Next"])
            continue
        todo += [state[k] for k in ("Next", "Default") if k in state]
        todo += [c["Next"] for c in state.get("Choices", [])]
        todo += [c["Next"] for c in state.get("Catch", [])]
    return seen


def test_no_state_uses_the_optimized_batch_integration_with_a_task_token(definition):
    for name, state in all_states(definition):
        resource = state.get("Resource", "")
        assert not resource.endswith(":states:::batch:submitJob.waitForTaskToken"), (
            f"{name}: AWS Batch's optimized integration does not support .waitForTaskToken; "
            "use arn:aws:states:::aws-sdk:batch:submitJob.waitForTaskToken"
        )


def test_batch_jobs_are_submitted_request_response_and_the_runs_wait_with_their_timeouts(definition):
    states = definition["States"]
    for name in SUBMITS:
        assert states[name]["Resource"] == SUBMIT_RESOURCE
        assert "HeartbeatSeconds" not in states[name] and "TimeoutSeconds" not in states[name]
        assert states[name]["ResultSelector"] == {"jobId.$": "$.JobId"}
        assert states[name]["Next"] == "Start the queue clock"
    submits = {n for n, s in all_states(definition) if "batch:submitJob" in s.get("Resource", "")}
    assert submits == set(SUBMITS)
    for name, timeout in RUNS.items():
        assert states[name]["Resource"] == WAIT_RESOURCE
        assert states[name]["HeartbeatSeconds"] == 1800
        assert states[name]["TimeoutSeconds"] == timeout
        assert states[name]["Parameters"]["Name.$"] == "$.prepared.tokenParameters.run"
        assert states[name]["Next"] == "Finalize"


def test_queue_time_does_not_count_against_the_heartbeat(definition):
    """Waiting for the start has no heartbeat; every 300 s it checks the job, heartbeats the caller and loops."""
    states = definition["States"]
    start = states[START]
    assert start["Resource"] == WAIT_RESOURCE
    assert "HeartbeatSeconds" not in start and start["TimeoutSeconds"] == 300
    assert start["Parameters"]["Name.$"] == "$.prepared.tokenParameters.start"
    assert start["Next"] == "Which job?"
    timeout, other = start["Catch"]
    assert timeout["ErrorEquals"] == ["States.Timeout"] and other["ErrorEquals"] == ["States.ALL"]
    assert timeout["Next"] == "Check the queued Batch job" and other["Next"] == "Describe the failure"
    assert states["Start the queue clock"]["Parameters"] == {"checks": 0}

    check = states["Check the queued Batch job"]
    assert check["Resource"].endswith(":states:::aws-sdk:batch:describeJobs")
    assert check["Parameters"] == {"Jobs.$": "States.Array($.submitted.jobId)"}
    failed = states[check["Next"]]["Choices"][0]
    assert failed["And"][1] == {"Variable": "$.queue.batchJob.statuses[0]", "StringEquals": "FAILED"}
    assert states[failed["Next"]]["Parameters"]["Error"] == "BatchJobFailed"
    assert check["Catch"][0]["Next"] == "Is a caller waiting while the job is queued?"

    caller = states["Is a caller waiting while the job is queued?"]
    assert caller["Choices"] == [{"Variable": "$.callerTaskToken", "IsPresent": True, "Next": "Heartbeat the caller"}]
    assert caller["Default"] == "Count the queue check"
    heartbeat = states["Heartbeat the caller"]
    assert heartbeat["Resource"].endswith(":states:::aws-sdk:sfn:sendTaskHeartbeat")
    assert heartbeat["Parameters"] == {"TaskToken.$": "$.callerTaskToken"}
    gone, anything = heartbeat["Catch"]
    assert set(gone["ErrorEquals"]) == {"Sfn.TaskTimedOutException", "Sfn.TaskDoesNotExistException", "Sfn.InvalidTokenException"}
    assert states[gone["Next"]]["Parameters"]["Error"] == "CallerStoppedWaiting"
    assert anything["ErrorEquals"] == ["States.ALL"] and anything["Next"] == heartbeat["Next"] == "Count the queue check"

    count = states["Count the queue check"]
    assert count["Parameters"] == {"checks.$": "States.MathAdd($.queue.checks, 1)"} and count["ResultPath"] == "$.queue"
    limit = states[count["Next"]]
    assert limit["Choices"][0]["Variable"] == "$.queue.checks"
    assert limit["Choices"][0]["NumericGreaterThanEquals"] * 300 == 24 * 3600
    assert limit["Default"] == START
    too_long = states[limit["Choices"][0]["Next"]]
    assert too_long["Parameters"]["Error"] == "QueueTimeout"
    assert "waited more than 24 h for a GPU instance" in too_long["Parameters"]["Cause"]
    assert too_long["Next"] == "Describe the failure"


def test_the_execution_outlasts_the_queue_limit_and_the_longest_run(definition):
    assert definition["TimeoutSeconds"] >= 24 * 3600 + max(RUNS.values())


def test_mode_and_node_count_choose_the_submission_and_the_run(definition):
    submit = definition["States"]["How is the job submitted?"]
    assert submit["Choices"] == [{"Variable": "$.prepared.multiNode", "BooleanEquals": True, "Next": "Submit the multi-node Batch job"}]
    assert submit["Default"] == "Submit the Batch job"
    choice = definition["States"]["Which job?"]
    assert {"Variable": "$.prepared.mode", "StringEquals": "evaluate", "Next": "Run the evaluation job"} in choice["Choices"]
    assert {"Variable": "$.prepared.multiNode", "BooleanEquals": True, "Next": "Run the multi-node training job"} in choice[
        "Choices"
    ]
    assert choice["Default"] == "Run the training job"


def test_task_tokens_go_only_into_ssm_secure_strings_never_into_the_batch_job(definition):
    places = [
        (name, location)
        for name, state in all_states(definition)
        for location, path in references(state.get("Parameters", {}))
        if path == "$$.Task.Token"
    ]
    assert sorted(places) == sorted((name, "Value.$") for name in [START, *RUNS])
    for name, _ in places:
        state = definition["States"][name]
        assert state["Resource"] == WAIT_RESOURCE
        assert state["Parameters"]["Type"] == "SecureString" and state["Parameters"]["Overwrite"] is True
    keep = definition["States"]["Keep the caller's token"]
    assert keep["Resource"].endswith(":states:::aws-sdk:ssm:putParameter")
    assert keep["Parameters"] == {
        "Name.$": "$.prepared.tokenParameters.caller", "Value.$": "$.callerTaskToken", "Type": "SecureString", "Overwrite": True,
    }
    assert definition["States"]["Does a caller wait for the job?"]["Choices"][0]["Next"] == "Keep the caller's token"
    for name in SUBMITS:
        text = json.dumps(definition["States"][name])
        assert "Task.Token" not in text and "callerTaskToken" not in text and '"WORKBENCH_TASK_TOKEN"' not in text
    callers = {n for n, s in all_states(definition) if "$.callerTaskToken" in json.dumps(s.get("Parameters", {}))}
    assert callers == {"Keep the caller's token", "Heartbeat the caller", "Report the failure to the caller",
                       "Report the success to the caller"}


def test_the_batch_job_gets_the_token_parameters_name_and_the_resource_requirements(definition):
    overrides = definition["States"]["Submit the Batch job"]["Parameters"]["ContainerOverrides"]
    names = {e["Name"]: e["Value.$"] for e in overrides["Environment"]}
    assert names["WORKBENCH_TASK_TOKEN_PARAMETER"] == "$.prepared.environment.WORKBENCH_TASK_TOKEN_PARAMETER"
    assert overrides["ResourceRequirements.$"] == "$.prepared.resourceRequirements"


def test_every_end_deletes_the_token_parameters_and_a_failed_delete_changes_nothing(definition):
    states = definition["States"]
    for name in ["Keep the caller's token", *SUBMITS, "Start the queue clock", START, *RUNS]:
        assert not reachable(definition, name, avoiding=FORGET, submitted=True) & ENDS, name
        assert ENDS <= reachable(definition, name)
    forget = states[FORGET]
    assert forget["Resource"].endswith(":states:::aws-sdk:ssm:deleteParameters")
    assert forget["Parameters"]["Names.$"] == (
        "States.Array($.prepared.tokenParameters.start, $.prepared.tokenParameters.run, $.prepared.tokenParameters.caller)"
    )
    (catch,) = forget["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == forget["Next"] == "Did the job fail?"
    assert catch["ResultPath"] not in ("$.failure", "$.error", "$.output")
    after = states["Did the job fail?"]
    assert after["Choices"] == [{"Variable": "$.failure", "IsPresent": True, "Next": "Is a caller waiting for the failure?"}]
    assert after["Default"] == "Is a caller waiting for the result?"
    assert states["Finalize"]["Next"] == FORGET


def test_multi_node_overrides_reach_every_node(definition):
    overrides = definition["States"]["Submit the multi-node Batch job"]["Parameters"]["NodeOverrides"]
    assert overrides["NumNodes.$"] == "$.prepared.numNodes"
    assert [o["TargetNodes"] for o in overrides["NodePropertyOverrides"]] == ["0:"]
    assert "ContainerOverrides" not in definition["States"]["Submit the multi-node Batch job"]["Parameters"]


def test_every_task_and_map_catches_every_error(definition):
    for name, state in all_states(definition):
        if state["Type"] not in ("Task", "Map") or name == "Terminate one Batch job":
            continue
        assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name


def test_failures_after_submission_terminate_the_job_and_fail_the_caller(definition):
    states = definition["States"]
    for name in [*SUBMITS, START, *RUNS]:
        catch = states[name]["Catch"][-1]
        assert catch["ErrorEquals"] == ["States.ALL"] and catch["ResultPath"] == "$.error"
        path = reachable(definition, catch["Next"])
        assert {"Find the Batch job", "Terminate the Batch job", FORGET, "Report the failure to the caller", "Job failed"} <= path
    find = states["Find the Batch job"]
    assert find["Resource"].endswith(":states:::aws-sdk:batch:listJobs")
    assert find["Parameters"]["Filters"][0]["Name"] == "JOB_NAME"
    assert find["ResultSelector"] == {"jobs.$": "$.JobSummaryList"}
    terminate_map = states["Terminate the Batch job"]
    assert terminate_map["ItemsPath"] == "$.batchJobs.jobs"
    terminate = terminate_map["ItemProcessor"]["States"]["Terminate one Batch job"]
    assert terminate["Resource"].endswith(":states:::aws-sdk:batch:terminateJob")
    assert terminate["Parameters"]["JobId.$"] == "$.jobId"


def test_an_incomplete_input_fails_like_a_validation_error(definition):
    states = definition["States"]
    assert definition["StartAt"] == "Check the input"
    check = states["Check the input"]
    assert check["Choices"][0]["Next"] == "Validate and prepare"
    assert {c["Variable"] for c in check["Choices"][0]["And"]} == {"$.jobId", "$.inputParameters"}
    incomplete = states[check["Default"]]
    assert incomplete["Parameters"]["Error"] == "ValidationError" and incomplete["ResultPath"] == "$.error"
    assert "Report the failure to the caller" in reachable(definition, check["Default"])


def test_a_failed_validation_fails_the_caller_without_terminating_anything(definition):
    states = definition["States"]
    (catch,) = states["Validate and prepare"]["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    submitted = states["Was a Batch job submitted?"]
    assert submitted["Choices"] == [{"Variable": "$.prepared.jobName", "IsPresent": True, "Next": "Find the Batch job"}]
    assert submitted["Default"] == "Is a caller waiting for the failure?"


def test_the_caller_token_is_failed_with_the_error_and_cause_when_given(definition):
    states = definition["States"]
    waiting = states["Is a caller waiting for the failure?"]
    assert waiting["Choices"] == [
        {"Variable": "$.callerTaskToken", "IsPresent": True, "Next": "Report the failure to the caller"}
    ]
    assert waiting["Default"] == "Is the error name reserved?"
    report = states["Report the failure to the caller"]
    assert report["Resource"].endswith(":states:::aws-sdk:sfn:sendTaskFailure")
    assert report["Parameters"] == {
        "TaskToken.$": "$.callerTaskToken",
        "Error.$": "$.failure.error",
        "Cause.$": "$.failure.cause",
    }
    assert states["Job failed"] == {"Type": "Fail", "ErrorPath": "$.failure.error", "CausePath": "$.failure.cause"}


def test_the_fail_state_never_raises_a_reserved_states_error(definition):
    states = definition["States"]
    reserved = states["Is the error name reserved?"]
    assert reserved["Choices"] == [
        {"Variable": "$.failure.error", "StringMatches": "States.*", "Next": "Rename a reserved error name"}
    ]
    assert reserved["Default"] == "Job failed"
    rename = states["Rename a reserved error name"]
    assert rename["Parameters"]["error.$"] == "States.Format('Workbench.{}', $.failure.error)"
    assert rename["Next"] == "Job failed"


def test_a_failure_without_a_cause_still_gets_one(definition):
    states = definition["States"]
    describe = states["Describe the failure"]
    assert describe["Choices"][0] == {"Variable": "$.error.Cause", "IsPresent": False, "Next": "Failure without a cause"}
    assert describe["Choices"][1] == {"Variable": "$.error.Cause", "IsString": True, "Next": "Failure with its cause"}
    assert states["Failure without a cause"]["Parameters"]["cause.$"].startswith("States.Format(")


def test_success_reports_the_output_to_the_caller_when_given(definition):
    states = definition["States"]
    assert states["Finalize"]["Parameters"] == {
        "jobId.$": "$.jobId",
        "outputUri.$": "$.prepared.outputUri",
        "result.$": "$.result",
    }
    report = states["Report the success to the caller"]
    assert report["Resource"].endswith(":states:::aws-sdk:sfn:sendTaskSuccess")
    assert report["Parameters"]["Output.$"] == "States.JsonToString($.output)"
    assert states["Job succeeded"] == {"Type": "Succeed", "OutputPath": "$.output"}
