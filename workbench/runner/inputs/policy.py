"""Find the policy an evaluation runs, and check it before any simulation starts.

A policy selector is a checkpoint file (a path or ``file://`` URI), a directory of checkpoints, an ``s3://`` URI,
or a previous job's id (its ``checkpoints/`` directory). In a directory the newest checkpoint by iteration number
wins, compared as numbers (``model_1500`` is newer than ``model_999``).

Checkpoints keep each library's own format (the runner only renames them to ``model_<iteration>.pt``), so the
library is recognized by the file's content, never by its name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import PolicyError, RunnerError
from workbench.spec.paths import run_dir
from workbench.transport.storage import fetch_input
from workbench.spec.document import JobSpec, is_job_id

CHECKPOINT_SUFFIXES = (".pt", ".pth")
LIBRARY_KEYS: dict[str, tuple[str, ...]] = {
    "rsl_rl": ("actor_state_dict", "iter"),
    "rl_games": ("model", "epoch"),
    "skrl": ("policy",),
}
"""The top-level keys each library's checkpoint has; the first identifies the library."""

_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about the policy inside it."""

    path: Path
    library: str
    iteration: int | None
    obs_dim: int | None
    action_dim: int | None


def resolve_policy(spec: JobSpec, dest_dir: Path) -> Path:
    """The checkpoint an evaluation spec names (``policy`` or ``policyS3Uri``), found and checked for its library.

    Runs in the runner before the evaluation starts, so a missing, corrupt or wrong-library policy fails the job
    at once with :class:`PolicyError`.
    """
    selector = spec.training.get("policy") or spec.training.get("policyS3Uri")
    if not selector:
        raise PolicyError("the evaluation names no policy; set 'policy' (a path or job id) or 'policyS3Uri'")
    path = resolve_selector(str(selector), dest_dir)
    inspect_checkpoint(path, spec.rl_library)
    return path


def resolve_selector(selector: str, dest_dir: Path) -> Path:
    """The local checkpoint file a selector names; s3:// inputs are downloaded to ``dest_dir``.

    Raises :class:`PolicyError` when nothing usable is found.
    """
    selector = selector.strip()
    if not selector:
        raise PolicyError("no policy given; pass a checkpoint path, an s3:// URI or a previous job id")
    if is_job_id(selector):
        directory = run_dir(selector) / "checkpoints"
        if not directory.is_dir():
            raise PolicyError(
                f"job {selector} has no checkpoints here (expected a directory {directory}); "
                "evaluate a training job of this machine, or pass its checkpoint file or s3:// URI"
            )
        return newest_checkpoint(directory)
    try:
        path = fetch_input(selector, dest_dir)
    except RunnerError as exc:
        raise PolicyError(f"policy {selector!r} not found: {exc}") from exc
    return newest_checkpoint(path) if path.is_dir() else path


def checkpoint_number(path: Path) -> int | None:
    """The iteration number in a checkpoint's name (the last number in it), or None."""
    match = _LAST_NUMBER.search(path.stem)
    return int(match.group(1)) if match else None


def newest_checkpoint(directory: Path) -> Path:
    """The checkpoint with the highest iteration number in ``directory`` (numbers compared as numbers)."""
    candidates = [p for p in directory.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES]
    numbered = [p for p in candidates if checkpoint_number(p) is not None]
    if not numbered:
        found = ", ".join(sorted(p.name for p in directory.iterdir())[:10]) or "nothing"
        raise PolicyError(f"no numbered checkpoint (model_<iteration>.pt) in {directory}; found {found}")
    return max(numbered, key=lambda p: (checkpoint_number(p), p.name))


