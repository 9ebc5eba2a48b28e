"""The policies an evaluation or an export runs, one adapter per RL library plus the exported ONNX file itself.

Each library agent steps the task through Isaac Lab's wrapper for its library, with the library's own loading
and deterministic (mean) actions, exactly as Isaac Lab's ``play`` does. ``observation(obs)`` is the flat policy
observation the library's view ``obs`` holds and ``actor()`` the deterministic actor as one ``torch.nn.Module``
from that observation to the action the simulator receives, the library's normalisation and the wrapper's
clipping included: the module :mod:`workbench.runner.evaluation.export` writes as ONNX and TorchScript.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from workbench.errors import PolicyError


class ClampedActor(torch.nn.Module):
    """A library's actor followed by the clipping its wrapper applies before the simulator sees the action."""

    def __init__(self, actor: Callable[[torch.Tensor], torch.Tensor], clip: float | None, modules: dict) -> None:
        super().__init__()
        self.parts = torch.nn.ModuleDict(modules)
        self._actor = actor
        self.clip = clip

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        actions = self._actor(observation)
        return actions if self.clip is None else torch.clamp(actions, -self.clip, self.clip)


class RslRlAgent:
    """An rsl_rl policy (``model_<n>.pt``) through Isaac Lab's RslRlVecEnvWrapper and runner."""

    def __init__(self, env: Any, agent_cfg: Any, path: Path, device: str, seed: int) -> None:
        from isaaclab_rl.rsl_rl import (
            RslRlVecEnvWrapper,
            check_rsl_rl_version,
            create_rsl_rl_runner,
            handle_deprecated_rsl_rl_cfg,
        )

        agent_cfg.device = device
        agent_cfg.seed = seed
        agent_cfg = handle_deprecated_rsl_rl_cfg(agent_cfg, check_rsl_rl_version())
        self.env = RslRlVecEnvWrapper(env, clip_actions=agent_cfg.clip_actions)
        runner = create_rsl_rl_runner(self.env, agent_cfg)
        load_weights(lambda: runner.load(str(path)), path, "rsl_rl")
        self.policy = runner.get_inference_policy(device=self.env.unwrapped.device)
        self.observation_groups = list(self.policy.obs_groups)

    def reset(self) -> Any:
        return self.env.get_observations()

    def step(self, obs: Any) -> Any:
        obs, _, dones, _ = self.env.step(self.policy(obs))
        self.policy.reset(dones)
        return obs

    def observation(self, obs: Any) -> torch.Tensor:
        return torch.cat([obs[group] for group in self.observation_groups], dim=-1)

    def actor(self) -> torch.nn.Module:
        if self.policy.is_recurrent:
            raise PolicyError("exporting a recurrent rsl_rl policy is not supported (its hidden state is not exported)")
        mlp = self.policy.as_jit()
        return ClampedActor(mlp, self.env.clip_actions, {"policy": mlp})


class RlGamesAgent:
    """An rl_games policy (``.pth``) through Isaac Lab's RlGamesVecEnvWrapper and rl_games' player."""

    def __init__(self, env: Any, agent_cfg: dict, path: Path, device: str, seed: int) -> None:
        from isaaclab.utils import index_fill_
        from isaaclab_rl.rl_games import RlGamesVecEnvWrapper, register_rl_games_env
        from rl_games.torch_runner import Runner

        params = agent_cfg["params"]
        params["seed"] = seed
        params["config"].update(device=device, device_name=device)
        self.env = RlGamesVecEnvWrapper.from_agent_cfg(env, agent_cfg)
        register_rl_games_env(self.env)
        params["load_checkpoint"] = True
        params["load_path"] = str(path)
        params["config"]["num_actors"] = self.env.unwrapped.num_envs
        runner = Runner()
        runner.load(agent_cfg)
        self.player = runner.create_player()
        load_weights(lambda: self.player.restore(str(path)), path, "rl_games")
        self.player.reset()
        self.observation_groups = list(self.env._obs_groups["obs"])
        self._index_fill = index_fill_

    def reset(self) -> Any:
        obs = self.env.reset()
        obs = obs["obs"] if isinstance(obs, dict) else obs
        self.player.get_batch_size(obs, 1)
        if self.player.is_rnn:
            self.player.init_rnn()
        return obs

    def step(self, obs: Any) -> Any:
        actions = self.player.get_action(self.player.obs_to_torch(obs), is_deterministic=True)
        obs, _, dones, _ = self.env.step(actions)
        if self.player.is_rnn and self.player.states is not None and len(dones) > 0:
            for state in self.player.states:
                self._index_fill(state, dones, 0.0, dim=1)
        return obs["obs"] if isinstance(obs, dict) else obs

    def observation(self, obs: Any) -> torch.Tensor:
        if not isinstance(obs, torch.Tensor):
            raise PolicyError("exporting an rl_games policy over separate observation groups is not supported")
        return obs

    def actor(self) -> torch.nn.Module:
        from rl_games.algos_torch.players import rescale_actions

        player = self.player
        if player.is_rnn:
            raise PolicyError("exporting a recurrent rl_games policy is not supported (its state is not exported)")
        network = player.model.a2c_network
        normalizer = RlGamesNormalizer(player.model.running_mean_std) if player.normalize_input else torch.nn.Identity()
        clip_obs = float(self.env._clip_obs)

        def act(observation: torch.Tensor) -> torch.Tensor:
            observation = normalizer(torch.clamp(observation, -clip_obs, clip_obs))
            mu = network({"obs": observation})[0]
            if player.clip_actions:
                mu = rescale_actions(player.actions_low, player.actions_high, torch.clamp(mu, -1.0, 1.0))
            return mu

        return ClampedActor(act, float(self.env._clip_actions), {"network": network, "normalizer": normalizer})


