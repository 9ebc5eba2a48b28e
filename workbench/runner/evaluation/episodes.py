"""Episode bookkeeping for a bounded evaluation over vectorized environments.

Which episodes count is fixed before the first step, so results do not depend on which environments happen to
finish first: each environment has a quota and counts its first ``quota`` episodes. An episode that reaches the
step limit without ending is counted as truncated there; the environment's remaining steps in that episode are
ignored until the environment resets it.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

import torch

from workbench.outputs.layout import EPISODE_COLUMNS as COLUMNS


@dataclass
class Episode:
    """One counted episode."""

    episode: int
    env_index: int
    return_: float
    length: int
    success: bool
    truncated: bool
    video: str = ""

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        row["return"] = row.pop("return_")
        return {key: row[key] for key in COLUMNS}


def episode_quotas(num_episodes: int, num_envs: int, first_env_episodes: int = 0) -> list[int]:
    """How many episodes each environment counts; trailing environments with nothing to count are dropped.

    Environment 0 takes ``first_env_episodes`` (the recorded ones) first; the rest go round-robin over the other
    environments (over all of them when there is only one, or nothing is recorded).
    """
    if num_episodes < 1 or num_envs < 1:
        raise ValueError("num_episodes and num_envs must be positive")
    quotas = [0] * min(num_envs, num_episodes)
    first = min(first_env_episodes, num_episodes)
    quotas[0] = first
    others = list(range(1, len(quotas))) if first and len(quotas) > 1 else list(range(len(quotas)))
    for index in range(num_episodes - first):
        quotas[others[index % len(others)]] += 1
    while quotas[-1] == 0:
        quotas.pop()
    return quotas


class EpisodeCounter:
    """Accumulates per-environment returns and lengths from step results and emits counted episodes.

    ``success_on_time_out``: an episode succeeds when it is truncated (survives to the time or step limit) rather
    than terminated; otherwise the ``success`` flags given to :meth:`update` decide.
    """

    def __init__(
        self, quotas: list[int], max_steps: int, success_on_time_out: bool = True, device: torch.device | str = "cpu"
    ) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be positive")
        self.quotas = list(quotas)
        self.max_steps = max_steps
        self.success_on_time_out = success_on_time_out
        self.num_envs = len(quotas)
        self.returns = torch.zeros(self.num_envs, dtype=torch.float64, device=device)
        self.lengths = torch.zeros(self.num_envs, dtype=torch.long, device=device)
        self.draining = [False] * self.num_envs
        self.ended = [False] * self.num_envs
        self.counted = [0] * self.num_envs
        self.episodes: list[Episode] = []
        self.steps = 0

    @property
    def done(self) -> bool:
        return all(c >= q for c, q in zip(self.counted, self.quotas))

    def update(
        self,
        rewards: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        success: torch.Tensor | None = None,
    ) -> list[Episode]:
        """Take one step's results (one value per environment); return the episodes counted by this step.

        Afterwards ``ended[i]`` says whether environment ``i``'s episode ended with this step (by the environment,
        or at the step limit), and ``draining[i]`` whether it is running out an episode already cut at the limit.
        """
        n = self.num_envs
        self.steps += 1
        self.returns += rewards[:n].to(self.returns.device, torch.float64)
        self.lengths += 1
        done = (terminated[:n] | truncated[:n]).cpu().tolist()
        at_limit = (self.lengths >= self.max_steps).cpu().tolist()
        self.ended = [False] * n
        if not any(done) and not any(at_limit):
            return []
        returns, lengths = self.returns.cpu().tolist(), self.lengths.cpu().tolist()
        truncated_flags = truncated[:n].cpu().tolist()
        success_flags = success[:n].cpu().tolist() if success is not None else [False] * n
        new: list[Episode] = []
        for i in range(n):
            if not (done[i] or at_limit[i]):
                continue
            if not self.draining[i]:
                self.ended[i] = True
                if self.counted[i] < self.quotas[i]:
                    cut = bool(truncated_flags[i]) or not done[i]
                    new.append(
                        Episode(
                            episode=len(self.episodes) + len(new),
                            env_index=i,
                            return_=returns[i],
                            length=lengths[i],
                            success=cut if self.success_on_time_out else bool(success_flags[i]),
                            truncated=cut,
                        )
                    )
                    self.counted[i] += 1
            self.draining[i] = not done[i]
            if done[i]:
                self.returns[i] = 0.0
                self.lengths[i] = 0
        self.episodes.extend(new)
        return new

    def summary(self) -> dict[str, Any]:
        """Mean/std/min/max return, mean length, success rate over the counted episodes."""
        returns = [e.return_ for e in self.episodes]
        lengths = [e.length for e in self.episodes]
        if not returns:
            return {"episodes": 0}
        return {
            "episodes": len(returns),
            "mean_return": statistics.fmean(returns),
            "std_return": statistics.pstdev(returns) if len(returns) > 1 else 0.0,
            "min_return": min(returns),
            "max_return": max(returns),
            "mean_length": statistics.fmean(lengths),
            "success_rate": sum(e.success for e in self.episodes) / len(returns),
        }


def loop_step_limit(quotas: list[int], max_steps: int, env_max_length: int | None) -> int:
    """An upper bound on loop steps: every counted episode ends within the step limit plus a drain."""
    drain = env_max_length if env_max_length and env_max_length > 0 else max_steps
    return max(quotas) * (max_steps + drain + 1) + 1 if quotas else 0
