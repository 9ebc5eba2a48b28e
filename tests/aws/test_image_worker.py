"""The built job image as the Batch worker: jobs go through the deployed state machine in moto, and Batch's
container is ``docker run`` of ``container/Dockerfile.kitless`` built on the Ubuntu 24.04 stand-in base.

A training (16 envs, 2 iterations) and an evaluation with a video reach SendTaskSuccess and the S3 output layout;
a corrupt custom package reaches SendTaskFailure with the runner's reason within seconds of the container's start.
The task token appears in no log, output or container configuration, and a job writes only its own directories:
the container's working directory and the EFS volume's job and cache directories.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import time
from pathlib import Path

import av
import boto3
import pytest
from moto_compat import HOST_TERMINATED, RECLAIM_PREFIX
from pipeline import container_properties, with_export_interval

from workbench.backends.aws import AwsBackend, AwsJob
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

pytestmark = pytest.mark.timeout(1800)
"""The image build (seconds when cached, ~20 min cold on this machine) happens in the first test's set-up."""
WAIT = 600
TRAIN = {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 2, "device": "cpu", "seed": 5}
CONTAINER_WRITABLE = ("/home/workbench/jobs", "/tmp")
"""Where a job may change the container's file system: its working directory (the image's WORKDIR) and /tmp;
besides, the engine makes the volumes' mount points."""


@pytest.fixture(scope="module")
def efs_before(image_worker, pipeline) -> set[str]:
    efs = image_worker.efs(pipeline)
    efs.mkdir(parents=True, exist_ok=True)
    return _files(efs)


@pytest.fixture(scope="module")
def trained(image_worker, efs_before, backend: AwsBackend) -> AwsJob:
    job = backend.submit(parse_spec({"trainingConfig": TRAIN}))
    job.wait(timeout=WAIT, poll_interval=1)
    return job


def test_a_training_in_the_image_succeeds_with_the_output_layout(trained: AwsJob, backend: AwsBackend):
    status = trained.status()
    assert status.state is JobState.SUCCEEDED, f"{status.reason}\n" + "\n".join(list(trained.logs())[-40:])
    assert status.progress.iteration == 2 and status.progress.max_iterations == 2
    local = trained.outputs()
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert {"training-config.json", "metrics.csv", "logs/job.log", "checkpoints/model_1.pt",
            "exported/policy.onnx", "exported/policy.pt", "exported/policy.json"} <= files, files
    execution = backend.client("stepfunctions").describe_execution(executionArn=trained.execution_arn)
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["result"]["state"] == "SUCCEEDED"


def test_the_job_ran_in_the_image_as_uid_1000(trained: AwsJob, image_worker):
    (batch,) = trained._batch_jobs()
    inspected = json.loads(image_worker.engine.docker("inspect", image_worker.container(batch["jobId"])).stdout)[0]
    assert inspected["Config"]["Image"] == image_worker.image
    assert inspected["Config"]["User"] == "1000:1000"
    assert inspected["State"]["ExitCode"] == 0
    assert any(line.startswith("[workbench] status SUCCEEDED") for line in trained.logs())


def test_the_task_token_appears_in_no_log_output_or_container_configuration(trained: AwsJob, image_worker):
    tokens = _task_tokens(trained)
    assert tokens and all(len(token) > 20 for token in tokens)
    (batch,) = trained._batch_jobs()
    inspected = image_worker.engine.docker("inspect", image_worker.container(batch["jobId"])).stdout
    logs = "\n".join(trained.logs())
    outputs = [p for p in trained.outputs().rglob("*") if p.is_file()]
    for token in tokens:
        assert token not in logs
        for path in outputs:
            assert token.encode() not in path.read_bytes(), f"the task token is in {path}"
        assert token not in json.dumps(batch), "the task token is readable with batch:DescribeJobs"
        assert token not in inspected, "the task token is in the container's configuration"


def test_a_job_writes_only_its_own_directories(trained: AwsJob, image_worker, pipeline, efs_before: set[str]):
    (batch,) = trained._batch_jobs()
    changed = image_worker.engine.docker("diff", image_worker.container(batch["jobId"])).stdout.splitlines()
    paths = [line.split(None, 1)[1] for line in changed]
    writable = (*CONTAINER_WRITABLE, *(m["ContainerPath"] for m in container_properties(pipeline.template)["MountPoints"]))
    outside = [p for p in paths if not any(p == d or p.startswith(d + "/") or d.startswith(p + "/") for d in writable)]
    assert not outside, f"the job changed the image outside {CONTAINER_WRITABLE}: {outside}"
    created = _files(image_worker.efs(pipeline)) - efs_before
    allowed = (f"checkpoints/{trained.job_id}/", "home/cache/", "home/assets/")
    assert any(p.startswith(allowed[0]) for p in created), sorted(created)[:20]
    stray = sorted(p for p in created if not p.startswith(allowed))
    assert not stray, f"the job wrote outside its directories on EFS: {stray[:20]}"


