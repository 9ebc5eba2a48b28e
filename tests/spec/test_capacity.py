"""``computeConfig.capacity``: validated like every field, and the queue each job gets on each kind of stack."""

from __future__ import annotations

import pytest

from workbench.errors import SpecError
from workbench.spec.capacity import (
    JOB_CAPACITIES,
    MAIN_QUEUE,
    MULTI_NODE_QUEUE,
    ON_DEMAND_QUEUE,
    SPOT_QUEUE,
    STACK_CAPACITIES,
    CapacityUnavailable,
    placement,
)
from workbench.spec.document import parse_spec


def test_capacity_defaults_to_any_and_survives_a_round_trip():
    spec = parse_spec({})
    assert spec.compute["capacity"] == "any"
    assert parse_spec(parse_spec({"computeConfig": {"capacity": "spot"}}).to_dict()).compute["capacity"] == "spot"


@pytest.mark.parametrize("value", ["Spot", "on_demand", "", None, 1, ["spot"]])
def test_an_unknown_capacity_is_a_field_error_naming_the_allowed_values(value):
    with pytest.raises(SpecError) as refused:
        parse_spec({"computeConfig": {"capacity": value}})
    (error,) = refused.value.errors
    assert error.path == "computeConfig.capacity"
    assert all(repr(allowed) in error.message for allowed in JOB_CAPACITIES)


def test_a_capacity_error_is_listed_with_the_other_problems():
    with pytest.raises(SpecError) as refused:
        parse_spec({"trainingConfig": {"numEnvs": 0}, "computeConfig": {"capacity": "cheap"}})
    assert {e.path for e in refused.value.errors} == {"trainingConfig.numEnvs", "computeConfig.capacity"}


@pytest.mark.parametrize(("job", "stack", "queue", "uses"), [
    ("any", "on-demand", MAIN_QUEUE, "on-demand"),
    ("on-demand", "on-demand", MAIN_QUEUE, "on-demand"),
    ("any", "spot", MAIN_QUEUE, "spot"),
    ("spot", "spot", MAIN_QUEUE, "spot"),
    ("any", "spot-then-on-demand", MAIN_QUEUE, "spot first, else on-demand"),
    ("on-demand", "spot-then-on-demand", ON_DEMAND_QUEUE, "on-demand"),
    ("spot", "spot-then-on-demand", SPOT_QUEUE, "spot"),
])
def test_each_job_capacity_gets_the_queue_of_its_kind(job, stack, queue, uses):
    assert (placement(job, stack).queue, placement(job, stack).uses) == (queue, uses)


@pytest.mark.parametrize(("job", "stack"), [("on-demand", "spot"), ("spot", "on-demand")])
def test_a_kind_the_stack_does_not_offer_is_refused_with_what_to_change(job, stack):
    with pytest.raises(CapacityUnavailable) as refused:
        placement(job, stack)
    words = str(refused.value)
    assert repr(job) in words and repr(stack) in words and "spot-then-on-demand" in words


@pytest.mark.parametrize("stack", STACK_CAPACITIES)
def test_multi_node_jobs_run_on_demand_on_every_stack_and_cannot_ask_for_spot(stack):
    for job in ("any", "on-demand"):
        assert placement(job, stack, multi_node=True) == placement("any", "on-demand", multi_node=True)
        assert placement(job, stack, multi_node=True).queue == MULTI_NODE_QUEUE
    with pytest.raises(CapacityUnavailable, match="multi-node"):
        placement("spot", stack, multi_node=True)
