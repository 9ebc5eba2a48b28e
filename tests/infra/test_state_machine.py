"""The internal state machine's definition: integrations, timeouts, where the token goes, every failure path."""

from __future__ import annotations

import json

from asl import all_states, references

SUBMIT_RESOURCE = "arn:<AWS::Partition>:states:::aws-sdk:batch:submitJob.waitForTaskToken"
SUBMITS = {"Run the training job": 28800, "Run the multi-node training job": 28800, "Run the evaluation job": 7200}


def reachable(definition: dict, start: str) -> set[str]:
    """Names of the states reachable from ``start`` (Next, Default, Choices, Catch)."""
    states, seen, todo = definition["States"], set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
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


def test_batch_jobs_are_submitted_through_the_sdk_integration_with_their_timeouts(definition):
    states = definition["States"]
    for name, timeout in SUBMITS.items():
        assert states[name]["Resource"] == SUBMIT_RESOURCE
        assert states[name]["HeartbeatSeconds"] == 1800
        assert states[name]["TimeoutSeconds"] == timeout
    submits = {n for n, s in all_states(definition) if "batch:submitJob" in s.get("Resource", "")}
    assert submits == set(SUBMITS)


def test_mode_and_node_count_choose_the_submission(definition):
    choice = definition["States"]["Which job?"]
    assert {"Variable": "$.prepared.mode", "StringEquals": "evaluate", "Next": "Run the evaluation job"} in choice["Choices"]
    assert {"Variable": "$.prepared.multiNode", "BooleanEquals": True, "Next": "Run the multi-node training job"} in choice[
        "Choices"
    ]
    assert choice["Default"] == "Run the training job"


def test_the_task_token_appears_only_in_container_environment_overrides(definition):
    places = [
        (name, location)
        for name, state in all_states(definition)
        for location, path in references(state.get("Parameters", {}))
        if path == "$$.Task.Token"
    ]
    assert sorted(n for n, _ in places) == sorted(SUBMITS)
    for name, location in places:
        assert location.endswith("ContainerOverrides.Environment.4.Value.$"), (name, location)
        environment_entry = location.rsplit(".Value.$", 1)[0]
        parameters = definition["States"][name]["Parameters"]
        entry = parameters
        for part in environment_entry.split("."):
            entry = entry[int(part)] if part.isdigit() else entry[part]
        assert entry["Name"] == "WORKBENCH_TASK_TOKEN"
    assert "Task.Token" not in json.dumps({n: s for n, s in all_states(definition) if n not in SUBMITS})


def test_multi_node_overrides_reach_every_node(definition):
    overrides = definition["States"]["Run the multi-node training job"]["Parameters"]["NodeOverrides"]
    assert overrides["NumNodes.$"] == "$.prepared.numNodes"
    assert [o["TargetNodes"] for o in overrides["NodePropertyOverrides"]] == ["0:"]
    assert "ContainerOverrides" not in definition["States"]["Run the multi-node training job"]["Parameters"]


def test_every_task_and_map_catches_every_error(definition):
    for name, state in all_states(definition):
        if state["Type"] not in ("Task", "Map") or name == "Terminate one Batch job":
            continue
        assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name


def test_failures_after_submission_terminate_the_job_and_fail_the_caller(definition):
    states = definition["States"]
    for name in SUBMITS:
        (catch,) = states[name]["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"] and catch["ResultPath"] == "$.error"
        path = reachable(definition, catch["Next"])
        assert {"Find the Batch job", "Terminate the Batch job", "Report the failure to the caller", "Job failed"} <= path
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