def test_an_evaluation_with_a_video_in_the_image(trained: AwsJob, backend: AwsBackend):
    assert trained.status().state is JobState.SUCCEEDED
    job = backend.submit(parse_spec({"trainingConfig": {
        "mode": "evaluate", "task": "Isaac-Cartpole-Direct", "numEnvs": 2, "numEpisodes": 2, "stepsPerEpisode": 30,
        "device": "cpu", "recordVideo": True, "videoEpisodes": 1, "policy": trained.job_id}}))
    status = job.wait(timeout=WAIT, poll_interval=1)
    assert status.state is JobState.SUCCEEDED, f"{status.reason}\n" + "\n".join(list(job.logs())[-40:])
    local = job.outputs()
    assert (local / "evaluation-config.json").exists() and (local / "metrics.csv").exists()
    (video,) = sorted((local / "videos").glob("*.mp4"))
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) > 0
    assert set(job.video_urls()) == {f"videos/{video.name}"}


def test_a_corrupt_custom_package_fails_within_seconds_with_the_runners_reason(image_worker, backend, tmp_path):
    package = tmp_path / "broken_env-0.1.0.tar.gz"
    package.write_bytes(b"\x1f\x8b this is not a gzip stream")
    job = backend.submit(parse_spec({"trainingConfig": {**TRAIN, "task": "Broken-Env-Direct"},
                                     "customEnvironmentS3Uri": str(package)}))
    status = job.wait(timeout=WAIT, poll_interval=0.5)
    assert status.state is JobState.FAILED
    assert "broken_env-0.1.0.tar.gz" in status.reason, status.reason
    (batch,) = job._batch_jobs()
    assert (batch["stoppedAt"] - batch["startedAt"]) / 1000 < 60
    execution = backend.client("stepfunctions").describe_execution(executionArn=job.execution_arn)
    assert execution["status"] == "FAILED"  # moto drops SendTaskFailure's cause: the reason above is the runner's
    assert "WorkbenchJobFailed" in execution.get("error", "") + execution.get("cause", ""), execution


def test_a_reclaimed_training_in_the_image_resumes_on_the_retry(backend: AwsBackend, pipeline, harness_root,
                                                                  image_worker):
    """A spot reclaim of the container (SIGTERM, SIGKILL after the grace period): Batch retries it in a new
    container, which resumes from the job's newest checkpoint on EFS; one continuous metrics.csv, one end."""
    arn = pipeline.variant("image-exports-1s", with_export_interval(pipeline.definition, 1))
    quick = AwsBackend(config=dataclasses.replace(backend.config, state_machine_arn=arn), cache_dir=backend.cache_dir)
    iterations = 12
    job = quick.submit(parse_spec({"trainingConfig": {**TRAIN, "maxIterations": iterations,
                                                      "overrides": {"agent.save_interval": 2}}}))
    (harness_root / f"{RECLAIM_PREFIX}workbench-{job.job_id}").write_text(json.dumps({"checkpoint": 4}))
    status = job.wait(timeout=WAIT, poll_interval=1)
    assert status.state is JobState.SUCCEEDED, f"{status.reason}\n" + "\n".join(list(job.logs())[-40:])
    said = re.search(r"interrupted at iteration \d+, resumed from checkpoint (\d+) \(attempt 2\)",
                     status.details.get("recovery", ""))
    assert said and int(said.group(1)) >= 4, status.details
    deadline = time.monotonic() + 120  # the runner reports before its container exits
    while (batch := job._batch_jobs()[0])["status"] not in ("SUCCEEDED", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert batch["status"] == "SUCCEEDED" and len(batch["attempts"]) == 2, batch
    assert batch["attempts"][0]["statusReason"] == HOST_TERMINATED, batch["attempts"]
    outputs = job.outputs()
    with (outputs / "metrics.csv").open(newline="") as handle:
        assert [int(row["iteration"]) for row in csv.DictReader(handle)] == list(range(iterations))
    assert (outputs / "exported" / "policy.onnx").is_file()


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _task_tokens(job: AwsJob) -> set[str]:
    """Every task token Step Functions issued to the job's execution (read back from its history)."""
    sfn = boto3.client("stepfunctions")
    events = sfn.get_execution_history(executionArn=job.execution_arn, maxResults=1000)["events"]
    found: set[str] = set()
    for event in events:
        details = event.get("taskScheduledEventDetails")
        if details:
            _collect_tokens(json.loads(details.get("parameters") or "{}"), found)
    return found


def _collect_tokens(value, found: set[str]) -> None:
    if isinstance(value, dict):
        name = str(value.get("Name") or value.get("name") or "")
        if name == "WORKBENCH_TASK_TOKEN" or name.endswith("-token"):
            found.add(value.get("Value") or value.get("value"))
        for key, item in value.items():
            if key in ("TaskToken", "taskToken") and isinstance(item, str):
                found.add(item)
            _collect_tokens(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_tokens(item, found)
