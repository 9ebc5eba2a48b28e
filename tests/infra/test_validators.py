"""Validators nobody here wrote, run on what we synthesize: cfn-lint and checkov on the CloudFormation template,
asl-validator on the state machine's definition, for the default pipeline and the variant configuration.

cfn-lint and checkov live in ``.venv/validators`` (pinned in ``infra/requirements-validators.txt``),
asl-validator in ``infra/node_modules`` (pinned in ``infra/package.json``); ``scripts/bootstrap.sh --test``
(and so ``make test``) installs both. A checkov check that fails is either fixed in the CDK code or acknowledged,
with its reason, in ``infra/workbench_infra/checkov.py``; a cfn-lint rule ignored for the whole template is in
``infra/.cfnlintrc`` with its reason.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from infra_configs import INFRA, REGION, REPO

VALIDATORS = REPO / ".venv" / "validators" / "bin"
CFN_LINT = VALIDATORS / "cfn-lint"
CHECKOV = VALIDATORS / "checkov"
ASL_VALIDATOR = INFRA / "node_modules" / ".bin" / "asl-validator"
CFNLINTRC = INFRA / ".cfnlintrc"
ACCOUNT = "123456789012"
CONFIGS = ["synthesized", "variant"]


def tool(path: Path) -> str:
    if not path.exists():
        pytest.fail(f"{path} is not installed: run scripts/bootstrap.sh --test (make test does)")
    return str(path)


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")} | env
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module", params=CONFIGS)
def synthesized_file(request, tmp_path_factory) -> tuple[dict[str, Any], Path]:
    """The template of one configuration, and that template written to a file of its own."""
    template = request.getfixturevalue(request.param).template
    path = tmp_path_factory.mktemp(f"validators-{request.param}") / "template.json"
    path.write_text(json.dumps(template, indent=1))
    return template, path


def test_cfn_lint_finds_nothing(synthesized_file):
    _, path = synthesized_file
    done = run([tool(CFN_LINT), "--config-file", str(CFNLINTRC), "--format", "json", "--", path.name], path.parent)
    assert not done.returncode & 1, done.stderr[-3000:]  # exit code bit 1: cfn-lint itself failed
    findings = [
        f"{m['Rule']['Id']} {'/'.join(map(str, m['Location']['Path']))}: {m['Message']}"
        for m in json.loads(done.stdout)
    ]
    assert findings == [], "cfn-lint:\n" + "\n".join(findings)


def test_checkov_fails_no_check_that_is_not_acknowledged_with_a_reason(synthesized_file):
    _, path = synthesized_file
    done = run(
        [tool(CHECKOV), "--file", path.name, "--framework", "cloudformation", "--skip-download", "--compact"]
        + ["--output", "json"],
        path.parent,
        BC_SKIP_MAPPING="TRUE",
        HOME=str(path.parent),
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    if isinstance(report, list):  # one report per framework
        (report,) = report
    summary, results = report["summary"], report["results"]
    assert summary["parsing_errors"] == 0 and summary["resource_count"] > 10, summary
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]
    assert failed == [], (
        "checkov checks failing, neither fixed nor acknowledged in infra/workbench_infra/checkov.py:\n"
        + "\n".join(failed)
    )
    for check in results["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 40, f"{check['check_id']} {check['resource']}: no reason given"


@pytest.mark.parametrize("which", CONFIGS)
def test_every_checkov_acknowledgment_is_written_to_its_resource(which, request):
    from workbench_infra.checkov import acknowledgments

    synthesized = request.getfixturevalue(which)
    stack = synthesized.stack
    expected = {
        stack.get_logical_id(construct.node.default_child): sorted(check for check, _ in checks)
        for construct, checks in acknowledgments(stack, stack.pipeline).items()
    }
    written = {
        logical_id: sorted(skip["id"] for skip in resource["Metadata"]["checkov"]["skip"])
        for logical_id, resource in synthesized.template["Resources"].items()
        if "checkov" in resource.get("Metadata", {})
    }
    assert written == expected


def arn_shaped_refs(template: dict[str, Any]) -> dict[str, str]:
    """A plausible value for every reference in the definition (asl-validator checks that a Resource is an ARN)."""
    refs = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
    for logical_id, resource in template["Resources"].items():
        parts = resource["Type"].lower().split("::")  # AWS::Service::Kind, or Custom::Name
        if resource["Type"] == "AWS::Lambda::Function":
            refs[logical_id] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
        else:
            refs[logical_id] = f"arn:aws:{parts[1]}:{REGION}:{ACCOUNT}:{parts[-1]}/{logical_id}"
    return refs


def test_asl_validator_accepts_the_state_machine_definition(synthesized_file):
    from workbench_infra.synth import definition_with

    template, path = synthesized_file
    definition = path.parent / "definition.asl.json"
    definition.write_text(json.dumps(definition_with(template, arn_shaped_refs(template)), indent=1))
    done = run([tool(ASL_VALIDATOR), "--json-path", definition.name], path.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_bucket_versions_expire(template):
    """The fix for checkov's CKV_AWS_21: a versioned bucket whose replaced or deleted objects do not pile up."""
    from workbench_infra.storage import NONCURRENT_VERSION_DAYS

    (bucket,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::S3::Bucket"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": NONCURRENT_VERSION_DAYS}
    assert rule["ExpiredObjectDeleteMarker"] is True and rule["Status"] == "Enabled"
