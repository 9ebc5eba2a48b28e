"""The submit form's capacity choice: on the aws backend only, with both estimated prices and the one the job uses."""

from __future__ import annotations

from html import unescape

from workbench.backends.aws_costs import estimate
from workbench.widgets import SubmitForm


def test_the_capacity_row_shows_on_the_aws_backend_only():
    form = SubmitForm(backend="local")
    assert form.rows["capacity"].layout.display == "none" and form.cost.value == ""
    assert form.spec.compute["capacity"] == "any"
    form.backend.value = "aws"
    assert form.rows["capacity"].layout.display == ""
    form.capacity.value = "spot"
    assert form.spec.compute["capacity"] == "spot"


def test_both_prices_are_shown_and_the_one_the_job_uses():
    form = SubmitForm(backend="aws", max_iterations=500, stack_capacity="spot-then-on-demand")
    cost = estimate(form.spec)
    assert f"on-demand ${cost.at(cost.on_demand_per_hour):.2f}" in form.cost.value
    assert f"spot ~${cost.at(cost.spot_per_hour):.2f}" in form.cost.value
    assert "uses spot first, else on-demand" in form.cost.value
    form.capacity.value = "on-demand"
    assert "uses on-demand" in form.cost.value and not form.submit_button.disabled


def test_a_capacity_the_stack_lacks_is_shown_next_to_the_field_and_blocks_submit():
    form = SubmitForm(backend="aws", stack_capacity="spot")
    form.capacity.value = "on-demand"
    shown = unescape(form.errors["capacity"].value)
    assert "'on-demand'" in shown and "offers 'spot'" in shown
    assert form.spec is None and form.submit_button.disabled
    form.capacity.value = "any"
    assert form.errors["capacity"].value == "" and "uses spot" in form.cost.value
