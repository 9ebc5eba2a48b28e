"""The infra configuration: ``app.pipelines.useIsaacLabTraining`` in ``infra/config.json``.

Keys (defaults in brackets):

- ``enabled`` [false]: without it the stack holds no pipeline resources.
- ``acceptNvidiaEula`` [false]: must be true when enabled; the container is built from NVIDIA software.
- ``autoRegisterWithVAMS`` [true]: register the ``isaaclab-training`` and ``isaaclab-evaluation`` pipelines with
  VAMS through its import function (``vamsImportFunctionName``, required then).
- ``keepWarmInstance`` [false]: keep 8 vCPUs (one GPU instance) running so jobs start at once.
- ``imageFlavour`` ["kitless"]: ``kitless`` (CUDA base + ``pip install isaaclab``) or ``ngc`` (NVIDIA NGC Isaac Lab).
- ``existingVpc`` [null]: ``{"vpcId", "availabilityZones", "privateSubnetIds", "isolatedSubnetIds"}``; private
  subnets need a NAT route (assets are downloaded at run time), isolated ones hold EFS.
- ``existingBucketName`` [null]: use this bucket for inputs and outputs instead of creating one.
- ``instanceTypes`` [every size of g6, g6e and g5]: the EC2 GPU instance types both compute environments offer;
  each must be one of ``workbench.spec.instance_types.INSTANCE_TYPES`` (its table sizes every job, see there).
- ``capacity`` ["on-demand"]: the single-node jobs' EC2 capacity: ``on-demand``, ``spot`` (a fraction of the price;
  an instance may be reclaimed, and the job then resumes from its newest checkpoint on a new one) or
  ``spot-then-on-demand`` (the main queue tries spot first, on-demand after); see ``workbench.spec.capacity``.
  Multi-node jobs always run on on-demand instances (AWS Batch runs none on Spot).
- ``maxAttempts`` [3]: how many times Batch runs a job whose host was terminated (a spot reclaim, a lost instance);
  every other failure ends the job at once. 1 to 10 (Batch's limit); the runner learns it as ``WORKBENCH_MAX_ATTEMPTS``.
- ``maxvCpus`` [256], ``logRetentionDays`` [30], ``entryFunctionName`` ["vamsExecuteIsaacLabWorkbench"]
  (VAMS only invokes functions whose names start with "vams").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.spec.capacity import DEFAULT_STACK_CAPACITY, STACK_CAPACITIES
from workbench.spec.instance_types import DEFAULT_INSTANCE_TYPES, INSTANCE_TYPES

INFRA_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = INFRA_DIR / "config.json"
CONFIG_ENV_VAR = "WORKBENCH_INFRA_CONFIG"
NVIDIA_LICENSE_URL = "https://docs.nvidia.com/ngc/gpu-cloud/ngc-catalog-user-guide/index.html#ngc-software-license"
IMAGE_FLAVOURS = ("kitless", "ngc")
LOG_RETENTION_DAYS = (7, 14, 30, 90, 180, 365)
MAX_ATTEMPTS = (1, 10)
"""The bounds of a Batch retry strategy's ``attempts``."""


class ConfigError(ValueError):
    """The infra configuration is invalid; the message says which key and why."""


class EulaNotAcceptedError(ConfigError):
    """The pipeline is enabled but the NVIDIA Software License Agreement was not accepted."""

    def __init__(self) -> None:
        super().__init__(
            "app.pipelines.useIsaacLabTraining.enabled is true but acceptNvidiaEula is false. The pipeline's "
            "container image is built from NVIDIA software governed by the NVIDIA Software License Agreement: "
            f"read it at {NVIDIA_LICENSE_URL} and, if you accept it, set "
            "app.pipelines.useIsaacLabTraining.acceptNvidiaEula to true in infra/config.json."
        )


@dataclass(frozen=True)
class ExistingVpc:
    vpc_id: str
    availability_zones: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]
    isolated_subnet_ids: tuple[str, ...]


@dataclass(frozen=True)
class PipelineConfig:
    """The validated ``useIsaacLabTraining`` section plus the stack name."""

    enabled: bool = False
    accept_nvidia_eula: bool = False
    auto_register_with_vams: bool = True
    keep_warm_instance: bool = False
    image_flavour: str = "kitless"
    existing_vpc: ExistingVpc | None = None
    existing_bucket_name: str | None = None
    vams_import_function_name: str | None = None
    entry_function_name: str = "vamsExecuteIsaacLabWorkbench"
    max_vcpus: int = 256
    log_retention_days: int = 30
    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    capacity: str = DEFAULT_STACK_CAPACITY
    max_attempts: int = 3
    stack_name: str = "IsaacLabWorkbench"
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


