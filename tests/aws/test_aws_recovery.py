"""Automatic recovery on the synthesized pipeline in moto: a training whose host is terminated mid-training (the
harness plays a spot reclaim: SIGTERM, SIGKILL after the grace period, Batch status reason ``Host EC2 ...``) is
retried by Batch's retry strategy with ``AWS_BATCH_JOB_ATTEMPT=2``; the retry resumes from the job's newest checkpoint
on EFS with its counters going on, the outputs hold one continuous metrics.csv, and the job reports its end once.
A failure of the job itself is not retried.

The state machine is a variant of the pipeline's whose runner exports every second (not every 15 s), so that the
tiny training has checkpoints on EFS before the reclaim; everything else is the synthesized pipeline.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import time

import boto3
import pytest
from moto_compat import HOST_TERMINATED, RECLAIM_PREFIX
from pipeline import with_export_interval

from workbench.backends.aws import AwsBackend, AwsJob
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

ITERATIONS = 30
TRAINING = {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": ITERATIONS, "device": "cpu", "seed": 5,
            "overrides": {"agent.save_interval": 2}}
RECLAIM_AT = 4
"""The harness reclaims the instance once the job's EFS checkpoint directory holds model_<n>.pt with n >= this."""
WAIT = 300
RECOVERED = re.compile(r"interrupted at iteration (\d+), resumed from checkpoint (\d+) \(attempt 2\)")
RUN_STATE = "Run the training job"
ITERATION_LINE = re.compile(r"Learning iteration (\d+)/(\d+)")


@pytest.fixture(scope="module")
def quick_exports(backend: AwsBackend, pipeline) -> AwsBackend:
    definition = with_export_interval(pipeline.definition, 1)
    config = dataclasses.replace(backend.config, state_machine_arn=pipeline.variant("exports-1s", definition))
    return AwsBackend(config=config, cache_dir=backend.cache_dir)


@pytest.fixture(scope="module")
def jobs(quick_exports: AwsBackend, harness_root, tmp_path_factory) -> dict[str, AwsJob]:
    """A training reclaimed mid-way and a training that fails by itself, submitted together."""
    reclaimed = quick_exports.submit(parse_spec({"trainingConfig": TRAINING}))
    (harness_root / f"{RECLAIM_PREFIX}workbench-{reclaimed.job_id}").write_text(json.dumps({"checkpoint": RECLAIM_AT}))
    garbage = tmp_path_factory.mktemp("garbage") / "model_3.pt"
    garbage.write_bytes(b"not a checkpoint")
    failing = quick_exports.submit(parse_spec({"trainingConfig": {**TRAINING, "resumeFrom": str(garbage)}}))
    return {"reclaimed": reclaimed, "failing": failing}


def batch_job(job: AwsJob) -> dict:
    """The job's Batch job once it ended (the runner reports before its container exits)."""
    deadline = time.monotonic() + 60
    while (described := job._batch_jobs()[0])["status"] not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, described["status"]
        time.sleep(0.5)
    return described


def task_ends(job: AwsJob) -> list[str]:
    """The callbacks the run state got (its task token is the one the runner reports the job's end to)."""
    sfn = boto3.client("stepfunctions")
    events = sfn.get_execution_history(executionArn=job.execution_arn, maxResults=1000)["events"]
    ends, state = [], ""
    for event in events:
        state = (event.get("stateEnteredEventDetails") or {}).get("name", state)
        if state == RUN_STATE and event["type"] in ("TaskSucceeded", "TaskFailed"):
            ends.append(event["type"])
    return ends


def read_rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_reclaimed_training_resumes_on_the_retry_and_reports_once(jobs):
    job = jobs["reclaimed"]
    statuses = []
    deadline = time.monotonic() + WAIT
    while not (status := job.status()).state.is_terminal:
        statuses.append(status)
        assert time.monotonic() < deadline, f"the job did not end within {WAIT} s: {status}"
        time.sleep(0.5)
    assert status.state is JobState.SUCCEEDED, status.reason

    described = batch_job(job)
    assert described["status"] == "SUCCEEDED" and len(described["attempts"]) == 2, described["attempts"]
    assert described["attempts"][0]["statusReason"] == HOST_TERMINATED

    lines = list(job.logs())
    first = [line.removeprefix("[attempt 1] ") for line in lines if line.startswith("[attempt 1] ")]
    second = [line.removeprefix("[attempt 2] ") for line in lines if line.startswith("[attempt 2] ")]
    assert first and second and len(first) + len(second) == len(lines)
    assert any("attempt 1 of 3 stopped" in line and "reports none" in line for line in first), first[-15:]
    assert not [line for line in first if "status CANCELLED" in line or "status FAILED" in line]
    (said,) = [RECOVERED.search(line) for line in second if RECOVERED.search(line)]
    interrupted_at, checkpoint = int(said.group(1)), int(said.group(2))
    assert RECLAIM_AT <= checkpoint <= interrupted_at < ITERATIONS - 1
    assert RECOVERED.search(status.details["recovery"])
    assert any(RECOVERED.search(s.reason) for s in statuses if s.state is JobState.RUNNING and "recovery" in s.details)

    first_iterations = [int(m.group(1)) for line in first if (m := ITERATION_LINE.search(line))]
    resumed = [(int(m.group(1)), int(m.group(2))) for line in second if (m := ITERATION_LINE.search(line))]
    assert first_iterations[0] == 0 and resumed[0][0] == checkpoint + 1, (first_iterations, resumed[:3])
    assert resumed[-1] == (ITERATIONS - 1, ITERATIONS), resumed[-3:]  # where the uninterrupted job would end

    assert task_ends(job) == ["TaskSucceeded"]
    outputs = job.outputs()
    rows = read_rows(outputs / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(ITERATIONS))
    wall = [float(r["wall_time"]) for r in rows]
    assert wall == sorted(wall) and wall[checkpoint + 1] - wall[checkpoint] > 1  # the retry's rows come later
    saved = {int(p.stem.split("_")[1]) for p in (outputs / "checkpoints").glob("model_*.pt")}
    assert {2, checkpoint, ITERATIONS - 1} <= saved  # the first attempt's and the retry's


def test_a_failure_of_the_job_itself_is_not_retried(jobs):
    job = jobs["failing"]
    status = job.wait(timeout=WAIT, poll_interval=0.5)
    assert status.state is JobState.FAILED and "model_3.pt" in status.reason, status.reason
    described = batch_job(job)
    assert described["status"] == "FAILED" and len(described["attempts"]) == 1, described
    assert not described["statusReason"].startswith("Host EC2")
    assert task_ends(job) == ["TaskFailed"]
