"""Deploy the synthesized stack's essentials into moto: what the ``aws`` backend and the state machine use.

Created from the template (values rendered, CloudFormation property names converted to the API's with botocore's
service model): the bucket, the job log group, the job queue, both job definitions, the validate-and-prepare
Lambda (its real code asset; ``moto_compat`` runs it without Docker) and the state machine with the synthesized
definition. Plus a CloudFormation stack holding the template's outputs, so the backend reads its configuration
through ``describe_stacks`` as it does on AWS.

Not created: VPC, EFS (the harness maps the job definitions' EFS volume to a local directory), the ECR image
(jobs run the runner from this checkout), IAM policies (moto does not enforce them), the compute environment's
instances (the compute environment is UNMANAGED: moto_compat runs jobs itself), the VAMS entry Lambda and the
Batch failure EventBridge rule (moto's Batch emits no events).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
ACCOUNT = "123456789012"
STACK = "WorkbenchTest"
BUCKET = "workbench-test-pipeline"
CONFIG = {
    "stackName": STACK,
    "app": {"pipelines": {"useIsaacLabTraining": {
        "enabled": True, "acceptNvidiaEula": True, "autoRegisterWithVAMS": False, "imageFlavour": "kitless",
    }}},
}
SOURCES = ("infra/workbench_infra", "infra/lambdas", "workbench/spec/document.py", "workbench/spec/catalogue.py")


@dataclass
class Pipeline:
    """The deployed essentials: names and ARNs, the template and the rendered state machine definition."""

    template: dict[str, Any]
    refs: dict[str, str]
    definition: dict[str, Any]
    outputs: dict[str, str]
    role_arn: str
    region: str

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["StateMachineArn"]

    def variant(self, name: str, definition: dict[str, Any]) -> str:
        """Create another state machine from a changed definition (e.g. a scaled-down heartbeat); its ARN."""
        import boto3

        return boto3.client("stepfunctions").create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=self.role_arn
        )["stateMachineArn"]


def with_export_interval(definition: dict[str, Any], seconds: int) -> dict[str, Any]:
    """A copy of the pipeline's definition whose single-node runner exports every ``seconds`` (not every 15 s), so a
    tiny training has checkpoints on EFS before a reclaim."""
    changed = copy.deepcopy(definition)
    for state in changed["States"].values():
        if "ContainerOverrides" in state.get("Parameters", {}):  # the single-node submission
            environment = state["Parameters"]["ContainerOverrides"]["Environment"]
            environment.append({"Name": "WORKBENCH_EXPORT_INTERVAL", "Value": str(seconds)})
    return changed


def synthesized(cache_root: Path) -> tuple[dict[str, Any], Path]:
    """The template and its cdk.out directory, synthesized once per change of the infra or spec sources."""
    digest = hashlib.sha256()
    for source in SOURCES:
        for path in sorted((REPO / source).rglob("*") if (REPO / source).is_dir() else [REPO / source]):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    digest.update(json.dumps(CONFIG, sort_keys=True).encode())
    outdir = cache_root / f"aws-template-{digest.hexdigest()[:16]}"
    template_path = outdir / f"{STACK}.template.json"
    if not template_path.exists():
        _infra()
        from workbench_infra.config import parse_config

        staging = outdir.with_name(outdir.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        _infra().synth(parse_config(CONFIG), staging)
        shutil.rmtree(outdir, ignore_errors=True)
        staging.rename(outdir)
    return json.loads(template_path.read_text()), outdir


def deploy(template: dict[str, Any], cdk_out: Path, region: str) -> Pipeline:
    """Create the essentials in moto (boto3 already points at it) and return what was created."""
    import boto3

    definition_with, resources_of_type = _infra().definition_with, _infra().resources_of_type
    iam = boto3.client("iam")
    role_arn = iam.create_role(RoleName="workbench-harness", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    refs: dict[str, str] = {
        "AWS::Region": region, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": STACK,
    }
    (bucket_id,) = resources_of_type(template, "AWS::S3::Bucket")
    boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
    refs[bucket_id] = BUCKET
    for logical in ("AWS::IAM::Role",):
        for role_id in resources_of_type(template, logical):
            refs[f"{role_id}.Arn"] = role_arn
    for fs_id in resources_of_type(template, "AWS::EFS::FileSystem"):
        refs[fs_id] = "fs-0123456789abcdef0"
    for ap_id in resources_of_type(template, "AWS::EFS::AccessPoint"):
        refs[ap_id] = "fsap-0123456789abcdef0"

    logs = boto3.client("logs")
    job_log_group = template["Outputs"]["JobLogGroupName"]["Value"]["Ref"]
    for group_id, group in resources_of_type(template, "AWS::Logs::LogGroup").items():
        name = group["Properties"].get("LogGroupName") or f"/harness/{group_id}"
        refs[group_id] = render(name, refs)
    logs.create_log_group(logGroupName=refs[job_log_group])

    batch = boto3.client("batch")
    environment = batch.create_compute_environment(
        computeEnvironmentName="workbench-harness", type="UNMANAGED", state="ENABLED", serviceRole=role_arn
    )["computeEnvironmentArn"]
    for number, (queue_id, queue) in enumerate(resources_of_type(template, "AWS::Batch::JobQueue").items()):
        queue_arn = batch.create_job_queue(
            jobQueueName="workbench-test-queue" + (f"-{number}" if number else ""), state="ENABLED", priority=queue["Properties"].get("Priority", 1),
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )["jobQueueArn"]
        refs[queue_id] = refs[f"{queue_id}.JobQueueArn"] = queue_arn
    shape = batch.meta.service_model.operation_model("RegisterJobDefinition").input_shape
    for definition_id, resource in resources_of_type(template, "AWS::Batch::JobDefinition").items():
        params = to_api(render_tree(resource["Properties"], refs), shape)
        params.setdefault("jobDefinitionName", definition_id)
        refs[definition_id] = batch.register_job_definition(**params)["jobDefinitionArn"]

    lam = boto3.client("lambda")
    prepare_id = _prepare_function(template)
    function = template["Resources"][prepare_id]["Properties"]
    asset = cdk_out / f"asset.{function['Code']['S3Key'].removesuffix('.zip')}"
    created = lam.create_function(
        FunctionName="workbench-prepare", Runtime=function["Runtime"], Role=role_arn, Handler=function["Handler"],
        Code={"ZipFile": zip_dir(asset)}, Timeout=function.get("Timeout", 60),
        Environment={"Variables": render_tree(function["Environment"]["Variables"], refs)},
    )
    refs[prepare_id] = refs[f"{prepare_id}.Arn"] = created["FunctionArn"]

    (machine_id,) = resources_of_type(template, "AWS::StepFunctions::StateMachine")
    definition = definition_with(template, {key: value for key, value in refs.items() if "." not in key})
    machine_arn = boto3.client("stepfunctions").create_state_machine(
        name=f"{STACK}-pipeline", definition=json.dumps(definition), roleArn=role_arn
    )["stateMachineArn"]
    refs[machine_id] = machine_arn

    outputs = {key: render(value["Value"], refs) for key, value in template["Outputs"].items()}
    stack_template = {
        "Resources": {"Marker": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/harness/stack"}}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(stack_template))
    return Pipeline(template=template, refs=refs, definition=definition, outputs=outputs, role_arn=role_arn, region=region)


def container_properties(template: dict[str, Any]) -> dict[str, Any]:
    """The single-node job definition's ``ContainerProperties`` (what Batch runs the container with)."""
    definitions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Batch::JobDefinition"]
    return next(d["Properties"]["ContainerProperties"] for d in definitions if "ContainerProperties" in d["Properties"])


