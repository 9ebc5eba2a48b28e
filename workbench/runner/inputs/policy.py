"""Find the policy an evaluation runs, and check it before any simulation starts.

A policy selector is a checkpoint file (a path or ``file://`` URI; an exported ``policy.onnx`` too), a directory
of checkpoints, an ``s3://`` URI, or a previous job's id (its newest exported checkpoint). A missing, corrupt or
wrong-library policy fails the job at once with :class:`PolicyError`, naming the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import PolicyError, RunnerError
from workbench.outputs import checkpoints, exported
from workbench.outputs.checkpoints import CheckpointInfo
from workbench.spec.document import JobSpec, is_job_id
from workbench.spec.paths import runs_dir
from workbench.transport.storage import fetch_input


def resolve_policy(spec: JobSpec, dest_dir: Path) -> Path:
    """The checkpoint an evaluation spec names (``policy`` or ``policyS3Uri``), found and checked for its library."""
    path = resolve_selector(str(spec.training.get("policy") or spec.training["policyS3Uri"]), dest_dir)
    inspect_checkpoint(path, spec.rl_library)
    return path


def resolve_selector(selector: str, dest_dir: Path) -> Path:
    """The local checkpoint file a selector names; s3:// inputs are downloaded to ``dest_dir``."""
    selector = selector.strip()
    if not selector:
        raise PolicyError("no policy given; pass a checkpoint path, an s3:// URI or a previous job id")
    if is_job_id(selector):
        found = checkpoints.job_checkpoint(selector)
        if found is None:
            raise PolicyError(
                f"job {selector} has no checkpoints under {runs_dir()}; evaluate a training job of this machine, "
                "or pass its checkpoint file or s3:// URI"
            )
        return found
    try:
        path = fetch_input(selector, dest_dir)
    except RunnerError as exc:
        raise PolicyError(f"policy {selector!r} not found: {exc}") from exc
    return newest_checkpoint(path) if path.is_dir() else path


def newest_checkpoint(directory: Path) -> Path:
    """The newest numbered checkpoint in a directory the user named, or a PolicyError saying what is there."""
    found = checkpoints.newest_checkpoint(directory)
    if found is None:
        names = ", ".join(sorted(p.name for p in directory.iterdir())[:10]) or "nothing"
        raise PolicyError(f"no numbered checkpoint (model_<iteration>.pt) in {directory}; found {names}")
    return found


def inspect_checkpoint(path: Path, library_name: str) -> CheckpointInfo:
    """Load and check a checkpoint for ``library_name``: its format, and the policy's input and output sizes. An
    exported ONNX policy runs with onnxruntime, so any library's task config may drive it."""
    if exported.is_exported(path):
        return exported.inspect_exported(path)
    info = checkpoints.inspect_checkpoint(path, PolicyError)
    if info.library is None:
        found = ", ".join(map(str, list(checkpoints.load_checkpoint(path, PolicyError))[:8])) or "none"
        raise PolicyError(
            f"policy checkpoint {path.name} is not a {library_name} checkpoint: expected the keys "
            f"{checkpoints.expected_keys(library_name)}, found {found}"
        )
    if info.library != library_name:
        raise PolicyError(
            f"policy checkpoint {path.name} was written by {info.library}, but the evaluation uses {library_name}; "
            f"set rlLibrary to {info.library!r} or pick a {library_name} checkpoint"
        )
    return info


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
