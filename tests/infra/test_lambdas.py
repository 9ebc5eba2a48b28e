"""The Lambda handlers on their own: rejections, S3 checks, the Batch failure hook and the entry's failures."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import boto3
import pytest
from botocore.stub import ANY, Stubber
from infra_configs import BUCKET, REGION
from moto import mock_aws
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
    multi_node_job_queue="arn:aws:batch:us-west-2:123456789012:job-queue/multi-node",
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


def requirements(prepared: dict) -> dict[str, int]:
    return {r["Type"]: int(r["Value"]) for r in prepared["resourceRequirements"]}


def test_prepare_sizes_a_job_without_instance_type_for_the_smallest_instance_with_its_gpus(s3):
    one = prepare.prepare({"jobId": "job-6", "inputParameters": {}}, SETTINGS, s3)
    assert requirements(one) == {"GPU": 1, "VCPU": 4, "MEMORY": 16384 * 92 // 100}  # g6.xlarge: 4 vCPU, 16 GiB
    assert any("g6.xlarge" in notice and "15073 MiB" in notice for notice in one["notices"])
    two = prepare.prepare({"jobId": "job-6b", "inputParameters": {"computeConfig": {"gpusPerNode": 2}}}, SETTINGS, s3)
    # no 2-GPU type: half of the smallest 4-GPU one, g6.12xlarge (48 vCPU, 192 GiB)
    assert requirements(two) == {"GPU": 2, "VCPU": 24, "MEMORY": 192 * 1024 * 92 * 2 // 400}


def test_prepare_sizes_a_job_for_the_instance_type_it_names(s3):
    document = {"computeConfig": {"instanceType": "g6e.12xlarge", "gpusPerNode": 4}}
    prepared = prepare.prepare({"jobId": "job-6c", "inputParameters": document}, SETTINGS, s3)
    assert requirements(prepared) == {"GPU": 4, "VCPU": 48, "MEMORY": 384 * 1024 * 92 // 100}
    assert [r["Type"] for r in prepared["resourceRequirements"]] == ["GPU", "VCPU", "MEMORY"]
    assert all(isinstance(r["Value"], str) for r in prepared["resourceRequirements"])


def test_prepare_refuses_an_instance_type_the_stack_does_not_offer_naming_the_allowed_ones(s3):
    settings = dataclasses.replace(SETTINGS, instance_types=("g6.xlarge", "g6.12xlarge"))
    for instance_type in ("g6e.12xlarge", "p4d.24xlarge"):
        document = {"computeConfig": {"instanceType": instance_type}}
        with pytest.raises(prepare.ValidationError) as caught:
            prepare.prepare({"jobId": "job-6d", "inputParameters": document}, settings, s3)
        assert f"computeConfig.instanceType: {instance_type!r} is not offered" in str(caught.value)
        assert "allowed: g6.xlarge, g6.12xlarge" in str(caught.value)


def test_prepare_refuses_more_gpus_than_the_instances_have(s3):
    settings = dataclasses.replace(SETTINGS, instance_types=("g6.xlarge", "g6.12xlarge"))
    with pytest.raises(prepare.ValidationError, match=r"computeConfig.gpusPerNode: 8 GPUs per node.*largest offered instance has 4"):
        prepare.prepare({"jobId": "job-6e", "inputParameters": {"computeConfig": {"gpusPerNode": 8}}}, settings, s3)
    document = {"computeConfig": {"instanceType": "g6.xlarge", "gpusPerNode": 4}}
    with pytest.raises(prepare.ValidationError, match=r"computeConfig.gpusPerNode: 4 GPUs do not fit on g6.xlarge"):
        prepare.prepare({"jobId": "job-6f", "inputParameters": document}, settings, s3)


def test_prepare_sends_multi_node_jobs_to_the_placement_group_queue(s3):
    multi = prepare.prepare({"jobId": "job-6g", "inputParameters": {"computeConfig": {"numNodes": 2}}}, SETTINGS, s3)
    single = prepare.prepare({"jobId": "job-6h", "inputParameters": {}}, SETTINGS, s3)
    assert (multi["jobQueue"], multi["jobDefinition"]) == (SETTINGS.multi_node_job_queue, "multi")
    assert (single["jobQueue"], single["jobDefinition"]) == (SETTINGS.job_queue, "single")
    assert requirements(multi) == requirements(single)  # per node


def test_prepare_tells_a_missing_input_from_a_forbidden_one(s3):
    missing = f"s3://{BUCKET}/inputs/missing.whl"
    document = {"customEnvironmentS3Uri": missing}
    with pytest.raises(prepare.ValidationError) as caught:
        prepare.prepare({"jobId": "job-6i", "inputParameters": document}, SETTINGS, s3)
    assert f"customEnvironmentS3Uri: {missing} does not exist" in str(caught.value)
    assert "forbidden" not in str(caught.value)
    stub = Stubber(s3)
    stub.add_client_error("head_object", service_error_code="403", http_status_code=403)
    with stub, pytest.raises(prepare.ValidationError) as caught:
        prepare.prepare({"jobId": "job-6j", "inputParameters": document}, SETTINGS, s3)
    assert f"customEnvironmentS3Uri: {missing}: the pipeline may not read it (forbidden)" in str(caught.value)
    assert "does not exist" not in str(caught.value)


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


def test_batch_failure_hook_ignores_a_worker_node_but_reports_the_main_node():
    token = {"environment": [{"name": "WORKBENCH_TASK_TOKEN", "value": "tok-4"}], "exitCode": 1}
    worker = batch_failure(token)
    worker["detail"].update(jobId="abc#1", nodeDetails={"nodeIndex": 1, "isMainNode": False})
    client, stub = sfn_stub()
    with stub:  # no response queued: any call would raise
        assert batch_events.report_failure(worker, client).startswith("ignored: a worker node")
    main = batch_failure(token)
    main["detail"].update(jobId="abc#0", nodeDetails={"nodeIndex": 0, "isMainNode": True})
    stub.add_response("send_task_failure", {}, {"taskToken": "tok-4", "error": "BatchJobFailed", "cause": ANY})
    with stub:
        assert batch_events.report_failure(main, client) == "reported the failure to the job's execution"
    stub.assert_no_pending_responses()


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


def test_entry_never_logs_the_token(capsys, sfn):
    client, machine = sfn
    response = entry.start_job({"body": {"TaskToken": "SECRET-TOKEN", "inputParameters": "{}"}}, machine, client)
    assert response["statusCode"] == 200
    assert "SECRET-TOKEN" not in capsys.readouterr().out + response["body"]


def test_entry_without_a_vams_execution_field_starts_a_new_job_every_time(sfn):
    """A caller that is not VAMS (no ``outputS3AssetFilesPath``) gets a new uuid4 job id per invocation, as before."""
    import uuid

    client, machine = sfn
    event = {"body": {"TaskToken": "T", "inputParameters": "{}"}}
    jobs = [json.loads(entry.start_job(event, machine, client)["body"])["jobId"] for _ in range(2)]
    assert len(client.list_executions(stateMachineArn=machine)["executions"]) == 2
    assert jobs[0] != jobs[1] and all(uuid.UUID(job).version == 4 for job in jobs)


def test_prepare_bundle_runs_the_spec_code_with_the_standard_library_only(synthesized):
    """The deployed asset holds the handler and the workbench.spec package; it imports and validates without
    site-packages."""
    functions = synthesized.template["Resources"]
    (code,) = [r["Properties"]["Code"] for k, r in functions.items() if "PrepareFunction" in k and r["Type"] == "AWS::Lambda::Function"]
    bundle = synthesized.outdir / f"asset.{code['S3Key'].removesuffix('.zip')}"
    assert sorted(p.name for p in (bundle / "workbench").glob("*.py")) == ["__init__.py", "errors.py"]
    assert {"__init__.py", "document.py", "catalogue.py", "instance_types.py"} <= {
        p.name for p in (bundle / "workbench" / "spec").glob("*.py")
    }
    assert not list(bundle.rglob("__pycache__"))
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
    assert json.loads(done.stdout) == ["multi", 2, "workbench.spec.document"]


PARAMETERS = "/WorkbenchTest/jobs/job-8"


def test_prepare_names_the_token_parameters_and_gives_the_job_only_their_path(s3):
    settings = dataclasses.replace(SETTINGS, token_parameter_prefix="/WorkbenchTest/jobs/")
    prepared = prepare.prepare({"jobId": "job-8", "inputParameters": {}}, settings, s3)
    assert prepared["tokenParameters"] == {
        "start": f"{PARAMETERS}/start-token", "run": f"{PARAMETERS}/run-token", "caller": f"{PARAMETERS}/caller-token",
    }
    assert prepared["environment"]["WORKBENCH_TASK_TOKEN_PARAMETER"] == PARAMETERS
    assert set(prepared["environment"]) == set(prepare.PER_JOB_ENVIRONMENT)
    assert "WORKBENCH_TASK_TOKEN" not in prepared["environment"]


@pytest.fixture()
def ssm(monkeypatch):
    """An SSM client on moto's in-process Parameter Store (dummy credentials, no endpoint)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("ssm")