def _infra() -> Any:
    """``workbench_infra.synth`` (infra/ is not a package of the repository root)."""
    if str(INFRA) not in sys.path:
        sys.path.insert(0, str(INFRA))
    from workbench_infra import synth

    return synth


def _prepare_function(template: dict[str, Any]) -> str:
    """The logical id of the Lambda the state machine's first task invokes."""
    resources_of_type = _infra().resources_of_type
    machine = next(iter(resources_of_type(template, "AWS::StepFunctions::StateMachine").values()))
    text = json.dumps(machine["Properties"]["DefinitionString"])
    functions = [fid for fid in resources_of_type(template, "AWS::Lambda::Function") if fid in text]
    if len(functions) != 1:
        raise RuntimeError(f"expected the state machine to invoke one Lambda, found {functions}")
    return functions[0]


def render(value: Any, refs: dict[str, str]) -> Any:
    """A CloudFormation value with Ref, Fn::GetAtt, Fn::Sub and Fn::Join resolved from ``refs``."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    (function, argument), = value.items()
    if function == "Ref":
        return refs.get(argument, f"harness-{argument}")
    if function == "Fn::GetAtt":
        logical, attribute = argument
        return refs.get(f"{logical}.{attribute}") or refs.get(logical, f"harness-{logical}-{attribute}")
    if function == "Fn::Join":
        separator, parts = argument
        return separator.join(str(render(part, refs)) for part in parts)
    if function == "Fn::Sub" and isinstance(argument, str):
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(render(_sub_ref(m.group(1)), refs)), argument)
    return value


def render_tree(value: Any, refs: dict[str, str]) -> Any:
    value = render(value, refs)
    if isinstance(value, dict):
        return {key: render_tree(item, refs) for key, item in value.items()}
    if isinstance(value, list):
        return [render_tree(item, refs) for item in value]
    return value


def to_api(value: Any, shape: Any) -> Any:
    """CloudFormation properties to API parameters: member names matched case-insensitively, by the shape."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = {name.lower(): (name, member) for name, member in shape.members.items()}
        return {members[k.lower()][0]: to_api(v, members[k.lower()][1]) for k, v in value.items() if k.lower() in members}
    if kind == "list" and isinstance(value, list):
        return [to_api(item, shape.member) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {k: to_api(v, shape.value) for k, v in value.items()}
    if kind in ("integer", "long"):
        return int(value)
    if kind == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    if kind == "string" and not isinstance(value, str):
        return json.dumps(value) if isinstance(value, (dict, list)) else str(value).lower() if isinstance(value, bool) else str(value)
    return value


def zip_dir(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def _sub_ref(name: str) -> dict[str, Any]:
    if "." in name and not name.startswith("AWS::"):
        logical, attribute = name.split(".", 1)
        return {"Fn::GetAtt": [logical, attribute]}
    return {"Ref": name}
