"""EC2 capacity: what a job asks for (``computeConfig.capacity``) and what a stack offers (``capacity`` in
``infra/config.json``), and which of the stack's job queues a job goes to. Stdlib only: the prepare Lambda bundles it,
and the ``aws`` backend asks the same question before it submits, so a job the stack cannot serve fails at once.

A stack offers ``on-demand`` (the default), ``spot`` or ``spot-then-on-demand`` (its main queue tries the spot
compute environment first, the on-demand one after). Every stack keeps its main queue (``JobQueueArn``); the
``OnDemandJobQueueArn`` and ``SpotJobQueueArn`` outputs name the queues that hold one kind only, where the stack has
that kind. A job asks for ``any`` (the main queue: whatever the stack offers first), ``on-demand`` (never
interrupted by a reclaim) or ``spot``. Multi-node jobs always run on on-demand capacity: AWS Batch runs no
multi-node parallel job on Spot Instances.
"""

from __future__ import annotations

from dataclasses import dataclass

ANY = "any"
ON_DEMAND = "on-demand"
SPOT = "spot"
SPOT_THEN_ON_DEMAND = "spot-then-on-demand"
JOB_CAPACITIES = (ANY, ON_DEMAND, SPOT)
"""``computeConfig.capacity`` values; ``any`` is the default."""
STACK_CAPACITIES = (ON_DEMAND, SPOT, SPOT_THEN_ON_DEMAND)
"""``capacity`` values of the infra config; ``on-demand`` is the default (and what a stack without the output had)."""
DEFAULT_JOB_CAPACITY = ANY
DEFAULT_STACK_CAPACITY = ON_DEMAND
MAIN_QUEUE = "JobQueueArn"
ON_DEMAND_QUEUE = "OnDemandJobQueueArn"
SPOT_QUEUE = "SpotJobQueueArn"
MULTI_NODE_QUEUE = "MultiNodeJobQueueArn"
FIELD = "computeConfig.capacity"
"""The stack outputs naming the queues (the prepare Lambda gets the same ARNs in its environment)."""


class CapacityUnavailable(ValueError):
    """The stack offers no capacity of the kind the job asks for; the message (about :data:`FIELD`) says what to
    change."""


@dataclass(frozen=True)
class Placement:
    """Where a job runs: the stack output naming its queue and the capacity it will use, in words."""

    queue: str
    uses: str


def stack_kinds(stack_capacity: str) -> tuple[str, ...]:
    """The kinds of single-node capacity a stack has, in its main queue's order."""
    return {ON_DEMAND: (ON_DEMAND,), SPOT: (SPOT,), SPOT_THEN_ON_DEMAND: (SPOT, ON_DEMAND)}[stack_capacity]


def placement(job_capacity: str, stack_capacity: str, multi_node: bool = False) -> Placement:
    """The queue (a stack output name) for a job asking ``job_capacity`` on a stack offering ``stack_capacity``.

    Raises :class:`CapacityUnavailable` with the reason where the stack cannot serve it, before anything queues.
    """
    if multi_node:
        if job_capacity == SPOT:
            raise CapacityUnavailable(
                "'spot' is not available to multi-node jobs (AWS Batch runs multi-node "
                "parallel jobs on on-demand instances only); ask for 'any' or 'on-demand', or use one node"
            )
        return Placement(MULTI_NODE_QUEUE, ON_DEMAND)
    kinds = stack_kinds(stack_capacity)
    if job_capacity == ANY:
        return Placement(MAIN_QUEUE, " first, else ".join(kinds))
    if job_capacity not in kinds:
        raise CapacityUnavailable(
            f"the job asks for {job_capacity!r} capacity but this stack offers "
            f"{stack_capacity!r} only (capacity in infra/config.json); ask for 'any' or {kinds[0]!r}, or deploy the "
            f"stack with capacity {SPOT_THEN_ON_DEMAND!r}"
        )
    own_queue = {ON_DEMAND: ON_DEMAND_QUEUE, SPOT: SPOT_QUEUE}[job_capacity]
    return Placement(MAIN_QUEUE if kinds == (job_capacity,) else own_queue, job_capacity)
