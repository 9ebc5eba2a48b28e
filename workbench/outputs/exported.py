"""The exported policy of a training: ``exported/policy.onnx``, ``exported/policy.pt`` (TorchScript) and
``exported/policy.json``, which describes them (task, library, observation and action sizes and names, the
checkpoint they came from, and observations with the actions the library's own actor took for them).

Both files take the raw policy observation of the task (its observation groups concatenated, float32, shape
``[batch, observation_size]``) and return the action the simulator receives (``[batch, action_size]``): the
library's observation normalisation and its wrapper's clipping are inside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.errors import PolicyError
from workbench.outputs.checkpoints import CheckpointInfo

ONNX = "policy.onnx"
TORCHSCRIPT = "policy.pt"
DESCRIPTION = "policy.json"
PARTIAL = ".exported.partial"
"""Where the export writes before ``exported/`` appears (the job's runner removes what a killed export left)."""
INPUT_NAME = "obs"
OUTPUT_NAME = "actions"
TOLERANCE = 1e-5
"""The largest difference allowed between an exported file's actions and the library actor's."""


def is_exported(path: Path) -> bool:
    """Whether ``path`` is an exported ONNX policy (evaluated with onnxruntime, not by its library)."""
    return path.suffix == ".onnx"


def description(path: Path) -> dict[str, Any]:
    """``policy.json`` beside an exported file, or {} where there is none (an ONNX file from elsewhere)."""
    described = path.with_name(DESCRIPTION)
    if not described.is_file():
        return {}
    try:
        return json.loads(described.read_text())
    except (OSError, ValueError) as exc:
        raise PolicyError(f"{described} is not a readable policy description: {exc}") from exc


def observation_groups(path: Path) -> list[str]:
    """The observation groups an exported policy reads, concatenated in this order (``policy`` by default)."""
    return list(description(path).get("observation_groups") or ["policy"])


def inspect_exported(path: Path) -> CheckpointInfo:
    """Check an ONNX policy: it loads and takes one ``[batch, n]`` input to one ``[batch, m]`` output."""
    import onnx

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises DecodeError and OSError subclasses for a bad or missing file
        raise PolicyError(f"policy {path.name} is not a readable ONNX model: {exc}") from exc
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise PolicyError(
            f"policy {path.name} has {len(graph.input)} inputs and {len(graph.output)} outputs; an exported "
            "policy has one observation input and one action output"
        )
    obs_dim, action_dim = (_last_dimension(value) for value in (graph.input[0], graph.output[0]))
    described = description(path)
    return CheckpointInfo(path, described.get("rl_library"), described.get("checkpoint_iteration"), obs_dim, action_dim)


def _last_dimension(value: Any) -> int | None:
    dims = value.type.tensor_type.shape.dim
    return int(dims[-1].dim_value) if dims and dims[-1].dim_value else None
