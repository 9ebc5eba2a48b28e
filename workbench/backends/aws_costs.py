"""Cost of AWS jobs: an estimate before submission and the actual cost after (stdlib only).

Prices are on-demand Linux prices in USD per hour for us-east-1 (approximate, from the public EC2 price list;
other regions differ, and storage, data transfer and NAT gateway hours are not counted). Spot prices move with
supply and demand by region, zone and hour; the estimate takes them as :data:`SPOT_PRICE_FACTOR` of on-demand.
Every estimate shows both prices and says which capacity the job will use (``workbench.spec.capacity``). Every
figure here is an **estimate**; the AWS bill is the truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workbench.spec.capacity import ON_DEMAND, SPOT
from workbench.spec.document import JobSpec

PRICES_PER_HOUR: dict[str, float] = {
    "g6.xlarge": 0.8048, "g6.2xlarge": 0.9776, "g6.4xlarge": 1.3232, "g6.8xlarge": 2.0144,
    "g6.12xlarge": 4.6016, "g6.16xlarge": 3.3968, "g6.24xlarge": 6.6752, "g6.48xlarge": 13.3504,
    "g6e.xlarge": 1.861, "g6e.2xlarge": 2.2421, "g6e.4xlarge": 3.0042, "g6e.8xlarge": 4.5286,
    "g6e.12xlarge": 10.4926, "g6e.16xlarge": 7.5772, "g6e.24xlarge": 15.0656, "g6e.48xlarge": 30.1312,
    "g5.xlarge": 1.006, "g5.2xlarge": 1.212, "g5.4xlarge": 1.624, "g5.8xlarge": 2.448,
    "g5.12xlarge": 5.672, "g5.16xlarge": 4.096, "g5.24xlarge": 8.144, "g5.48xlarge": 16.288,
}
GPUS: dict[str, int] = {
    name: 8 if name.endswith(".48xlarge") else 4 if name.endswith((".12xlarge", ".24xlarge")) else 1
    for name in PRICES_PER_HOUR
}
DEFAULT_INSTANCE = {1: "g6.2xlarge", 2: "g6.12xlarge", 4: "g6.12xlarge", 8: "g6.48xlarge"}
"""What Batch's BEST_FIT_PROGRESSIVE picks for the job definition (4 vCPU, 15 GB) per GPU count, roughly."""
STARTUP_SECONDS = 600.0
"""Instance launch, image pull and asset download before the first iteration."""
SECONDS_PER_ITERATION = 0.5
"""Per training iteration at 4096 environments on one GPU (Cartpole-class tasks run faster, humanoids slower)."""
SECONDS_PER_STEP_BATCH = 0.01
"""Per evaluation step of all environments at once."""
TIMEOUT_SECONDS = {"train": 28800, "evaluate": 7200}
SPOT_PRICE_FACTOR = 0.4
"""Spot as a fraction of the on-demand price: an estimate (G-instance spot prices are often 30-50% of on-demand)."""


@dataclass(frozen=True)
class CostEstimate:
    """An estimated cost: ``usd`` for the expected duration, ``max_usd`` if the job runs to its timeout, both at
    ``price_per_hour``, the price of the capacity the job ``uses`` (on-demand's where it may fall back to it)."""

    instance_type: str
    nodes: int
    hours: float
    usd: float
    max_usd: float
    price_per_hour: float
    on_demand_per_hour: float
    spot_per_hour: float
    uses: str = ON_DEMAND

    def at(self, price_per_hour: float) -> float:
        """The expected cost at another hourly price."""
        return price_per_hour * self.nodes * self.hours

    def describe(self) -> str:
        return (
            f"estimated ${self.usd:.2f} ({self.nodes} x {self.instance_type} at ${self.price_per_hour:.2f}/h for "
            f"~{self.hours * 60:.0f} min; at most ${self.max_usd:.2f} if it runs to its timeout). On-demand "
            f"${self.at(self.on_demand_per_hour):.2f} (${self.on_demand_per_hour:.2f}/h), spot about "
            f"${self.at(self.spot_per_hour):.2f} (~${self.spot_per_hour:.2f}/h, taken as {SPOT_PRICE_FACTOR:.0%} of "
            f"on-demand). The job will use {self.uses} capacity. us-east-1 prices; an estimate, not a bill."
        )


def instance_for(spec: JobSpec) -> str:
    """The instance type the estimate assumes: ``computeConfig.instanceType`` if known, else by GPU count."""
    wanted = spec.compute.get("instanceType")
    if wanted in PRICES_PER_HOUR:
        return wanted
    gpus = int(spec.compute.get("gpusPerNode") or 1)
    return DEFAULT_INSTANCE.get(gpus) or min((n for n in PRICES_PER_HOUR if GPUS[n] >= gpus), key=PRICES_PER_HOUR.get)


def expected_seconds(spec: JobSpec) -> float:
    """A rough duration from the spec: startup plus iterations (training) or environment steps (evaluation)."""
    training = spec.training
    scale = max(1.0, training["numEnvs"] / 4096)
    if spec.mode == "train":
        work = training["maxIterations"] * SECONDS_PER_ITERATION * scale / max(1, spec.num_nodes * spec.compute["gpusPerNode"])
    else:
        batches = training["numEpisodes"] * training["stepsPerEpisode"] / max(1, training["numEnvs"])
        work = max(1.0, batches) * SECONDS_PER_STEP_BATCH * max(1.0, training["numEnvs"] / 1024)
    return min(STARTUP_SECONDS + work, TIMEOUT_SECONDS[spec.mode])


def estimate(spec: JobSpec, expected_duration_s: float | None = None,
             prices: Mapping[str, float] = PRICES_PER_HOUR, uses: str = ON_DEMAND) -> CostEstimate:
    """The estimated cost of running ``spec`` (``expected_duration_s`` overrides the rough duration) on the capacity
    it ``uses`` (a :class:`workbench.spec.capacity.Placement`'s words: ``on-demand``, ``spot``, ``spot first, else
    on-demand``); only a job on spot alone is priced at spot."""
    instance = instance_for(spec)
    on_demand = prices[instance]
    spot = on_demand * SPOT_PRICE_FACTOR
    price = spot if uses == SPOT else on_demand
    seconds = expected_duration_s if expected_duration_s is not None else expected_seconds(spec)
    nodes = spec.num_nodes
    return CostEstimate(
        instance_type=instance, nodes=nodes, hours=seconds / 3600, usd=price * nodes * seconds / 3600,
        max_usd=price * nodes * TIMEOUT_SECONDS[spec.mode] / 3600, price_per_hour=price,
        on_demand_per_hour=on_demand, spot_per_hour=spot, uses=uses,
    )


def actual_cost(instance_type: str, nodes: int, started_ms: int | None, stopped_ms: int | None, now_ms: int,
                prices: Mapping[str, float] = PRICES_PER_HOUR) -> float | None:
    """Cost of a Batch job from its instance type and run time (so far, while it runs); None before it starts."""
    if not started_ms or instance_type not in prices:
        return None
    end = stopped_ms or now_ms
    return prices[instance_type] * nodes * max(0, end - started_ms) / 3_600_000
