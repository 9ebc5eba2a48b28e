"""The job spec: the pipeline's ``inputParameters`` JSON, parsed, defaulted and validated.

Stdlib only, so the same code runs in a notebook, in the AWS Lambda and in the container.

A document looks like::

    {"trainingConfig": {"mode": "train", "task": "Isaac-Cartpole-Direct-v0", "numEnvs": 4096, ...},
     "computeConfig": {"numNodes": 1},
     "customEnvironmentS3Uri": "s3://bucket/my_env.whl"}

``parse_spec`` returns a frozen :class:`JobSpec` or raises :class:`SpecError` listing every problem with the
path of the field it concerns. ``JobSpec.to_dict()`` gives the normalized document back (defaults filled,
task id resolved), and parsing that again gives the same spec.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.errors import SpecError
from workbench.spec.capacity import DEFAULT_JOB_CAPACITY, JOB_CAPACITIES
from workbench.spec.catalogue import CORE_TASK_LIBRARIES, CORE_TASKS

MODES = ("train", "evaluate")
RL_LIBRARIES = ("rsl_rl", "rl_games", "skrl")
DEVICES = ("auto", "cpu", "cuda")
PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".whl")
JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
"""A local job's id (and what a policy or resume selector names as a job): a lower-case UUID."""
AWS_JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}\Z")
"""A pipeline job's id (the Step Functions execution name): 1-80 letters, digits, '-' or '_'."""
JOB_ID_FORMS = {JOB_ID_PATTERN: "a UUID such as 3f2b5c1e-8a4d-4c2b-9e1f-0a1b2c3d4e5f",
                AWS_JOB_ID_PATTERN: "1-80 letters, digits, '-' or '_'"}
OVERRIDE_KEY_PATTERN = re.compile(r"^(env|agent)(\.(?!__)[A-Za-z_][A-Za-z0-9_]*)+\Z")
"""``agent.x.y`` / ``env.x.y``; no segment may start with ``__`` (``env.__class__`` would reach Python internals)."""
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
LEGACY_SUFFIX = re.compile(r"-v\d+$")
DEFAULT_TASK = "Isaac-Cartpole-v0"

TRAIN_DEFAULTS: dict[str, Any] = {
    "mode": "train",
    "task": DEFAULT_TASK,
    "numEnvs": 4096,
    "maxIterations": 1500,
    "rlLibrary": "rsl_rl",
    "seed": None,
    "device": "auto",
    "resumeFrom": None,
    "overrides": {},
    "recordVideo": False,
}
EVALUATE_DEFAULTS: dict[str, Any] = {
    "mode": "evaluate",
    "task": DEFAULT_TASK,
    "numEnvs": 100,
    "numEpisodes": 50,
    "stepsPerEpisode": 1000,
    "recordVideo": False,
    "rlLibrary": "rsl_rl",
    "policyS3Uri": None,
    "policy": None,
    "seed": None,
    "device": "auto",
    "videoWidth": 640,
    "videoHeight": 360,
    "videoEpisodes": 2,
    "overrides": {},
}
COMPUTE_DEFAULTS: dict[str, Any] = {
    "numNodes": 1, "gpusPerNode": 1, "instanceType": None, "capacity": DEFAULT_JOB_CAPACITY,
}
"""``capacity``: the EC2 capacity the job may run on (``workbench.spec.capacity``; the aws backend only)."""

