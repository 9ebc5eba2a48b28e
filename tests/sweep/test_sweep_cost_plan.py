"""A sweep with a cost budget on a backend that estimates costs (aws) is refused before its first trial when its
trials would cost more than the budget at their estimate; no AWS call is made to decide it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.errors import BudgetExceededError
from workbench.sweep import Budget, Choice, Sweep

BASE = {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 4096, "maxIterations": 1500}}
OUTPUTS = {"StateMachineArn": "arn:aws:states:us-west-2:123456789012:stateMachine:workbench",
           "BucketName": "workbench-bucket", "JobLogGroupName": "/workbench/jobs", "JobQueueArn": "workbench-queue"}


def _sweep(tmp_path: Path, budget: Budget) -> Sweep:
    """A sweep on the aws backend configured from a file of stack outputs (read without calling AWS)."""
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(OUTPUTS))
    return Sweep("cost-plan", BASE, {"seed": Choice([1, 2, 3, 4])}, strategy="grid", budget=budget,
                 backend_name="aws", backend_options={"config_file": str(outputs)}, root=tmp_path / "sweep")


def test_a_plan_over_the_cost_budget_is_refused_before_any_trial(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, Budget(max_trials=4, max_cost=0.25))
    per_trial = sweep.backend.estimate(sweep.spec_for({"seed": 1})).usd
    assert 4 * per_trial > 0.25
    with pytest.raises(BudgetExceededError) as refused:
        sweep.run()
    assert refused.value.estimated_usd == pytest.approx(4 * per_trial)
    assert "4 trial(s) left" in str(refused.value) and "raise max_cost" in str(refused.value)
    assert not (tmp_path / "sweep" / "journal.json").exists() and not (tmp_path / "sweep" / "study.db").exists()


def test_a_plan_within_the_budget_is_not_refused(tmp_path: Path) -> None:
    frame = _sweep(tmp_path, Budget(max_trials=0, max_cost=0.25)).run()
    assert frame.empty