_KEYS = {
    "enabled": ("enabled", bool),
    "acceptNvidiaEula": ("accept_nvidia_eula", bool),
    "autoRegisterWithVAMS": ("auto_register_with_vams", bool),
    "keepWarmInstance": ("keep_warm_instance", bool),
    "imageFlavour": ("image_flavour", str),
    "existingBucketName": ("existing_bucket_name", (str, type(None))),
    "vamsImportFunctionName": ("vams_import_function_name", (str, type(None))),
    "entryFunctionName": ("entry_function_name", str),
    "maxvCpus": ("max_vcpus", int),
    "logRetentionDays": ("log_retention_days", int),
    "capacity": ("capacity", str),
    "maxAttempts": ("max_attempts", int),
}


def load_config(path: str | os.PathLike[str] | None = None) -> PipelineConfig:
    """Read the config file: ``path``, else ``$WORKBENCH_INFRA_CONFIG``, else ``infra/config.json``."""
    path = Path(path or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"infra config file {path} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"infra config file {path} is not valid JSON: {exc}") from None
    return parse_config(document)


def parse_config(document: dict[str, Any]) -> PipelineConfig:
    """Validate a config document (the whole ``config.json``) into a :class:`PipelineConfig`."""
    if not isinstance(document, dict):
        raise ConfigError("the infra config must be a JSON object")
    section = document.get("app", {}).get("pipelines", {}).get("useIsaacLabTraining", {})
    if not isinstance(section, dict):
        raise ConfigError("app.pipelines.useIsaacLabTraining must be an object")
    prefix = "app.pipelines.useIsaacLabTraining."
    values: dict[str, Any] = {"raw": document}
    for key, value in section.items():
        if key == "existingVpc":
            values["existing_vpc"] = _existing_vpc(value, prefix + key)
            continue
        if key == "instanceTypes":
            values["instance_types"] = _instance_types(value, prefix + key)
            continue
        if key not in _KEYS:
            allowed = ", ".join([*_KEYS, "existingVpc", "instanceTypes"])
            raise ConfigError(f"{prefix}{key}: unknown key; allowed: {allowed}")
        attribute, kind = _KEYS[key]
        if isinstance(value, bool) and kind is int or not isinstance(value, kind):
            raise ConfigError(f"{prefix}{key}: wrong type {type(value).__name__}")
        values[attribute] = value
    stack_name = document.get("stackName", PipelineConfig.stack_name)
    if not isinstance(stack_name, str) or not stack_name:
        raise ConfigError("stackName must be a non-empty string")
    values["stack_name"] = stack_name
    config = PipelineConfig(**values)
    _check(config, prefix)
    return config


def _check(config: PipelineConfig, prefix: str) -> None:
    if config.image_flavour not in IMAGE_FLAVOURS:
        raise ConfigError(f"{prefix}imageFlavour must be one of {', '.join(IMAGE_FLAVOURS)}, got {config.image_flavour!r}")
    if config.log_retention_days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
        raise ConfigError(f"{prefix}logRetentionDays must be one of {allowed}, got {config.log_retention_days}")
    if config.capacity not in STACK_CAPACITIES:
        raise ConfigError(f"{prefix}capacity must be one of {', '.join(STACK_CAPACITIES)}, got {config.capacity!r}")
    low, high = MAX_ATTEMPTS
    if not low <= config.max_attempts <= high:
        raise ConfigError(
            f"{prefix}maxAttempts must be from {low} to {high} (AWS Batch's limits), got {config.max_attempts}"
        )
    if config.max_vcpus < 8:
        raise ConfigError(f"{prefix}maxvCpus must be at least 8 (one GPU instance), got {config.max_vcpus}")
    if not config.entry_function_name.startswith("vams"):
        raise ConfigError(f"{prefix}entryFunctionName must start with 'vams' (VAMS invokes only such functions)")
    if not config.enabled:
        return
    if not config.accept_nvidia_eula:
        raise EulaNotAcceptedError()
    if config.auto_register_with_vams and not config.vams_import_function_name:
        raise ConfigError(
            f"{prefix}autoRegisterWithVAMS is true but {prefix}vamsImportFunctionName is not set: name VAMS's "
            "global pipeline/workflow import function, or set autoRegisterWithVAMS to false for standalone use"
        )


def _existing_vpc(value: Any, path: str) -> ExistingVpc | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} must be an object or null")
    missing = [k for k in ("vpcId", "availabilityZones", "privateSubnetIds", "isolatedSubnetIds") if not value.get(k)]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}")
    zones, private, isolated = value["availabilityZones"], value["privateSubnetIds"], value["isolatedSubnetIds"]
    if not len(zones) == len(private) == len(isolated):
        raise ConfigError(f"{path}: availabilityZones, privateSubnetIds and isolatedSubnetIds need one entry per zone")
    return ExistingVpc(value["vpcId"], tuple(zones), tuple(private), tuple(isolated))


def _instance_types(value: Any, path: str) -> tuple[str, ...]:
    allowed = ", ".join(INSTANCE_TYPES)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path} must be a non-empty list of instance type names; allowed: {allowed}")
    unknown = [v for v in value if v not in INSTANCE_TYPES]
    if unknown:
        raise ConfigError(f"{path}: unknown instance type(s) {', '.join(unknown)}; allowed: {allowed}")
    return tuple(dict.fromkeys(value))
