"""Infra test fixtures: the CDK app is synthesized once per session per configuration (synthesis is slow)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from infra_configs import BUCKET, DISABLED, ENABLED, REGION, VARIANT
from moto import mock_aws


@dataclass(frozen=True)
class Synthesized:
    stack: Any
    template: dict[str, Any]
    outdir: Path

    def docker_image_asset(self) -> dict[str, Any]:
        """The one Docker image in the assembly's asset manifest (its ``source``: file, build args)."""
        manifest = json.loads((self.outdir / f"{self.stack.stack_name}.assets.json").read_text())
        (image,) = manifest["dockerImages"].values()
        return image["source"]


def _synth(document: dict[str, Any], outdir: Path) -> Synthesized:
    from workbench_infra.config import parse_config
    from workbench_infra.synth import synth

    stack, template = synth(parse_config(document), outdir)
    return Synthesized(stack, template, outdir)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The default pipeline (new VPC and bucket, VAMS registration, no warm instance, kit-less image)."""
    return _synth(ENABLED, tmp_path_factory.mktemp("cdk-enabled"))


@pytest.fixture(scope="session")
def template(synthesized: Synthesized) -> dict[str, Any]:
    return synthesized.template


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Warm instance, existing VPC and bucket, NGC image, no VAMS registration."""
    return _synth(VARIANT, tmp_path_factory.mktemp("cdk-variant"))


@pytest.fixture(scope="session")
def variant_template(variant: Synthesized) -> dict[str, Any]:
    return variant.template


@pytest.fixture(scope="session")
def disabled_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _synth(DISABLED, tmp_path_factory.mktemp("cdk-disabled")).template


@pytest.fixture(scope="session")
def definition(template: dict[str, Any]) -> dict[str, Any]:
    """The internal state machine's ASL (references left as placeholders)."""
    from workbench_infra.synth import state_machine_definition

    return state_machine_definition(template)


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch):
    """An S3 client on moto's in-process S3 holding the pipeline bucket (dummy credentials, no endpoint)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield client


@pytest.fixture()
def sfn(monkeypatch: pytest.MonkeyPatch):
    """``(client, state machine ARN)``: in-process moto Step Functions with a one-state machine (for the Lambdas
    that start executions; in-process moto does not run them)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("stepfunctions")
        machine = client.create_state_machine(
            name="workbench", definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        yield client, machine
