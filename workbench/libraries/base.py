"""What the workbench must know of an RL library, as one small adapter per library (rsl_rl, rl_games, skrl).

Everywhere else asks the adapter (``workbench.libraries.library(name)``) instead of branching on the library's
name: its ``isaaclab train`` flags, its run directory's checkpoints, its checkpoint dictionary, the progress lines
it prints, and the TensorBoard tags and step unit it logs with. The knowledge was read from Isaac Lab 3.0.0's train
backends, rsl-rl-lib 5.5.1, rl_games 1.6.5 and skrl 2.1.1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.spec.status import Progress
from workbench.spec.task_registry import LIBRARY_ENTRY_POINTS

NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


@dataclass(frozen=True)
class RunCheckpoint:
    """A checkpoint as the library wrote it in its run directory; ``iteration`` None for a "best so far" file."""

    source: Path
    iteration: int | None


@dataclass(frozen=True)
class PolicySizes:
    """The policy's input and output sizes and the iteration a checkpoint says it was saved at (None: unknown)."""

    obs_dim: int | None
    action_dim: int | None
    iteration: int | None


class Library:
    """The base adapter: what is the same for every library, and the questions each one answers."""

    name: str = ""
    checkpoint_keys: tuple[str, ...] = ()
    """The top-level keys of the library's checkpoint dictionary (named in errors)."""
    reward_tags: tuple[str, ...] = ()
    """TensorBoard tags holding the mean episode reward, in order of preference."""
    length_tags: tuple[str, ...] = ()
    """TensorBoard tags holding the mean episode length."""
    secondary_axis_suffixes: tuple[str, ...] = ("/time",)
    """Tags logged against another x axis (seconds, epochs) than the main step; left out of metrics.csv."""
    epoch_axis_prefixes: tuple[str, ...] = ()
    """Tags logged at the (1-based) epoch instead of the main step; moved to the main step's axis."""
    needs_agent_config: bool = True
    """Whether the train command depends on the task's agent config (read from the registry before the run)."""

    def checkpoint_globals(self) -> list[Any]:
        """The Python types (beyond tensors, dicts, lists and numbers) the library's checkpoints hold: the only
        ones a checkpoint may name when it is loaded (``torch.load(weights_only=True)``)."""
        return []

    @property
    def agent_entry_point(self) -> str:
        """The gym registry kwarg naming the task's agent config for this library."""
        return LIBRARY_ENTRY_POINTS[self.name]

    def train_overrides(self, device: str, num_envs: int, max_iterations: int,
                        agent_cfg: Mapping[str, Any] | None) -> list[str]:
        """Hydra overrides ``isaaclab train`` needs for this library (its device setting, batch fixes, ...)."""
        return []

    def progress_unit(self, agent_cfg: Mapping[str, Any] | None) -> int | None:
        """How many units of the library's printed progress make one iteration (None: it prints iterations)."""
        return None

    def parse_progress(self, line: str, unit: int | None) -> Progress | None:
        """Progress told by one (ANSI-stripped) output line of the library's training, or None."""
        return None

    def detects(self, data: Mapping[str, Any]) -> bool:
        """Whether a loaded checkpoint dictionary has this library's format."""
        return False

    def policy_sizes(self, data: Mapping[str, Any], path: Path) -> PolicySizes:
        """The policy's sizes and saved iteration, read from a checkpoint of this library."""
        return PolicySizes(None, None, None)

    def run_checkpoints(self, run_dir: Path) -> list[RunCheckpoint]:
        """Every checkpoint the library saved in its run directory, with its training iteration."""
        return []

    def written_checkpoint_number(self, name: str) -> int | None:
        """The number in a checkpoint file name as this library writes it (an iteration, epoch or timestep)."""
        return None

    def iteration_from_file(self, path: Path) -> int | None:
        """The iteration a checkpoint file of this library was saved at, where only its name and run say it."""
        return None

    def steps_per_iteration(self, run_dir: Path) -> int:
        """How many units of the library's TensorBoard step make one training iteration."""
        return 1

    def resume_max_iterations(self, checkpoint_iteration: int, more_iterations: int) -> int:
        """``--max_iterations`` that trains ``more_iterations`` past a checkpoint: a count for most libraries."""
        return more_iterations

    def iterations_done(self, checkpoint_iteration: int) -> int:
        """How many training iterations a checkpoint saved at ``checkpoint_iteration`` has behind it (a count for
        most libraries; what a retried attempt subtracts from the job's total)."""
        return checkpoint_iteration

    def resume_iteration_offset(self, checkpoint_iteration: int) -> int:
        """What to add to a resumed run's own iteration numbers (0 where the library continues them itself)."""
        return 0

    def resumed_checkpoint(self, data: Mapping[str, Any], checkpoint_iteration: int) -> Mapping[str, Any] | None:
        """The checkpoint a resumed run should load so it numbers its iterations on; None: the file as it is."""
        return None


def read_params(run_dir: Path, name: str) -> dict:
    """``<run>/params/<name>.yaml`` as plain values (Isaac Lab's python/object tags are skipped), {} if absent."""
    import yaml

    path = run_dir / "params" / f"{name}.yaml"
    if not path.exists():
        return {}

    class Lenient(yaml.SafeLoader):
        """Skips every tag it does not know."""

    Lenient.add_multi_constructor("", lambda loader, suffix, node: None)
    loaded = yaml.load(path.read_text(), Loader=Lenient)
    return loaded if isinstance(loaded, dict) else {}


def state_dict(data: Mapping[str, Any], key: str, path: Path) -> Mapping[str, Any]:
    """The weights under ``key``, or a PolicyError naming the incomplete file."""
    from workbench.errors import PolicyError

    value = data.get(key)
    if not isinstance(value, Mapping) or not value:
        raise PolicyError(f"policy checkpoint {path.name} has no weights under {key!r}; the file is incomplete")
    return value


def first_linear_inputs(state: Mapping[str, Any], prefix: str) -> int | None:
    """The input width of the first linear layer under ``prefix``."""
    weights = [v for k, v in state.items() if k.startswith(prefix) and k.endswith(".weight") and getattr(v, "ndim", 0) == 2]
    return int(weights[0].shape[1]) if weights else None


def last_dim(tensor: Any) -> int | None:
    return int(tensor.shape[-1]) if tensor is not None else None


def int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def numbered(pattern: re.Pattern[str], name: str) -> int | None:
    match = pattern.match(name)
    return int(match.group(1)) if match else None