def load_checkpoint(path: Path) -> Mapping[str, Any]:
    """Load a checkpoint on the CPU, turning every failure into a :class:`PolicyError`."""
    import torch

    if not path.is_file():
        raise PolicyError(f"policy checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise PolicyError(f"policy checkpoint {path} is empty")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged file
        raise PolicyError(
            f"policy checkpoint {path} is corrupt or not a PyTorch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(data, Mapping):
        raise PolicyError(f"policy checkpoint {path} holds a {type(data).__name__}, expected a dictionary of weights")
    return data


def detect_library(data: Mapping[str, Any]) -> str | None:
    """The RL library whose checkpoint format ``data`` has, or None."""
    for library, keys in LIBRARY_KEYS.items():
        if keys[0] in data:
            return library
    if "model_state_dict" in data and "iter" in data:
        return "rsl_rl"
    return None


def inspect_checkpoint(path: Path, library: str) -> CheckpointInfo:
    """Load and check a checkpoint for ``library``: its format, and the policy's input and output sizes."""
    data = load_checkpoint(path)
    found = detect_library(data)
    if found is None:
        expected = ", ".join(LIBRARY_KEYS[library])
        raise PolicyError(
            f"policy checkpoint {path.name} is not a {library} checkpoint: expected the keys {expected}, "
            f"found {', '.join(map(str, list(data)[:8])) or 'none'}"
        )
    if found != library:
        raise PolicyError(
            f"policy checkpoint {path.name} was written by {found}, but the evaluation uses {library}; "
            f"set rlLibrary to {found!r} or pick a {library} checkpoint"
        )
    obs_dim, action_dim, iteration = _SIZE_READERS[library](data, path)
    return CheckpointInfo(path=path, library=library, iteration=iteration, obs_dim=obs_dim, action_dim=action_dim)


def check_sizes(info: CheckpointInfo, task: str, obs_dim: int | None, action_dim: int | None) -> None:
    """Raise :class:`PolicyError` when the policy's sizes differ from the task's (unknown sizes are not checked)."""
    problems = []
    if info.obs_dim is not None and obs_dim is not None and info.obs_dim != obs_dim:
        problems.append(f"{info.obs_dim} observations (the task has {obs_dim})")
    if info.action_dim is not None and action_dim is not None and info.action_dim != action_dim:
        problems.append(f"{info.action_dim} actions (the task has {action_dim})")
    if problems:
        raise PolicyError(
            f"policy checkpoint {info.path.name} does not fit task {task!r}: it takes {' and '.join(problems)}; "
            "was it trained on another task?"
        )


def _state_dict(data: Mapping[str, Any], key: str, path: Path) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping) or not value:
        raise PolicyError(f"policy checkpoint {path.name} has no weights under {key!r}; the file is incomplete")
    return value


def _first_linear_inputs(state: Mapping[str, Any], prefix: str) -> int | None:
    weights = [
        (k, v)
        for k, v in state.items()
        if k.startswith(prefix) and k.endswith(".weight") and getattr(v, "ndim", 0) == 2
    ]
    return int(weights[0][1].shape[1]) if weights else None


def _rsl_rl_sizes(data: Mapping[str, Any], path: Path) -> tuple[int | None, int | None, int | None]:
    state = _state_dict(data, "actor_state_dict" if "actor_state_dict" in data else "model_state_dict", path)
    obs_dim = _first_linear_inputs(state, "mlp.") or _first_linear_inputs(state, "actor.")
    std = state.get("distribution.std_param", state.get("std"))
    action_dim = int(std.shape[-1]) if std is not None else None
    return obs_dim, action_dim, _int_or_none(data.get("iter"))


def _rl_games_sizes(data: Mapping[str, Any], path: Path) -> tuple[int | None, int | None, int | None]:
    state = {k.removeprefix("_orig_mod."): v for k, v in _state_dict(data, "model", path).items()}
    mean = state.get("running_mean_std.running_mean")
    obs_dim = int(mean.shape[-1]) if mean is not None else _first_linear_inputs(state, "a2c_network.actor_mlp.")
    mu = state.get("a2c_network.mu.weight")
    action_dim = int(mu.shape[0]) if mu is not None else None
    return obs_dim, action_dim, _int_or_none(data.get("epoch"))


def _skrl_sizes(data: Mapping[str, Any], path: Path) -> tuple[int | None, int | None, int | None]:
    state = _state_dict(data, "policy", path)
    preprocessor = data.get("observation_preprocessor") or data.get("state_preprocessor")
    mean = preprocessor.get("running_mean") if isinstance(preprocessor, Mapping) else None
    obs_dim = int(mean.shape[-1]) if mean is not None else _first_linear_inputs(state, "net_container.")
    log_std = state.get("log_std_parameter")
    action_dim = int(log_std.shape[-1]) if log_std is not None else None
    return obs_dim, action_dim, checkpoint_number(path)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_SIZE_READERS = {"rsl_rl": _rsl_rl_sizes, "rl_games": _rl_games_sizes, "skrl": _skrl_sizes}
