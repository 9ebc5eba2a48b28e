"""The variant's environment: Isaac Lab's direct cartpole with longer episodes and reshaped rewards.

It uses the same cartpole robot asset as ``Isaac-Cartpole-Direct``, so it runs on the workbench's offline asset root.
"""

from __future__ import annotations

from isaaclab.utils import configclass

from isaaclab_tasks.core.cartpole.cartpole_direct_env_cfg import CartpoleEnvCfg


@configclass
class CartpoleVariantEnvCfg(CartpoleEnvCfg):
    """Balance for 8 s instead of 5 s; staying upright pays more, falling costs more, the cart may roam less."""

    episode_length_s = 8.0
    max_cart_pos = 2.5
    rew_scale_alive = 2.0
    rew_scale_terminated = -5.0
    rew_scale_pole_pos = -2.0
    rew_scale_cart_vel = -0.02
    rew_scale_pole_vel = -0.01