def keep(ssm, role: str, token: str) -> None:
    ssm.put_parameter(Name=f"{PARAMETERS}/{role}-token", Value=token, Type="SecureString", Overwrite=True)


def named_job() -> dict:
    return batch_failure({"environment": [{"name": "WORKBENCH_TASK_TOKEN_PARAMETER", "value": PARAMETERS}]})


def test_batch_failure_hook_fails_the_run_token_from_ssm_else_the_start_token(ssm):
    keep(ssm, "start", "start-tok")
    client, stub = sfn_stub()
    stub.add_response("send_task_failure", {}, {"taskToken": "start-tok", "error": "BatchJobFailed", "cause": ANY})
    with stub:
        assert batch_events.report_failure(named_job(), client, ssm) == "reported the failure to the job's execution"
    keep(ssm, "run", "run-tok")
    stub.add_response("send_task_failure", {}, {"taskToken": "run-tok", "error": "BatchJobFailed", "cause": ANY})
    with stub:
        assert batch_events.report_failure(named_job(), client, ssm) == "reported the failure to the job's execution"
    stub.assert_no_pending_responses()


def test_batch_failure_hook_reads_a_start_token_replaced_while_queued_again(ssm):
    keep(ssm, "start", "old-tok")
    client, stub = sfn_stub()
    stub.add_client_error("send_task_failure", service_error_code="TaskTimedOut",
                          expected_params={"taskToken": "old-tok", "error": "BatchJobFailed", "cause": ANY})
    stub.add_response("send_task_failure", {}, {"taskToken": "new-tok", "error": "BatchJobFailed", "cause": ANY})
    pauses = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:  # the state machine's queue loop renews the token a little later
            keep(ssm, "start", "new-tok")

    with stub:
        assert batch_events.report_failure(named_job(), client, ssm, pause) == "reported the failure to the job's execution"
    stub.assert_no_pending_responses()
    assert len(pauses) == 2


def test_batch_failure_hook_ignores_a_job_whose_parameters_are_gone_and_never_logs_tokens(ssm, monkeypatch, capsys):
    monkeypatch.setattr(batch_events, "REREAD_SECONDS", 0.0)
    assert batch_events.handler(named_job(), None) == {"outcome": "ignored: the job carries no task token"}
    keep(ssm, "start", "SECRET-START-TOKEN")
    outcome = batch_events.handler(named_job(), None)["outcome"]
    assert outcome in ("ignored: the job's task was already closed", "reported the failure to the job's execution")
    assert "SECRET-START-TOKEN" not in capsys.readouterr().out
