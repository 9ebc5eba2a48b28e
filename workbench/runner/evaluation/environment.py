"""The task's environment for our own programs (the evaluation loop and the policy export), built the way
``isaaclab play`` builds it: Isaac Lab's config resolution, its launcher and its environment factory.

Both programs end the same way for the runner: a known failure prints ``WORKBENCH_ERROR <reason>`` and exits 2,
any other exits 1 with its traceback (:func:`run_program`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym

from workbench.errors import EvaluationError, RunnerError
from workbench.libraries import library


def run_program(work: Callable[[], str], what: str) -> int:
    """Run ``work`` (it returns the closing line to print) as a program's main; its exit status."""
    try:
        closing = work()
    except RunnerError as exc:
        print(f"WORKBENCH_ERROR {exc}", flush=True)
        return 2
    except Exception as exc:  # noqa: BLE001 - an unexpected failure still ends with a reason the runner can report
        traceback.print_exc()
        print(f"WORKBENCH_ERROR {what} crashed: {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(closing, flush=True)
    return 0


def resolve_configs(task: str, library_name: str, overrides: list[str]) -> tuple[Any, Any]:
    """The task's environment config and its agent config for ``library_name``, as ``play`` resolves them."""
    import isaaclab_tasks  # noqa: F401  (registers the tasks)
    from isaaclab.cli import load_external_tasks
    from isaaclab_tasks.utils import resolve_task_config

    load_external_tasks()  # a custom package's tasks (isaaclab.tasks entry points on the job's PYTHONPATH)
    entry_point = library(library_name).agent_entry_point
    try:
        return resolve_task_config(task, entry_point, play_mode=True, overrides=list(overrides))
    except Exception as exc:  # unknown task, missing agent config, bad override
        raise EvaluationError(f"cannot build task {task!r} for {library_name}: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def task_environment(task: str, env_cfg: Any, device: str, seed: int) -> Iterator[StepRecorder]:
    """The task's environment (``env_cfg.scene.num_envs`` of them, on ``device``) behind a :class:`StepRecorder`,
    closed when the block ends; the global seed is set last, as ``play`` sets it before building the agent."""
    from isaaclab.app import add_launcher_args, launch_simulation

    env_cfg.sim.device = device
    env_cfg.seed = seed
    launcher = argparse.ArgumentParser(add_help=False)
    add_launcher_args(launcher)
    launcher_args = launcher.parse_args(["--device", device])
    launcher_args.num_envs = env_cfg.scene.num_envs
    with launch_simulation(env_cfg, launcher_args), contextlib.ExitStack() as cleanup:
        from isaaclab.utils.seed import configure_seed
        from isaaclab_rl.entrypoints.common import close_env, create_isaaclab_env

        launcher_args.frontend = "torch"
        env = create_isaaclab_env(task, env_cfg, launcher_args, convert_marl_to_single_agent=True)
        cleanup.callback(lambda: close_env(env))
        configure_seed(seed)
        yield StepRecorder(env)


class StepRecorder(gym.Wrapper):
    """Remembers each step's action and raw rewards and done flags (the library wrappers hide them): the episode
    counter reads the outcome, the export compares the action the simulator received."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.last: tuple[Any, Any, Any] | None = None
        self.action: Any = None

    def step(self, action: Any) -> Any:
        self.action = action
        obs, rewards, terminated, truncated, extras = self.env.step(action)
        self.last = (rewards, terminated, truncated)
        return obs, rewards, terminated, truncated, extras


def _space_size(space: Any) -> int | None:
    if isinstance(space, int):
        return space
    shape = getattr(space, "shape", None)
    return int(math.prod(shape)) if shape else None


def cfg_sizes(env_cfg: Any) -> tuple[int | None, int | None]:
    """The policy observation and action sizes a task's config declares (None where it does not say)."""
    return _space_size(getattr(env_cfg, "observation_space", None)), _space_size(getattr(env_cfg, "action_space", None))


def env_sizes(env: Any) -> tuple[int | None, int | None]:
    """The policy observation and action sizes of a built environment."""
    observations = env.single_observation_space
    policy_space = observations["policy"] if "policy" in getattr(observations, "spaces", {}) else observations
    return _space_size(policy_space), _space_size(env.single_action_space)
