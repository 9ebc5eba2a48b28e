"""The ``capacity`` setting: the compute environments, the queues' order and the outputs of each kind of stack, the
retry strategy of host terminations, and the validators on a stack with spot capacity."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from infra_configs import ENABLED
from test_nag import ACKNOWLEDGED_RULES, report
from test_validators import CFN_LINT, CFNLINTRC, CHECKOV, run, tool
from workbench_infra.config import ConfigError, parse_config
from workbench_infra.synth import resources_of_type, synth

from workbench.spec.capacity import STACK_CAPACITIES

SPOT_STACKS = {"spot": {"maxAttempts": 2}, "spot-then-on-demand": {}}
"""The stacks with spot capacity synthesized here, with their other settings (the default stack is on-demand)."""


def config(**settings: Any) -> dict[str, Any]:
    document = copy.deepcopy(ENABLED)
    document["app"]["pipelines"]["useIsaacLabTraining"].update(settings)
    return document


@dataclass(frozen=True)
class Synthesized:
    template: dict[str, Any]
    outdir: Path


@pytest.fixture(scope="module")
def spot_stacks(tmp_path_factory) -> dict[str, Synthesized]:
    found = {}
    for capacity, settings in SPOT_STACKS.items():
        outdir = tmp_path_factory.mktemp(f"cdk-{capacity}")
        found[capacity] = Synthesized(synth(parse_config(config(capacity=capacity, **settings)), outdir)[1], outdir)
    return found


@pytest.fixture(scope="module")
def stacks(spot_stacks, synthesized) -> dict[str, dict[str, Any]]:
    """Every kind of stack's template, by capacity."""
    return {"on-demand": synthesized.template, **{k: v.template for k, v in spot_stacks.items()}}


