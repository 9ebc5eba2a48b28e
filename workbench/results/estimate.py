"""What a job will take before it starts: its expected wall time from this machine's own measured rates
(:mod:`workbench.outputs.rates`), with the source of the figure, and on the aws backend its price and cost.

A training's time is its start-up plus ``maxIterations`` times the seconds per iteration measured for the same
task, library and device; at another env count the nearest measured one is scaled linearly (stated). Where no job
of that kind has finished here yet the estimate says so instead of inventing a number.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.backends.aws_costs import STARTUP_SECONDS, CostEstimate, estimate, expected_seconds
from workbench.outputs import rates
from workbench.spec.capacity import ON_DEMAND
from workbench.spec.document import JobSpec


@dataclass(frozen=True)
class TimeEstimate:
    """``seconds`` (None: no measurement yet) and ``source``, the words that say where the figure comes from."""

    seconds: float | None
    source: str

    def describe(self) -> str:
        if self.seconds is None:
            return f"expected time: {self.source}"
        return f"expected time: ~{duration(self.seconds)} ({self.source})"


def duration(seconds: float) -> str:
    """``45 s``, ``3 min 20 s``, ``2 h 05 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def expected_time(spec: JobSpec, device: str) -> TimeEstimate:
    """The expected wall time of ``spec`` on ``device`` (``cpu`` or ``cuda``) from the rates measured here."""
    what = f"{spec.task} with {spec.rl_library} on {rates.device_kind(device)}"
    if spec.mode != "train":
        return TimeEstimate(None, f"no measurement yet for evaluations ({what}); only trainings are measured")
    found = rates.measured(spec.task, spec.rl_library, device)
    if not found:
        return TimeEstimate(None, f"no measurement yet for {what}: the first such training records one")
    envs = spec.training["numEnvs"]
    nearest = min(found, key=lambda rate: abs(rate.num_envs - envs))
    scale = envs / nearest.num_envs
    seconds = nearest.startup_s + spec.training["maxIterations"] * nearest.seconds_per_iteration * scale
    scaled = "" if scale == 1 else f", scaled linearly from {nearest.num_envs} envs"
    source = (f"measured by job {nearest.job_id[:8]} on {nearest.measured_at[:10]}: start-up "
              f"{nearest.startup_s:.0f} s + {spec.training['maxIterations']} iterations x "
              f"{nearest.seconds_per_iteration * scale:.3g} s{scaled}")
    return TimeEstimate(seconds, source)


def aws_cost(spec: JobSpec, uses: str = ON_DEMAND) -> tuple[TimeEstimate, CostEstimate]:
    """The job's expected time on a GPU instance (instance start-up included) and its cost at that time; without
    a GPU measurement the cost uses the backend's rough per-iteration figure, and says so."""
    time_estimate = expected_time(spec, "cuda")
    if time_estimate.seconds is None:
        rough = expected_seconds(spec)
        return (TimeEstimate(None, f"{time_estimate.source}; the cost assumes a rough ~{duration(rough)}"),
                estimate(spec, rough, uses=uses))
    seconds = STARTUP_SECONDS + time_estimate.seconds
    on_aws = TimeEstimate(seconds, f"{STARTUP_SECONDS:.0f} s instance start-up + {time_estimate.source}")
    return on_aws, estimate(spec, seconds, uses=uses)
