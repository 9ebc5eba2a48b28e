"""rsl_rl: ``model_<iteration>.pt`` files holding ``actor_state_dict`` (or ``model_state_dict``), the optimizer and
``iter``; an iteration report of ``Learning iteration i/n`` followed by labelled lines."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.libraries import base
from workbench.libraries.base import Library, PolicySizes, RunCheckpoint
from workbench.spec.status import Progress

_CHECKPOINT = re.compile(r"^model_(\d+)\.pt$")
_ITERATION = re.compile(r"Learning iteration (\d+)/(\d+)")
_FIELDS = {"Steps per second:": "steps_per_second", "Mean reward:": "mean_reward",
           "Mean episode length:": "mean_episode_length"}


class RslRl(Library):
    name = "rsl_rl"
    checkpoint_keys = ("actor_state_dict", "iter")
    reward_tags = ("Train/mean_reward",)
    length_tags = ("Train/mean_episode_length",)
    needs_agent_config = False

    def train_overrides(self, device: str, num_envs: int, max_iterations: int,
                        agent_cfg: Mapping[str, Any] | None) -> list[str]:
        return [f"agent.device={device}"]

    def parse_progress(self, line: str, unit: int | None) -> Progress | None:
        if match := _ITERATION.search(line):
            return Progress(iteration=int(match.group(1)) + 1, max_iterations=int(match.group(2)))
        for label, key in _FIELDS.items():
            if line.startswith(label):
                number = re.match(base.NUMBER, line[len(label):].strip())
                return Progress(**{key: float(number.group(1))}) if number else None
        return None

    def detects(self, data: Mapping[str, Any]) -> bool:
        return "actor_state_dict" in data or ("iter" in data and "model_state_dict" in data)

    def policy_sizes(self, data: Mapping[str, Any], path: Path) -> PolicySizes:
        state = base.state_dict(data, "actor_state_dict" if "actor_state_dict" in data else "model_state_dict", path)
        obs_dim = base.first_linear_inputs(state, "mlp.") or base.first_linear_inputs(state, "actor.")
        return PolicySizes(obs_dim, base.last_dim(state.get("distribution.std_param", state.get("std"))),
                           base.int_or_none(data.get("iter")))

    def run_checkpoints(self, run_dir: Path) -> list[RunCheckpoint]:
        return [RunCheckpoint(p, n) for p in run_dir.glob("model_*.pt") if (n := base.numbered(_CHECKPOINT, p.name)) is not None]

    def written_checkpoint_number(self, name: str) -> int | None:
        return base.numbered(_CHECKPOINT, name)

    def iterations_done(self, checkpoint_iteration: int) -> int:
        """rsl_rl numbers iterations from 0: ``model_<i>.pt`` has iterations 0 .. i behind it."""
        return checkpoint_iteration + 1

    def resumed_checkpoint(self, data: Mapping[str, Any], checkpoint_iteration: int) -> Mapping[str, Any] | None:
        """rsl_rl saves ``iter`` = the iteration it just completed and ``learn`` starts at ``iter``: a resumed run
        would repeat that number (a duplicate TensorBoard step, the same ``model_<n>.pt`` name), so the job's copy
        says ``iter + 1``."""
        return {**data, "iter": checkpoint_iteration + 1}
