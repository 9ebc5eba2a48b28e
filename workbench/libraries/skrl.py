"""skrl: ``checkpoints/agent_<timestep>.pt`` (best: ``best_agent.pt``) holding one state dict per module; a tqdm bar
of timesteps; TensorBoard steps in timesteps. skrl counts in timesteps, ``agent.rollouts`` of them per iteration,
and a resumed trainer counts from 0 again (skrl 2.1.1 has no initial timestep)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.libraries import base
from workbench.libraries.base import Library, PolicySizes, RunCheckpoint
from workbench.spec.status import Progress

_CHECKPOINT = re.compile(r"^agent_(\d+)\.pt$")
_LAYOUT_CHECKPOINT = re.compile(r"^model_(\d+)\.pt$")
_TQDM = re.compile(r"(\d+)/(\d+) \[")


class Skrl(Library):
    name = "skrl"
    checkpoint_keys = ("policy",)
    reward_tags = ("Reward / Total reward (mean)",)
    length_tags = ("Episode / Total timesteps (mean)",)

    def train_overrides(self, device: str, num_envs: int, max_iterations: int,
                        agent_cfg: Mapping[str, Any] | None) -> list[str]:
        """One TensorBoard row per iteration and ~10 checkpoints on iteration boundaries."""
        rollouts = self.progress_unit(agent_cfg)
        if rollouts is None:
            return []
        every = rollouts * max(1, max_iterations // 10)
        return [f"agent.agent.experiment.write_interval={rollouts}",
                f"agent.agent.experiment.checkpoint_interval={every}"]

    def progress_unit(self, agent_cfg: Mapping[str, Any] | None) -> int | None:
        rollouts = (agent_cfg or {}).get("agent", {}).get("rollouts")
        return rollouts if isinstance(rollouts, int) and rollouts > 0 else None

    def parse_progress(self, line: str, unit: int | None) -> Progress | None:
        matches = _TQDM.findall(line)
        if not matches:
            return None
        timestep, total = (int(v) for v in matches[-1])
        if unit:
            return Progress(iteration=timestep // unit, max_iterations=max(1, total // unit))
        return Progress(iteration=timestep, max_iterations=total)

    def detects(self, data: Mapping[str, Any]) -> bool:
        return "policy" in data

    def policy_sizes(self, data: Mapping[str, Any], path: Path) -> PolicySizes:
        state = base.state_dict(data, "policy", path)
        preprocessor = data.get("observation_preprocessor") or data.get("state_preprocessor")
        mean = preprocessor.get("running_mean") if isinstance(preprocessor, Mapping) else None
        obs_dim = base.last_dim(mean) if mean is not None else base.first_linear_inputs(state, "net_container.")
        return PolicySizes(obs_dim, base.last_dim(state.get("log_std_parameter")), base.numbered(_LAYOUT_CHECKPOINT, path.name))

    def run_checkpoints(self, run_dir: Path) -> list[RunCheckpoint]:
        rollouts = self.rollouts(run_dir)
        found = []
        for path in (run_dir / "checkpoints").glob("*.pt"):
            if (timestep := base.numbered(_CHECKPOINT, path.name)) is not None:
                found.append(RunCheckpoint(path, timestep // rollouts))
            elif path.name == "best_agent.pt":
                found.append(RunCheckpoint(path, None))
        return found

    def written_checkpoint_number(self, name: str) -> int | None:
        return base.numbered(_CHECKPOINT, name)

    def iteration_from_file(self, path: Path) -> int | None:
        """``<run>/checkpoints/agent_<timestep>.pt``: the timestep over the run's rollouts, if its params are there."""
        timestep = base.numbered(_CHECKPOINT, path.name)
        run_dir = path.parent.parent
        if timestep is None or not (run_dir / "params" / "agent.yaml").is_file():
            return None
        return timestep // self.rollouts(run_dir)

    def steps_per_iteration(self, run_dir: Path) -> int:
        return self.rollouts(run_dir)

    def rollouts(self, run_dir: Path) -> int:
        """``agent.rollouts`` in the run's params (timesteps per iteration), 1 if unknown."""
        return self.progress_unit(base.read_params(run_dir, "agent")) or 1

    def resume_iteration_offset(self, checkpoint_iteration: int) -> int:
        return checkpoint_iteration
