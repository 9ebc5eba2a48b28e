"""A cartpole variant registered as an external Isaac Lab task through the ``isaaclab.tasks`` entry point."""

import gymnasium as gym

TASK_ID = "Workbench-Cartpole-Variant-Direct"

gym.register(
    id=TASK_ID,
    entry_point="isaaclab_tasks.core.cartpole.cartpole_direct_env:CartpoleEnv",
    disable_env_checker=True,
    kwargs={
        "env_cfg_entry_point": f"{__name__}.env_cfg:CartpoleVariantEnvCfg",
        "rsl_rl_cfg_entry_point": f"{__name__}.agents.rsl_rl_ppo_cfg:CartpoleVariantPPORunnerCfg",
        "rl_games_cfg_entry_point": f"{__name__}.agents:rl_games_ppo_cfg.yaml",
        "skrl_cfg_entry_point": f"{__name__}.agents:skrl_ppo_cfg.yaml",
        "default_agent": "rsl_rl",
    },
)
