"""The aws backend's paths that run no training: configuration, staging, validation refusal, budget, listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest

from workbench.backends.aws import AwsBackend, running_state, sagemaker_session
from workbench.backends.aws_costs import PRICES_PER_HOUR, estimate
from workbench.errors import BackendConfigError, BudgetExceededError, JobNotFoundError
from workbench.spec.document import SpecError, parse_spec
from workbench.spec.status import JobState

TRAIN = {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 3, "device": "cpu"}}


def test_a_config_file_with_the_stack_outputs_works_like_the_stack(pipeline, tmp_path):
    path = tmp_path / "aws.json"
    path.write_text(json.dumps(pipeline.outputs))
    assert AwsBackend(config_file=path).config.state_machine_arn == pipeline.state_machine_arn


def test_a_missing_stack_is_a_config_error_that_says_what_to_do(moto_server):
    with pytest.raises(BackendConfigError, match="deploy infra/"):
        AwsBackend(stack_name="NoSuchStack").config


def test_a_job_the_pipeline_refuses_fails_with_the_validation_reason(backend):
    missing = f"s3://{backend.config.bucket}/inputs/nowhere/package.whl"
    job = backend.submit(parse_spec({**TRAIN, "customEnvironmentS3Uri": missing}))
    status = job.wait(timeout=120, poll_interval=0.5)
    assert status.state is JobState.FAILED
    assert "refused" in status.reason and f"{missing} does not exist" in status.reason, status.reason
    assert job._batch_jobs() == []


def test_local_inputs_are_uploaded_to_the_staging_prefix_and_rewritten(backend, tmp_path):
    package = tmp_path / "my_env-0.1.tar.gz"
    package.write_bytes(b"not really a package")
    policy = tmp_path / "model_7.pt"
    policy.write_bytes(b"weights")
    spec = parse_spec({"trainingConfig": {"mode": "evaluate", "task": "My-Task", "policy": f"file://{policy}"},
                       "customEnvironmentS3Uri": str(package)})
    document = backend.stage_inputs(spec, "job-1")
    bucket = backend.config.bucket
    assert document["customEnvironmentS3Uri"] == f"s3://{bucket}/inputs/job-1/my_env-0.1.tar.gz"
    assert document["trainingConfig"]["policyS3Uri"] == f"s3://{bucket}/inputs/job-1/model_7.pt"
    assert document["trainingConfig"]["policy"] is None
    body = boto3.client("s3").get_object(Bucket=bucket, Key="inputs/job-1/model_7.pt")["Body"].read()
    assert body == b"weights"


def test_a_policy_named_by_an_aws_job_id_is_that_jobs_newest_checkpoint(backend):
    s3 = boto3.client("s3")
    previous = "0b0b0b0b-1111-2222-3333-444444444444"
    for n in (9, 10, 100):
        s3.put_object(Bucket=backend.config.bucket, Key=f"outputs/{previous}/checkpoints/model_{n}.pt", Body=b"x")
    spec = parse_spec({"trainingConfig": {"mode": "evaluate", "task": "Isaac-Cartpole-Direct", "policy": previous}})
    document = backend.stage_inputs(spec, "job-2")
    assert document["trainingConfig"]["policyS3Uri"].endswith(f"outputs/{previous}/checkpoints/model_100.pt")


def test_an_evaluation_without_a_policy_is_refused_before_submission(backend):
    with pytest.raises(SpecError, match="policy"):
        backend.submit(parse_spec({"trainingConfig": {"mode": "evaluate", "task": "Isaac-Cartpole-Direct"}}))


def test_a_job_over_budget_is_refused_and_nothing_is_started(backend):
    spec = parse_spec({"trainingConfig": {"task": "Isaac-Ant", "maxIterations": 20000},
                       "computeConfig": {"numNodes": 4, "gpusPerNode": 8}})
    before = len(backend.list_jobs())
    with pytest.raises(BudgetExceededError) as refused:
        backend.submit(spec, budget=5.0)
    assert refused.value.estimated_usd > 5.0 and "estimate" in str(refused.value)
    assert len(backend.list_jobs()) == before


def test_the_estimate_scales_with_nodes_and_is_bounded_by_the_timeout():
    one = estimate(parse_spec({"trainingConfig": {"task": "Isaac-Ant", "maxIterations": 1000}}))
    four = estimate(parse_spec({"trainingConfig": {"task": "Isaac-Ant", "maxIterations": 1000},
                                "computeConfig": {"numNodes": 4, "gpusPerNode": 1}}))
    assert one.instance_type in PRICES_PER_HOUR and one.usd > 0 and "estimate" in one.describe()
    assert four.nodes == 4 and four.max_usd == pytest.approx(4 * one.max_usd)
    assert one.max_usd == pytest.approx(PRICES_PER_HOUR[one.instance_type] * 8)


def test_list_jobs_and_job_lookup(backend):
    job = backend.submit(parse_spec({**TRAIN, "customEnvironmentS3Uri": f"s3://{backend.config.bucket}/inputs/x.whl"}))
    job.wait(timeout=120, poll_interval=0.5)
    listed = backend.list_jobs()
    assert listed[0].job_id == job.job_id
    assert backend.job(job.job_id).job_id == job.job_id
    with pytest.raises(JobNotFoundError):
        backend.job("00000000-0000-0000-0000-000000000000")


def test_local_use_never_imports_boto3():
    code = ("import sys, workbench.backends, workbench.backends.local, workbench.runner.job, workbench.cli; "
            "print(sorted(m for m in ('boto3', 'botocore', 'sagemaker') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("batch_status", "age_s", "state", "words"),
    [
        (None, 0, JobState.SUBMITTED, "validating"),
        ("SUBMITTED", 0, JobState.SUBMITTED, "SUBMITTED"),
        ("RUNNABLE", 30, JobState.SUBMITTED, "waiting for a GPU instance"),
        ("RUNNABLE", 3600, JobState.SUBMITTED, "quota"),
        ("STARTING", 0, JobState.STARTING, "STARTING"),
        ("RUNNING", 0, JobState.RUNNING, "RUNNING"),
    ],
)
def test_the_batch_state_is_explained_while_the_execution_runs(batch_status, age_s, state, words):
    now = 1_800_000_000.0
    job = None if batch_status is None else {"status": batch_status, "createdAt": int((now - age_s) * 1000)}
    got_state, reason = running_state(job, now)
    assert got_state is state and words in reason


def test_outside_sagemaker_the_default_session_is_used(monkeypatch):
    monkeypatch.delenv("SAGEMAKER_INTERNAL_IMAGE_URI", raising=False)
    assert sagemaker_session() is None


def test_inside_sagemaker_without_its_sdk_the_default_session_is_used(monkeypatch):
    monkeypatch.setenv("SAGEMAKER_INTERNAL_IMAGE_URI", "studio")
    monkeypatch.setitem(sys.modules, "sagemaker", None)
    assert sagemaker_session() is None


def test_videos_get_presigned_urls_that_serve_them(backend):
    import urllib.request

    from workbench.backends.aws import AwsJob

    job = AwsJob(backend, "0c0c0c0c-1111-2222-3333-444444444444")
    s3 = boto3.client("s3")
    s3.put_object(Bucket=backend.config.bucket, Key=f"outputs/{job.job_id}/videos/episode-0.mp4", Body=b"\x00mp4")
    s3.put_object(Bucket=backend.config.bucket, Key=f"outputs/{job.job_id}/metrics.csv", Body=b"step\n")
    urls = job.video_urls(expires_in=600)
    assert list(urls) == ["videos/episode-0.mp4"]
    assert urllib.request.urlopen(urls["videos/episode-0.mp4"], timeout=10).read() == b"\x00mp4"


def test_the_cli_drives_the_aws_backend(backend, tmp_path):
    """``workbench run|status|logs|list|outputs --backend aws`` against the harness (a job the pipeline refuses)."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**TRAIN, "customEnvironmentS3Uri": f"s3://{backend.config.bucket}/inputs/none.whl"}))
    env = {**os.environ, "WORKBENCH_AWS_STACK": "WorkbenchTest"}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "workbench.cli", *args, "--backend", "aws"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    job_id = cli("run", str(spec)).split()[2]
    backend.job(job_id).wait(timeout=120, poll_interval=0.5)
    assert json.loads(cli("status", job_id))["state"] == "FAILED"
    assert job_id in cli("list")
    assert cli("outputs", job_id).strip().endswith(job_id)
    cli("logs", job_id)
