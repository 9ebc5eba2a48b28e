"""The cost estimate shows the on-demand and the spot price and says which capacity the job will use."""

from __future__ import annotations

import pytest

from workbench.backends.aws_costs import PRICES_PER_HOUR, SPOT_PRICE_FACTOR, estimate
from workbench.spec.capacity import placement
from workbench.spec.document import parse_spec

SPEC = parse_spec({"trainingConfig": {"task": "Isaac-Ant", "maxIterations": 1000}})


def test_both_prices_are_shown_and_the_on_demand_one_is_used_by_default():
    cost = estimate(SPEC)
    on_demand = PRICES_PER_HOUR[cost.instance_type]
    assert (cost.on_demand_per_hour, cost.price_per_hour) == (on_demand, on_demand)
    assert cost.spot_per_hour == pytest.approx(on_demand * SPOT_PRICE_FACTOR)
    words = cost.describe()
    assert f"${on_demand:.2f}/h" in words and f"~${cost.spot_per_hour:.2f}/h" in words
    assert "will use on-demand capacity" in words and "estimate" in words


@pytest.mark.parametrize(("job", "stack", "price"), [
    ("any", "spot", "spot"),
    ("spot", "spot-then-on-demand", "spot"),
    ("on-demand", "spot-then-on-demand", "on-demand"),
    ("any", "spot-then-on-demand", "on-demand"),
])
def test_the_job_is_priced_at_the_capacity_it_will_use(job, stack, price):
    """Spot first with an on-demand fallback is priced at on-demand: what it costs at most."""
    uses = placement(job, stack).uses
    cost = estimate(SPEC, uses=uses)
    expected = cost.spot_per_hour if price == "spot" else cost.on_demand_per_hour
    assert cost.price_per_hour == expected
    assert cost.usd == pytest.approx(cost.at(expected))
    assert cost.max_usd == pytest.approx(expected * 8)
    assert f"will use {uses} capacity" in cost.describe()


def test_spot_costs_the_spot_factor_of_on_demand_for_the_same_job():
    on_demand, spot = estimate(SPEC, 3600), estimate(SPEC, 3600, uses="spot")
    assert spot.usd == pytest.approx(on_demand.usd * SPOT_PRICE_FACTOR)
    assert spot.hours == on_demand.hours == 1