INT_BOUNDS = {
    "numEnvs": (1, 65536),
    "maxIterations": (1, 100000),
    "numEpisodes": (1, 10000),
    "stepsPerEpisode": (1, 100000),
    "numNodes": (1, 64),
    "gpusPerNode": (1, 8),
    "videoWidth": (64, 3840),
    "videoHeight": (64, 2160),
    "videoEpisodes": (1, 100),
    "seed": (0, 2**32 - 1),
}


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, e.g. ``trainingConfig.numEnvs: must be an integer from 1 to 65536``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class JobSpec:
    """A validated job. ``training``/``compute`` hold the full, defaulted camelCase sections."""

    training: Mapping[str, Any]
    compute: Mapping[str, Any]
    custom_environment_uri: str | None = None
    notices: tuple[str, ...] = field(default=(), compare=False)

    @property
    def mode(self) -> str:
        return self.training["mode"]

    @property
    def task(self) -> str:
        return self.training["task"]

    @property
    def rl_library(self) -> str:
        return self.training["rlLibrary"]

    @property
    def num_nodes(self) -> int:
        return self.compute["numNodes"]

    def to_dict(self) -> dict[str, Any]:
        """The normalized pipeline document (JSON-serializable)."""
        doc: dict[str, Any] = {
            "trainingConfig": json.loads(json.dumps(dict(self.training))),
            "computeConfig": dict(self.compute),
        }
        if self.custom_environment_uri is not None:
            doc["customEnvironmentS3Uri"] = self.custom_environment_uri
        return doc

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def with_training(self, **changes: Any) -> JobSpec:
        """A copy with some ``trainingConfig`` fields replaced (not re-validated: use for resolved values)."""
        return replace(self, training={**self.training, **changes})


def parse_spec(document: Mapping[str, Any] | str | bytes, known_tasks: Collection[str] | None = None) -> JobSpec:
    """Parse and validate a pipeline document (a mapping or its JSON text).

    ``known_tasks`` are the task ids that can be resolved (default: Isaac Lab 3.0's core tasks). A task outside
    them is an error, unless ``customEnvironmentS3Uri`` is given: the package registers it at run time.
    """
    errors: list[FieldError] = []
    notices: list[str] = []
    if isinstance(document, (str, bytes)):
        document = _load_json(document)
    if not isinstance(document, Mapping):
        raise SpecError([FieldError("$", f"must be a JSON object, got {_type_name(document)}")])

    _reject_unknown(document, ("trainingConfig", "computeConfig", "customEnvironmentS3Uri"), "", errors)
    custom_env = _uri(document, "customEnvironmentS3Uri", "", errors, local_allowed=True, package=True)

    raw_training = _section(document, "trainingConfig", errors)
    mode = raw_training.get("mode", "train")
    if mode not in MODES:
        errors.append(FieldError("trainingConfig.mode", f"must be one of {_choices(MODES)}, got {mode!r}"))
        mode = "train"
    defaults = TRAIN_DEFAULTS if mode == "train" else EVALUATE_DEFAULTS
    _reject_unknown(raw_training, defaults, "trainingConfig.", errors)
    training = _validate_training(raw_training, defaults, errors)

    raw_compute = _section(document, "computeConfig", errors)
    _reject_unknown(raw_compute, COMPUTE_DEFAULTS, "computeConfig.", errors)
    compute = {key: raw_compute.get(key, default) for key, default in COMPUTE_DEFAULTS.items()}
    for key in ("numNodes", "gpusPerNode"):
        _check_int(compute, key, "computeConfig.", errors, nullable=False)
    if compute["instanceType"] is not None and not (
        isinstance(compute["instanceType"], str) and re.fullmatch(r"[a-z0-9]+\.[a-z0-9]+", compute["instanceType"])
    ):
        errors.append(FieldError("computeConfig.instanceType", "must be an EC2 instance type such as 'g6.xlarge'"))
    if compute["capacity"] not in JOB_CAPACITIES:
        errors.append(FieldError("computeConfig.capacity",
                                 f"must be one of {_choices(JOB_CAPACITIES)}, got {compute['capacity']!r}"))
    if mode == "evaluate" and compute["numNodes"] != 1 and "computeConfig.numNodes" not in _paths(errors):
        errors.append(FieldError("computeConfig.numNodes", "evaluation runs on one node; must be 1"))

    if isinstance(training.get("task"), str):
        catalogue = CORE_TASKS if known_tasks is None else known_tasks
        task, notice = resolve_task_id(training["task"], catalogue, custom_package=custom_env is not None)
        if task is None:
            errors.append(FieldError("trainingConfig.task", notice))
        else:
            training["task"] = task
            if notice:
                notices.append(notice)
            libraries = CORE_TASK_LIBRARIES.get(task)
            if libraries is not None and training["rlLibrary"] in RL_LIBRARIES and training["rlLibrary"] not in libraries:
                available = _choices(libraries) if libraries else "none"
                errors.append(
                    FieldError("trainingConfig.rlLibrary", f"task {task!r} has no {training['rlLibrary']} agent config; available: {available}")
                )
    if errors:
        raise SpecError(errors)
    return JobSpec(training=training, compute=compute, custom_environment_uri=custom_env, notices=tuple(notices))


