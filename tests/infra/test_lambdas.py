"""The Lambda handlers on their own: rejections, S3 checks, the Batch failure hook and the entry's failures."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from infra_configs import BUCKET, REGION
from workbench_infra.lambda_modules import load_lambda_module


prepare = load_lambda_module("prepare")
entry = load_lambda_module("entry")
batch_events = load_lambda_module("batch_events")
SETTINGS = prepare.Settings(
    bucket=BUCKET,
    job_queue="arn:aws:batch:us-west-2:123456789012:job-queue/q",
    single_node_job_definition="single",
    multi_node_job_definition="multi",
    checkpoint_root="/mnt/efs/checkpoints",
)


def sfn_stub() -> tuple[object, Stubber]:
    client = boto3.client("stepfunctions", region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t")
    return client, Stubber(client)


def test_prepare_rejects_an_invalid_spec_listing_every_problem(s3):
    document = {"trainingConfig": {"task": "Isaac-Nope", "numEnvs": 0, "rlLibrary": "keras"}}
    with pytest.raises(prepare.ValidationError) as caught:
        prepare.prepare({"jobId": "job-1", "inputParameters": document}, SETTINGS, s3)
    message = str(caught.value)
    assert "trainingConfig.numEnvs" in message and "trainingConfig.rlLibrary" in message and "Isaac-Nope" in message


def test_prepare_accepts_the_document_as_json_text(s3):
    prepared = prepare.prepare({"jobId": "job-2", "inputParameters": json.dumps({})}, SETTINGS, s3)
    assert prepared["mode"] == "train" and prepared["jobDefinition"] == "single"


@pytest.mark.parametrize("job_id", ["", "has space", "x" * 81, None])
def test_prepare_rejects_bad_job_ids(s3, job_id):
    with pytest.raises(prepare.ValidationError, match="jobId"):
        prepare.prepare({"jobId": job_id, "inputParameters": {}}, SETTINGS, s3)


def test_prepare_checks_that_referenced_s3_objects_exist_and_are_readable(s3):
    s3.put_object(Bucket=BUCKET, Key="inputs/present.whl", Body=b"x")
    document = {
        "trainingConfig": {"task": "Isaac-Cartpole-Direct", "resumeFrom": f"s3://{BUCKET}/outputs/old/model_9.pt"},
        "customEnvironmentS3Uri": f"s3://{BUCKET}/inputs/present.whl",
    }
    with pytest.raises(prepare.ValidationError) as caught:
        prepare.prepare({"jobId": "job-3", "inputParameters": document}, SETTINGS, s3)
    message = str(caught.value)
    assert f"trainingConfig.resumeFrom: s3://{BUCKET}/outputs/old/model_9.pt does not exist" in message
    assert "customEnvironmentS3Uri" not in message


def test_prepare_rejects_objects_outside_the_pipeline_prefixes_and_local_files(s3):
    document = {
        "trainingConfig": {"task": "Isaac-Cartpole-Direct", "resumeFrom": "/home/me/model.pt"},
        "customEnvironmentS3Uri": "s3://someone-elses-bucket/pkg.whl",
    }
    with pytest.raises(prepare.ValidationError) as caught:
        prepare.prepare({"jobId": "job-4", "inputParameters": document}, SETTINGS, s3)
    message = str(caught.value)
    assert "outside the locations jobs may read" in message
    assert "is a local file; upload it to S3 first" in message


def test_prepare_resumes_a_previous_job_from_its_checkpoints_on_efs(s3):
    previous = "0f8fad5b-d9cb-469f-a165-70867728950e"
    document = {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "resumeFrom": previous}}
    prepared = prepare.prepare({"jobId": "job-5", "inputParameters": document}, SETTINGS, s3)
    resume = json.loads(prepared["environment"]["WORKBENCH_JOB_SPEC"])["trainingConfig"]["resumeFrom"]
    assert resume == f"/mnt/efs/checkpoints/{previous}"
    assert any(previous in notice and "EFS" in notice for notice in prepared["notices"])


def test_prepare_explains_that_instance_type_is_not_used(s3):
    document = {"computeConfig": {"instanceType": "g6.12xlarge"}}
    prepared = prepare.prepare({"jobId": "job-6", "inputParameters": document}, SETTINGS, s3)
    assert any("instanceType is not used" in notice for notice in prepared["notices"])


def batch_failure(container: dict | None = None, nodes: list | None = None) -> dict:
    detail = {"jobName": "workbench-job-7", "jobId": "abc", "status": "FAILED", "statusReason": "Essential container in task exited"}
    if container is not None:
        detail["container"] = container
    if nodes is not None:
        detail["nodeProperties"] = {"nodeRangeProperties": nodes}
    return {"detail-type": "Batch Job State Change", "source": "aws.batch", "detail": detail}


def test_batch_failure_hook_fails_the_token_with_the_container_reason():
    event = batch_failure(
        {
            "environment": [{"name": "WORKBENCH_TASK_TOKEN", "value": "tok-1"}],
            "reason": "CannotPullContainerError: no space left on device",
            "exitCode": 137,
        }
    )
    client, stub = sfn_stub()
    cause = (
        "AWS Batch job workbench-job-7 (abc) failed; Essential container in task exited; "
        "container: CannotPullContainerError: no space left on device; exit code 137"
    )
    stub.add_response("send_task_failure", {}, {"taskToken": "tok-1", "error": "BatchJobFailed", "cause": cause})
    with stub:
        assert batch_events.report_failure(event, client) == "reported the failure to the job's execution"
    stub.assert_no_pending_responses()


def test_batch_failure_hook_finds_the_token_of_a_multi_node_job():
    event = batch_failure(nodes=[{"targetNodes": "0:", "container": {"environment": [{"name": "WORKBENCH_TASK_TOKEN", "value": "tok-2"}]}}])
    assert batch_events.task_token(event["detail"]) == "tok-2"


def test_batch_failure_hook_ignores_tokens_already_closed_and_jobs_without_tokens():
    event = batch_failure({"environment": [{"name": "WORKBENCH_TASK_TOKEN", "value": "tok-3"}]})
    client, stub = sfn_stub()
    stub.add_client_error("send_task_failure", service_error_code="TaskTimedOut")
    with stub:
        assert batch_events.report_failure(event, client) == "ignored: the job's task was already closed"
    assert batch_events.report_failure(batch_failure({"environment": []}), client) == "ignored: the job carries no task token"


def test_entry_fails_the_callers_token_at_once_on_a_bad_request_and_starts_nothing():
    client, stub = sfn_stub()
    stub.add_response(
        "send_task_failure",
        {},
        {"taskToken": "caller-1", "error": "WorkbenchEntryError", "cause": ANY},
    )
    with stub:
        response = entry.start_job({"body": {"TaskToken": "caller-1", "inputParameters": "{not json"}}, "arn:machine", client)
    stub.assert_no_pending_responses()
    assert response["statusCode"] == 400
    assert "inputParameters is not valid JSON" in json.loads(response["body"])["message"]


def test_entry_without_a_task_token_says_how_to_register_the_pipeline():
    client, stub = sfn_stub()
    with stub:
        response = entry.start_job({"body": json.dumps({"inputParameters": "{}"})}, "arn:machine", client)
    assert response["statusCode"] == 400
    assert "waitForCallback" in json.loads(response["body"])["message"]


def test_entry_never_logs_the_token(capsys, monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("stepfunctions")
        machine = client.create_state_machine(
            name="m", definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/r",
        )["stateMachineArn"]
        response = entry.start_job({"body": {"TaskToken": "SECRET-TOKEN", "inputParameters": "{}"}}, machine, client)
    assert response["statusCode"] == 200
    assert "SECRET-TOKEN" not in capsys.readouterr().out + response["body"]


def test_prepare_bundle_runs_the_spec_code_with_the_standard_library_only(synthesized):
    """The deployed asset holds the handler and workbench.spec; it imports and validates without site-packages."""
    functions = synthesized.template["Resources"]
    (code,) = [r["Properties"]["Code"] for k, r in functions.items() if "PrepareFunction" in k and r["Type"] == "AWS::Lambda::Function"]
    bundle = synthesized.outdir / f"asset.{code['S3Key'].removesuffix('.zip')}"
    assert sorted(p.name for p in (bundle / "workbench").glob("*.py")) == ["__init__.py", "spec.py", "task_catalogue.py"]
    script = (
        "import sys; sys.path.insert(0, '.')  # the Lambda task root\n"
        "import json, handler\n"
        "settings = handler.Settings('b', 'q', 'single', 'multi', '/mnt/efs/checkpoints')\n"
        "doc = {'trainingConfig': {'task': 'Isaac-Cartpole-Direct-v0'}, 'computeConfig': {'numNodes': 2}}\n"
        "out = handler.prepare({'jobId': 'j1', 'inputParameters': doc}, settings)\n"
        "print(json.dumps([out['jobDefinition'], out['numNodes'], handler.parse_spec.__module__]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", script], cwd=bundle, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["multi", 2, "workbench.spec"]