class RlGamesNormalizer(torch.nn.Module):
    """rl_games' observation normalisation at inference (its ``RunningMeanStd`` is a TorchScript module, which
    neither tracing nor the ONNX exporter can follow): the same statistics and arithmetic."""

    def __init__(self, statistics: Any) -> None:
        super().__init__()
        if statistics.per_channel:
            raise PolicyError("exporting an rl_games policy with per-channel observation statistics is not supported")
        self.register_buffer("mean", statistics.running_mean.detach().clone().float())
        self.register_buffer("var", statistics.running_var.detach().clone().float())
        self.epsilon = float(statistics.epsilon)
        self.norm_only = bool(statistics.norm_only)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        if self.norm_only:
            return observation / torch.sqrt(self.var + self.epsilon)
        return torch.clamp((observation - self.mean) / torch.sqrt(self.var + self.epsilon), min=-5.0, max=5.0)


class SkrlAgent:
    """A skrl policy (``agent_<n>.pt``) through Isaac Lab's SkrlVecEnvWrapper and skrl's runner."""

    def __init__(self, env: Any, agent_cfg: dict, path: Path, device: str, seed: int) -> None:
        from isaaclab_rl.skrl import SkrlVecEnvWrapper, import_skrl_runner

        agent_cfg["seed"] = seed
        agent_cfg["trainer"]["close_environment_at_exit"] = False
        experiment = agent_cfg["agent"]["experiment"]
        experiment["write_interval"] = 0
        experiment["checkpoint_interval"] = 0
        self.env = SkrlVecEnvWrapper(env, ml_framework="torch")
        runner = import_skrl_runner("torch")(self.env, agent_cfg)
        self.agent = runner.agent
        load_weights(lambda: self.agent.load(str(path)), path, "skrl")
        self.agent.enable_training_mode(False, apply_to_models=True)
        self.observation_groups = ["policy"]

    def reset(self) -> Any:
        obs, _ = self.env.reset()
        return obs

    def step(self, obs: Any) -> Any:
        outputs = self.agent.act(obs, self.env.state(), timestep=0, timesteps=0)
        obs, *_ = self.env.step(outputs[-1].get("mean_actions", outputs[0]))
        return obs

    def observation(self, obs: Any) -> torch.Tensor:
        return obs

    def actor(self) -> torch.nn.Module:
        agent = self.agent
        if self.env.state() is not None:
            raise PolicyError("exporting a skrl policy that also reads the critic's states is not supported")
        policy, preprocessor = agent.policy, agent._observation_preprocessor

        def act(observation: torch.Tensor) -> torch.Tensor:
            mean, _ = policy.compute({"observations": preprocessor(observation), "states": None}, role="policy")
            if policy._g_clip_mean_actions:
                mean = torch.clamp(mean, min=policy._g_min_actions, max=policy._g_max_actions)
            return mean

        modules = {"policy": policy}
        if isinstance(preprocessor, torch.nn.Module):
            modules["preprocessor"] = preprocessor
        return ClampedActor(act, None, modules)


class OnnxAgent:
    """An exported ``policy.onnx`` run with onnxruntime on the raw environment: what a robot would run."""

    def __init__(self, env: Any, path: Path, observation_groups: list[str]) -> None:
        import onnxruntime

        self.env = env
        self.observation_groups = observation_groups
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise PolicyError(f"onnxruntime cannot load {path.name}: {exc}") from exc
        self.input_name = self.session.get_inputs()[0].name

    def reset(self) -> Any:
        obs, _ = self.env.reset()
        return obs

    def step(self, obs: Any) -> Any:
        observation = self.observation(obs)
        actions = self.session.run(None, {self.input_name: observation.detach().cpu().numpy()})[0]
        obs, *_ = self.env.step(torch.as_tensor(actions, device=observation.device))
        return obs

    def observation(self, obs: Any) -> torch.Tensor:
        return torch.cat([obs[group] for group in self.observation_groups], dim=-1)


def load_weights(load: Callable[[], Any], path: Path, library: str) -> None:
    """Load weights into the library's model; a mismatch becomes a :class:`PolicyError` with the library's words."""
    try:
        load()
    except (RuntimeError, KeyError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolicyError(f"{library} cannot load {path.name} into the task's policy network: {first_line}") from exc


AGENTS: dict[str, type] = {"rsl_rl": RslRlAgent, "rl_games": RlGamesAgent, "skrl": SkrlAgent}
