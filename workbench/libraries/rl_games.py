"""rl_games: ``nn/last_<name>_ep_<epoch>_rew_<r>.pth`` (best: ``nn/<name>.pth``) holding ``model``, ``epoch`` and
``frame``; ``fps step ... epoch: e/n`` lines; TensorBoard steps in frames (epoch x horizon x envs)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.libraries import base
from workbench.libraries.base import Library, PolicySizes, RunCheckpoint
from workbench.spec.status import Progress

_CHECKPOINT = re.compile(r"^last_.+_ep_(\d+)_rew_.*\.pth$")
_EPOCH_IN_NAME = re.compile(r"_ep_(\d+)")
_PROGRESS = re.compile(r"fps step: (\d+) .*fps total: (\d+) epoch: (\d+)(?:/(\d+))?")


class RlGames(Library):
    name = "rl_games"
    checkpoint_keys = ("model", "epoch")
    reward_tags = ("rewards/step",)
    length_tags = ("episode_lengths/step",)
    secondary_axis_suffixes = ("/time", "/iter")
    epoch_axis_prefixes = ("Episode/",)

    def checkpoint_globals(self) -> list[Any]:
        """rl_games keeps numpy scalars in its checkpoints (``last_mean_rewards`` and the like)."""
        import numpy as np

        return [np._core.multiarray.scalar, np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType,
                np.dtypes.Int64DType, np.dtypes.Int32DType, np.dtypes.BoolDType]

    def train_overrides(self, device: str, num_envs: int, max_iterations: int,
                        agent_cfg: Mapping[str, Any] | None) -> list[str]:
        overrides = [f"agent.params.config.device={device}", f"agent.params.config.device_name={device}"]
        minibatch = fitting_minibatch(num_envs, agent_cfg)
        if minibatch is not None:
            overrides.append(f"agent.params.config.minibatch_size={minibatch}")
        return overrides

    def parse_progress(self, line: str, unit: int | None) -> Progress | None:
        match = _PROGRESS.search(line)
        if not match:
            return None
        return Progress(iteration=int(match.group(3)), max_iterations=int(match.group(4)) if match.group(4) else None,
                        steps_per_second=float(match.group(2)))

    def detects(self, data: Mapping[str, Any]) -> bool:
        return "model" in data and "epoch" in data

    def policy_sizes(self, data: Mapping[str, Any], path: Path) -> PolicySizes:
        state = {k.removeprefix("_orig_mod."): v for k, v in base.state_dict(data, "model", path).items()}
        mean = state.get("running_mean_std.running_mean")
        obs_dim = base.last_dim(mean) if mean is not None else base.first_linear_inputs(state, "a2c_network.actor_mlp.")
        mu = state.get("a2c_network.mu.weight")
        return PolicySizes(obs_dim, int(mu.shape[0]) if mu is not None else None, base.int_or_none(data.get("epoch")))

    def run_checkpoints(self, run_dir: Path) -> list[RunCheckpoint]:
        found = []
        for path in (run_dir / "nn").glob("*.pth"):
            match = _CHECKPOINT.match(path.name)
            found.append(RunCheckpoint(path, int(match.group(1)) if match else None))
        return found

    def written_checkpoint_number(self, name: str) -> int | None:
        match = _EPOCH_IN_NAME.search(name.removesuffix(".pth")) if name.endswith(".pth") else None
        return int(match.group(1)) if match else None

    def steps_per_iteration(self, run_dir: Path) -> int:
        horizon = base.read_params(run_dir, "agent").get("params", {}).get("config", {}).get("horizon_length")
        num_envs = base.read_params(run_dir, "env").get("scene", {}).get("num_envs")
        if isinstance(horizon, int) and isinstance(num_envs, int):
            return max(1, horizon * num_envs)
        return 1

    def resume_max_iterations(self, checkpoint_iteration: int, more_iterations: int) -> int:
        """rl_games' ``max_epochs`` is a total, not a count of new epochs."""
        return checkpoint_iteration + more_iterations


def fitting_minibatch(num_envs: int, agent_cfg: Mapping[str, Any] | None) -> int | None:
    """A minibatch size that divides rl_games' batch (num_envs x horizon), or None when the default fits."""
    config = (agent_cfg or {}).get("params", {}).get("config", {})
    horizon, minibatch = config.get("horizon_length"), config.get("minibatch_size")
    if not isinstance(horizon, int) or not isinstance(minibatch, int):
        return None
    batch = num_envs * horizon
    if minibatch <= batch and batch % minibatch == 0:
        return None
    best = 1
    for divisor in range(1, math.isqrt(batch) + 1):
        if batch % divisor == 0:
            for candidate in (divisor, batch // divisor):
                if best < candidate <= minibatch:
                    best = candidate
    return best
