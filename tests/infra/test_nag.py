"""cdk-nag AwsSolutions checks: zero unacknowledged findings, and every acknowledgment has its reason."""

from __future__ import annotations

import json

import pytest

ACKNOWLEDGED_RULES = {"AwsSolutions-IAM4", "AwsSolutions-IAM5", "AwsSolutions-S1"}


def report(outdir) -> dict:
    (plugin,) = json.loads((outdir / "validation-report.json").read_text())["pluginReports"]
    assert plugin["pluginName"] == "AwsSolutions"
    return plugin


@pytest.mark.parametrize("which", ["synthesized", "variant"])
def test_aws_solutions_checks_pass_with_reasons_for_every_acknowledgment(which, request):
    plugin = report(request.getfixturevalue(which).outdir)
    assert plugin["conclusion"] == "success"
    assert plugin["violations"] == []
    for finding in plugin["suppressedViolations"]:
        assert len(finding["reason"]) > 30, finding["ruleName"]
        assert finding["ruleName"].split("[")[0] in ACKNOWLEDGED_RULES, finding["ruleName"]


def test_only_the_pipelines_own_prefixes_carry_object_wildcards(synthesized):
    wildcards = {
        f["ruleName"]
        for f in report(synthesized.outdir)["suppressedViolations"]
        if f["ruleName"].startswith("AwsSolutions-IAM5[Resource::<") and "Bucket" in f["ruleName"]
    }
    assert wildcards and all(w.endswith(("/inputs/*]", "/outputs/*]")) for w in wildcards)
