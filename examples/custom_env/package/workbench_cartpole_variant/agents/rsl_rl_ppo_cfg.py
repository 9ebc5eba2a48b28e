"""rsl_rl PPO for the cartpole variant: Isaac Lab's cartpole runner with its own experiment name and schedule."""

from __future__ import annotations

from isaaclab.utils import configclass

from isaaclab_tasks.core.cartpole.agents.rsl_rl_ppo_cfg import CartpoleDirectPPORunnerCfg


@configclass
class CartpoleVariantPPORunnerCfg(CartpoleDirectPPORunnerCfg):
    experiment_name = "workbench_cartpole_variant"
    max_iterations = 200
    save_interval = 25

    def __post_init__(self):
        super().__post_init__()
        self.algorithm.entropy_coef = 0.01
        self.algorithm.learning_rate = 5.0e-4