def _load_json(text: str | bytes) -> Any:
    """The JSON document, or a SpecError: invalid JSON, or a key given twice in one object (which JSON parsers
    would silently resolve to the last value)."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        document = json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError) as exc:
        raise SpecError([FieldError("$", f"not valid JSON ({exc})")]) from None
    if duplicates:
        raise SpecError([FieldError(_field_path("", key), "given twice; give each field once") for key in duplicates])
    return document


def resolve_task_id(task: str, known_tasks: Collection[str], custom_package: bool = False) -> tuple[str | None, str]:
    """Map a task id to a known Isaac Lab 3.0 id.

    Returns ``(task_id, notice)``: the notice says when a 2.x id was aliased. ``(None, reason)`` when the task is
    unknown (with close matches), unless a custom package may register it, then the id is kept as given.
    """
    if task in known_tasks:
        return task, ""
    stripped = LEGACY_SUFFIX.sub("", task)
    if stripped != task and stripped in known_tasks:
        return stripped, f"task id {task!r} is an Isaac Lab 2.x id; using the 3.0 id {stripped!r}"
    if custom_package:
        return task, ""
    close = difflib.get_close_matches(stripped, list(known_tasks), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; run 'workbench tasks' to list them"
    return None, f"unknown task {task!r}{hint}"


def is_job_id(value: str) -> bool:
    """Whether a policy/resume selector names a previous job rather than a file or URI."""
    return bool(JOB_ID_PATTERN.match(value))


def check_job_id(value: object, pattern: re.Pattern[str] = JOB_ID_PATTERN) -> str:
    """``value`` when it is a job id of the form ``pattern`` describes, else a SpecError naming the form: checked
    before the id names any file, execution or process."""
    if isinstance(value, str) and pattern.match(value):
        return value
    raise SpecError([FieldError("jobId", f"must be {JOB_ID_FORMS[pattern]}, got {value!r}")])


def _validate_training(raw: Mapping[str, Any], defaults: Mapping[str, Any], errors: list[FieldError]) -> dict:
    training = {key: raw.get(key, default) for key, default in defaults.items()}
    prefix = "trainingConfig."
    if not isinstance(training["task"], str) or not training["task"].strip():
        errors.append(FieldError(prefix + "task", f"must be a non-empty string, got {_type_name(training['task'])}"))
    elif CONTROL_CHARACTERS.search(training["task"]) or training["task"] != training["task"].strip():
        errors.append(FieldError(prefix + "task", f"must be a task id without spaces around it or control "
                                 f"characters, got {training['task']!r}"))
    if training["rlLibrary"] not in RL_LIBRARIES:
        errors.append(
            FieldError(prefix + "rlLibrary", f"must be one of {_choices(RL_LIBRARIES)}, got {training['rlLibrary']!r}")
        )
    if training["device"] not in DEVICES:
        errors.append(FieldError(prefix + "device", f"must be one of {_choices(DEVICES)}, got {training['device']!r}"))
    if not isinstance(training["recordVideo"], bool):
        errors.append(FieldError(prefix + "recordVideo", f"must be true or false, got {training['recordVideo']!r}"))
    for key in training:
        if key in INT_BOUNDS:
            _check_int(training, key, prefix, errors, nullable=key == "seed")
    _check_overrides(training["overrides"], errors)
    if "policyS3Uri" in training:
        _uri(training, "policyS3Uri", prefix, errors, local_allowed=False)
        policy = training["policy"]
        if policy is not None and (not isinstance(policy, str) or not policy.strip() or CONTROL_CHARACTERS.search(policy)):
            errors.append(FieldError(prefix + "policy", "must be a job id, a checkpoint path or a file:// URI"))
        if training["policyS3Uri"] is not None and policy is not None:
            errors.append(FieldError(prefix + "policy", "give either policy or policyS3Uri, not both"))
        if training["policyS3Uri"] is None and policy is None:
            errors.append(FieldError(prefix + "policy", "an evaluation needs a policy: a job id, a checkpoint path or "
                                     "file:// URI (policy) or an s3:// URI (policyS3Uri)"))
    if "resumeFrom" in training:
        _uri(training, "resumeFrom", prefix, errors, local_allowed=True)
    return training


def _check_overrides(overrides: Any, errors: list[FieldError]) -> None:
    path = "trainingConfig.overrides"
    if not isinstance(overrides, Mapping):
        errors.append(FieldError(path, f"must be an object of 'agent.x.y' or 'env.x.y' keys, got {_type_name(overrides)}"))
        return
    for key, value in overrides.items():
        if not isinstance(key, str) or not OVERRIDE_KEY_PATTERN.match(key):
            errors.append(FieldError(_field_path(path + ".", key), "key must look like 'agent.algorithm.learning_rate' or 'env.x'"))
        elif not isinstance(value, (str, int, float, bool)) or (isinstance(value, float) and not math.isfinite(value)):
            errors.append(FieldError(f"{path}.{key}", f"must be a string, number or boolean, got {_type_name(value)}"))
        elif isinstance(value, str) and (not value or any(c in value for c in " \n'\"")):
            errors.append(FieldError(f"{path}.{key}", "string values must be non-empty without spaces or quotes"))


def _check_int(section: dict, key: str, prefix: str, errors: list[FieldError], nullable: bool) -> None:
    value = section[key]
    low, high = INT_BOUNDS[key]
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        what = "null or an integer" if nullable else "an integer"
        errors.append(FieldError(prefix + key, f"must be {what} from {low} to {high}, got {value!r}"))


def _uri(
    section: Mapping[str, Any],
    key: str,
    prefix: str,
    errors: list[FieldError],
    local_allowed: bool,
    package: bool = False,
) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    path = prefix + key
    allowed = "an s3:// URI, a file:// URI, a local path" if local_allowed else "an s3:// URI"
    if key == "resumeFrom":
        allowed += " or a job id"
    if not isinstance(value, str) or not value.strip() or CONTROL_CHARACTERS.search(value):
        errors.append(FieldError(path, f"must be {allowed} (without control characters), got {value!r}"))
        return None
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme == "s3":
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+", value):
            errors.append(FieldError(path, f"must be s3://<bucket>/<key>, got {value!r}"))
            return None
    elif scheme not in ("", "file") or (scheme == "" and not local_allowed) or (scheme == "file" and not local_allowed):
        errors.append(FieldError(path, f"must be {allowed}, got scheme {scheme or 'none'!r} in {value!r}"))
        return None
    if package and not value.lower().endswith(PACKAGE_SUFFIXES):
        errors.append(FieldError(path, f"must name a {'/'.join(PACKAGE_SUFFIXES)} package, got {value!r}"))
        return None
    return value


def _section(document: Mapping[str, Any], key: str, errors: list[FieldError]) -> Mapping[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, Mapping):
        errors.append(FieldError(key, f"must be an object, got {_type_name(value)}"))
        return {}
    return value


def _reject_unknown(section: Mapping[str, Any], allowed: Iterable[str], prefix: str, errors: list[FieldError]) -> None:
    allowed = list(allowed)
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(allowed)}"
            errors.append(FieldError(_field_path(prefix, key), f"unknown field{hint}"))


def _field_path(prefix: str, key: object) -> str:
    """``prefix.key``, with keys that are not plain names quoted (so the path is never empty or ambiguous)."""
    name = key if isinstance(key, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key) else json.dumps(key)
    return f"{prefix}{name}"


def _paths(errors: list[FieldError]) -> set[str]:
    return {e.path for e in errors}


def _choices(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, Mapping):
        return "an object"
    return names.get(type(value), type(value).__name__)
