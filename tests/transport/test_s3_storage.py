"""S3 storage against moto (in-process): output upload under the job prefix, input download, typed errors."""

from __future__ import annotations

import sys

import pytest

from workbench.errors import RunnerError
from workbench.transport.storage import fetch_input, open_storage

moto = pytest.importorskip("moto")


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with moto.mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-west-2")
        client.create_bucket(Bucket="wb-test", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield client


def test_upload_keeps_the_layout_under_the_job_prefix(s3, tmp_path):
    layout = tmp_path / "job"
    (layout / "checkpoints").mkdir(parents=True)
    (layout / "checkpoints" / "model_2.pt").write_bytes(b"weights")
    (layout / "metrics.csv").write_text("step,reward\n1,0.5\n")
    (layout / "videos").mkdir()
    (layout / "videos" / "episode-0.mp4").write_bytes(b"\x00\x00")
    storage = open_storage("s3://wb-test/outputs/job-1/")
    assert storage.uri == "s3://wb-test/outputs/job-1"
    storage.upload(layout)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="wb-test")["Contents"])
    assert keys == ["outputs/job-1/checkpoints/model_2.pt", "outputs/job-1/metrics.csv", "outputs/job-1/videos/episode-0.mp4"]
    assert s3.head_object(Bucket="wb-test", Key="outputs/job-1/videos/episode-0.mp4")["ContentType"] == "video/mp4"
    assert s3.get_object(Bucket="wb-test", Key="outputs/job-1/checkpoints/model_2.pt")["Body"].read() == b"weights"


def test_fetch_input_downloads_an_object(s3, tmp_path):
    s3.put_object(Bucket="wb-test", Key="staging/abc/policy.pt", Body=b"policy")
    path = fetch_input("s3://wb-test/staging/abc/policy.pt", tmp_path)
    assert path == tmp_path / "policy.pt" and path.read_bytes() == b"policy"


def test_a_prefix_downloads_as_a_tree(s3, tmp_path):
    s3.put_object(Bucket="wb-test", Key="outputs/j/checkpoints/model_1.pt", Body=b"1")
    s3.put_object(Bucket="wb-test", Key="outputs/j/checkpoints/model_10.pt", Body=b"10")
    path = fetch_input("s3://wb-test/outputs/j/checkpoints/", tmp_path)
    assert sorted(p.name for p in path.iterdir()) == ["model_1.pt", "model_10.pt"]


def test_a_missing_input_is_a_runner_error_naming_it(s3, tmp_path):
    with pytest.raises(RunnerError, match="input not found: s3://wb-test/nope.pt"):
        fetch_input("s3://wb-test/nope.pt", tmp_path)


def test_a_missing_bucket_fails_the_upload_with_the_reason(s3, tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(RunnerError, match="could not upload a.txt to s3://missing-bucket/p"):
        open_storage("s3://missing-bucket/p").upload(tmp_path)


def test_importing_the_storage_registry_does_not_import_boto3():
    import subprocess

    code = "import sys, workbench.transport.storage, workbench.transport.s3; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
