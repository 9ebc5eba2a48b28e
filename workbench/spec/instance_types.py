"""The EC2 GPU instance types the AWS pipeline can offer, and how much of one instance a job asks AWS Batch for.

The one owner of these numbers: the infra config validates ``instanceTypes`` against :data:`INSTANCE_TYPES`, the
compute environments offer the configured types, the job definitions default to :func:`job_size` of the smallest,
and the prepare Lambda (which bundles this module with ``workbench.spec.document``; standard library only) sizes each job.

Sizing rule, for a job with ``gpus`` GPUs per node on an instance with ``G`` GPUs, ``V`` vCPUs and ``M`` MiB:

- GPUs: ``gpus``.
- vCPUs: the job's GPU share of the instance, ``V * gpus // G`` (CPU is a soft share in ECS, so all of it may be
  reserved; the ECS agent needs no reserved vCPU).
- Memory: the same share of 92 % of the instance's memory, ``M * 92 * gpus // (100 * G)`` MiB. ECS enforces a job's
  memory as a hard limit and registers less than the installed memory (the kernel keeps about 3 %: 7985 of an
  m4.large's 8192 MiB); AWS Batch recommends keeping 5 % more for the ECS agent and the OS.

A job that names ``computeConfig.instanceType`` is sized for that type (it must be offered); otherwise for the
smallest offered type with at least ``gpusPerNode`` GPUs. AWS Batch places the job on the smallest offered
instance it fits, which is that type or one at least as large.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MEMORY_PERCENT = 92
"""Of an instance's installed memory, the part its jobs may use (the rest: kernel, ECS agent, OS)."""


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    gpus: int

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]


def _family(family: str, sizes: Iterable[tuple[str, int, int, int]]) -> list[InstanceType]:
    return [InstanceType(f"{family}.{size}", vcpus, gib * 1024, gpus) for size, vcpus, gib, gpus in sizes]


_G6_G5_SIZES = (  # size, vCPUs, memory GiB, GPUs (g6: NVIDIA L4; g5: A10G)
    ("xlarge", 4, 16, 1), ("2xlarge", 8, 32, 1), ("4xlarge", 16, 64, 1), ("8xlarge", 32, 128, 1),
    ("16xlarge", 64, 256, 1), ("12xlarge", 48, 192, 4), ("24xlarge", 96, 384, 4), ("48xlarge", 192, 768, 8),
)
_G6E_SIZES = (  # NVIDIA L40S: twice the memory of g6 at each size
    ("xlarge", 4, 32, 1), ("2xlarge", 8, 64, 1), ("4xlarge", 16, 128, 1), ("8xlarge", 32, 256, 1),
    ("16xlarge", 64, 512, 1), ("12xlarge", 48, 384, 4), ("24xlarge", 96, 768, 4), ("48xlarge", 192, 1536, 8),
)
INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t for t in [*_family("g6", _G6_G5_SIZES), *_family("g6e", _G6E_SIZES), *_family("g5", _G6_G5_SIZES)]
}
"""Every type the pipeline knows (EC2's published vCPUs, memory and GPUs)."""

DEFAULT_INSTANCE_TYPES: tuple[str, ...] = tuple(INSTANCE_TYPES)
"""The default of the infra config's ``instanceTypes``: every size of g6, g6e and g5."""


class SizingError(ValueError):
    """The job cannot be sized on the offered instance types; the message names the field."""


@dataclass(frozen=True)
class JobSize:
    """What one node of a job asks AWS Batch for, and the instance type it was sized for."""

    gpus: int
    vcpus: int
    memory_mib: int
    instance_type: str

    def resource_requirements(self) -> list[dict[str, str]]:
        """The Batch ``ResourceRequirements`` (SubmitJob's container overrides), values as strings."""
        return [
            {"Type": "GPU", "Value": str(self.gpus)},
            {"Type": "VCPU", "Value": str(self.vcpus)},
            {"Type": "MEMORY", "Value": str(self.memory_mib)},
        ]


def size_on(instance: InstanceType, gpus: int) -> JobSize:
    """The job's share of ``instance`` for ``gpus`` GPUs (see the module's sizing rule)."""
    if not 1 <= gpus <= instance.gpus:
        raise SizingError(f"{instance.name} has {instance.gpus} GPU(s), not {gpus}")
    return JobSize(
        gpus=gpus,
        vcpus=instance.vcpus * gpus // instance.gpus,
        memory_mib=instance.memory_mib * MEMORY_PERCENT * gpus // (100 * instance.gpus),
        instance_type=instance.name,
    )


def smallest(offered: Iterable[str], gpus: int = 1) -> InstanceType | None:
    """The smallest offered type (fewest vCPUs, then least memory, then first listed) with ``gpus`` GPUs or more."""
    fitting = [INSTANCE_TYPES[name] for name in offered if INSTANCE_TYPES[name].gpus >= gpus]
    return min(fitting, key=lambda t: (t.vcpus, t.memory_mib), default=None)


def job_size(offered: Iterable[str], gpus: int, instance_type: str | None = None) -> JobSize:
    """Size a job for ``instance_type`` (must be offered) or, without one, for the smallest offered fitting type.

    Raises :class:`SizingError` naming ``computeConfig.instanceType`` or ``computeConfig.gpusPerNode``.
    """
    offered = tuple(offered)
    if instance_type is not None:
        if instance_type not in offered:
            raise SizingError(
                f"computeConfig.instanceType: {instance_type!r} is not offered by this pipeline; allowed: "
                f"{', '.join(offered)}"
            )
        instance = INSTANCE_TYPES[instance_type]
        if gpus > instance.gpus:
            raise SizingError(
                f"computeConfig.gpusPerNode: {gpus} GPUs do not fit on {instance_type} ({instance.gpus} GPU(s))"
            )
        return size_on(instance, gpus)
    instance = smallest(offered, gpus)
    if instance is None:
        most = max((INSTANCE_TYPES[name].gpus for name in offered), default=0)
        raise SizingError(
            f"computeConfig.gpusPerNode: {gpus} GPUs per node, but the largest offered instance has {most}; "
            f"offered: {', '.join(offered)}"
        )
    return size_on(instance, gpus)