def single_node_environments(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> ComputeResources of the compute environments without a placement group."""
    found = resources_of_type(template, "AWS::Batch::ComputeEnvironment")
    return {k: r["Properties"]["ComputeResources"] for k, r in found.items()
            if "PlacementGroup" not in r["Properties"]["ComputeResources"]}


def queue_order(template: dict[str, Any], queue_id: str) -> list[str]:
    """The compute environments' logical ids of a queue, in its order."""
    order = sorted(template["Resources"][queue_id]["Properties"]["ComputeEnvironmentOrder"], key=lambda o: o["Order"])
    return [o["ComputeEnvironment"]["Fn::GetAtt"][0] for o in order]


def output_queue(template: dict[str, Any], output: str) -> str:
    return template["Outputs"][output]["Value"]["Fn::GetAtt"][0]


def kinds(template: dict[str, Any], queue_id: str) -> list[str]:
    environments = single_node_environments(template)
    return ["spot" if environments[e]["Type"] == "SPOT" else "on-demand" for e in queue_order(template, queue_id)]


def test_an_on_demand_stack_is_unchanged_but_says_its_capacity(template):
    (resources,) = single_node_environments(template).values()
    assert (resources["Type"], resources["AllocationStrategy"]) == ("EC2", "BEST_FIT_PROGRESSIVE")
    assert template["Outputs"]["Capacity"]["Value"] == "on-demand"
    assert output_queue(template, "OnDemandJobQueueArn") == output_queue(template, "JobQueueArn")
    assert "SpotJobQueueArn" not in template["Outputs"]
    assert len(resources_of_type(template, "AWS::Batch::JobQueue")) == 2  # single-node and multi-node


def test_spot_environments_use_the_allocation_strategy_aws_recommends_for_interruptible_work(spot_stacks, template):
    (on_demand,) = single_node_environments(template).values()
    for capacity, synthesized in spot_stacks.items():
        environments = single_node_environments(synthesized.template).values()
        spot = [r for r in environments if r["Type"] == "SPOT"]
        assert len(spot) == 1 and spot[0]["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED", capacity
        assert spot[0]["InstanceTypes"] == on_demand["InstanceTypes"], capacity
        assert len(environments) == (2 if "on-demand" in capacity else 1), capacity
        assert synthesized.template["Outputs"]["Capacity"]["Value"] == capacity


def test_the_main_queue_tries_spot_first_and_each_kind_has_a_queue_of_its_own(stacks):
    expected = {"on-demand": ["on-demand"], "spot": ["spot"], "spot-then-on-demand": ["spot", "on-demand"]}
    for capacity, template in stacks.items():
        main = output_queue(template, "JobQueueArn")
        assert kinds(template, main) == expected[capacity], capacity
        for kind, output in (("on-demand", "OnDemandJobQueueArn"), ("spot", "SpotJobQueueArn")):
            if kind in expected[capacity]:
                assert kinds(template, output_queue(template, output)) == [kind], (capacity, output)
            else:
                assert output not in template["Outputs"], (capacity, output)


def test_multi_node_jobs_stay_on_demand_on_every_stack(stacks):
    for capacity, template in stacks.items():
        found = resources_of_type(template, "AWS::Batch::ComputeEnvironment").values()
        multi = [r["Properties"]["ComputeResources"] for r in found
                 if "PlacementGroup" in r["Properties"]["ComputeResources"]]
        assert [r["Type"] for r in multi] == ["EC2"], capacity


def test_the_prepare_lambda_and_the_failure_hook_know_every_queue(stacks):
    for capacity, template in stacks.items():
        outputs = ("JobQueueArn", "OnDemandJobQueueArn", "SpotJobQueueArn", "MultiNodeJobQueueArn")
        queues = {output_queue(template, o) for o in outputs if o in template["Outputs"]}
        assert queues == set(resources_of_type(template, "AWS::Batch::JobQueue")), capacity
        functions = resources_of_type(template, "AWS::Lambda::Function").values()
        variables = next(f["Properties"]["Environment"]["Variables"] for f in functions
                         if "CAPACITY" in f["Properties"].get("Environment", {}).get("Variables", {}))
        assert variables["CAPACITY"] == capacity
        for variable, output in (("ON_DEMAND_JOB_QUEUE", "OnDemandJobQueueArn"), ("SPOT_JOB_QUEUE", "SpotJobQueueArn")):
            assert (variables.get(variable) is not None) == (output in template["Outputs"]), (capacity, variable)
        (rule,) = resources_of_type(template, "AWS::Events::Rule").values()
        watched = {q["Fn::GetAtt"][0] for q in rule["Properties"]["EventPattern"]["detail"]["jobQueue"]}
        assert watched == queues, capacity


def test_host_terminations_are_retried_up_to_max_attempts_and_nothing_else(stacks):
    settings = {"on-demand": {}, **SPOT_STACKS}
    for capacity, template in stacks.items():
        attempts = settings[capacity].get("maxAttempts", 3)
        definitions = {d["Properties"]["Type"]: d["Properties"]
                       for d in resources_of_type(template, "AWS::Batch::JobDefinition").values()}
        strategy = definitions["container"]["RetryStrategy"]
        assert strategy == {"Attempts": attempts, "EvaluateOnExit": [{"Action": "RETRY", "OnStatusReason": "Host EC2*"},
                                                                     {"Action": "EXIT", "OnReason": "*"},
                                                                     {"Action": "EXIT", "OnExitCode": "*"}]}, capacity
        assert definitions["multinode"]["RetryStrategy"] == {"Attempts": 1}, capacity
        single = {e["Name"]: e["Value"] for e in definitions["container"]["ContainerProperties"]["Environment"]}
        (node_range,) = definitions["multinode"]["NodeProperties"]["NodeRangeProperties"]
        multi = {e["Name"]: e["Value"] for e in node_range["Container"]["Environment"]}
        assert (single["WORKBENCH_MAX_ATTEMPTS"], multi["WORKBENCH_MAX_ATTEMPTS"]) == (str(attempts), "1"), capacity


@pytest.mark.parametrize(("settings", "words"), [
    ({"capacity": "cheapest"}, ", ".join(STACK_CAPACITIES)),
    ({"capacity": 1}, "wrong type"),
    ({"maxAttempts": 0}, "from 1 to 10"),
    ({"maxAttempts": 11}, "from 1 to 10"),
])
def test_a_bad_capacity_or_attempt_count_is_refused_naming_what_is_allowed(settings, words):
    with pytest.raises(ConfigError) as refused:
        parse_config(config(**settings))
    assert words in str(refused.value) and next(iter(settings)) in str(refused.value)


def test_cdk_nag_cfn_lint_and_checkov_pass_on_the_stack_with_both_kinds(spot_stacks, tmp_path):
    synthesized = spot_stacks["spot-then-on-demand"]
    plugin = report(synthesized.outdir)
    assert plugin["conclusion"] == "success" and plugin["violations"] == []
    assert all(f["ruleName"].split("[")[0] in ACKNOWLEDGED_RULES for f in plugin["suppressedViolations"])
    path = tmp_path / "template.json"
    path.write_text(json.dumps(synthesized.template, indent=1))
    lint = run([tool(CFN_LINT), "--config-file", str(CFNLINTRC), "--format", "json", "--", path.name], tmp_path)
    assert not lint.returncode & 1, lint.stderr[-3000:]
    assert json.loads(lint.stdout) == []
    checkov = run([tool(CHECKOV), "--file", path.name, "--framework", "cloudformation", "--skip-download", "--compact",
                   "--output", "json"], tmp_path, BC_SKIP_MAPPING="TRUE", HOME=str(tmp_path))
    found = json.loads(checkov.stdout)
    found = found[0] if isinstance(found, list) else found
    assert [f"{c['check_id']} {c['resource']}" for c in found["results"]["failed_checks"]] == []
