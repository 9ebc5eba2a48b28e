"""Command lines for the child process: ``isaaclab train`` per library and device, our evaluation loop and our
policy export."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.libraries import library
from workbench.runner.inputs.assets import asset_root_for
from workbench.spec import paths
from workbench.spec.document import JobSpec


def format_override(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    return f"{key}={value}"


def train_arguments(spec: JobSpec, device: str, run_timestamp: str, agent_cfg: Mapping[str, Any] | None) -> list[str]:
    """The ``isaaclab train`` arguments (after ``train``) for a training spec."""
    training = spec.training
    args = [
        "--rl_library", spec.rl_library,
        "--task", spec.task,
        "--num_envs", str(training["numEnvs"]),
        "--max_iterations", str(training["maxIterations"]),
        "--device", device,
        "--run_timestamp", run_timestamp,
    ]
    if training["seed"] is not None:
        args += ["--seed", str(training["seed"])]
    if training.get("recordVideo"):
        args += ["--video", "--viz", "newton_gl"]
    overrides = library(spec.rl_library).train_overrides(device, training["numEnvs"], training["maxIterations"], agent_cfg)
    return args + overrides + [format_override(k, v) for k, v in training["overrides"].items()]


def isaaclab_command(subcommand: str, arguments: list[str]) -> list[str]:
    """``python -m isaaclab <subcommand> ...`` with this interpreter (the job's venv)."""
    return [sys.executable, "-m", "isaaclab", subcommand, *arguments]


def evaluate_command(arguments: list[str]) -> list[str]:
    """Our bounded evaluation loop (``workbench.runner.evaluation.loop``) with this interpreter."""
    return [sys.executable, "-m", "workbench.runner.evaluation.loop", *arguments]


def export_command(spec: JobSpec, checkpoint: Path, output_dir: Path) -> list[str]:
    """Our policy export (``workbench.runner.evaluation.export``) of a training's ``checkpoint`` into ``output_dir``,
    with the training's overrides (they may shape the task's observations or the policy's network)."""
    args = ["--task", spec.task, "--rl-library", spec.rl_library, "--checkpoint", str(checkpoint),
            "--output-dir", str(output_dir)]
    for key, value in spec.training["overrides"].items():
        args += ["--override", format_override(key, value)]
    return [sys.executable, "-m", "workbench.runner.evaluation.export", *args]


def job_environment(task: str, assets: str) -> dict[str, str]:
    """Variables every job's child gets: the Warp, CUDA, matplotlib and XDG caches under the workbench home and the
    asset root.

    ``assets`` is ``offline`` (the local root, built if needed), ``nucleus`` or the path of a user-provided tree.
    """
    caches = {"WARP_CACHE_PATH": paths.warp_cache_dir(), "CUDA_CACHE_PATH": paths.cuda_cache_dir(),
              "MPLCONFIGDIR": paths.matplotlib_config_dir(), "XDG_CACHE_HOME": paths.xdg_cache_dir()}
    for directory in caches.values():
        directory.mkdir(parents=True, exist_ok=True)
    env = {name: str(directory) for name, directory in caches.items()}
    env["CUDA_CACHE_MAXSIZE"] = "4294967296"
    if assets in ("nucleus", "offline"):
        env.update(asset_root_for(task, paths.assets_dir(), mode=assets))
    else:
        env.update(asset_root_for(task, Path(assets), mode="custom"))
    return env


def child_environment(base: Mapping[str, str], extra: Mapping[str, str], pythonpath: list[str]) -> dict[str, str]:
    """The child's environment: ours plus ``extra``, job-private ``pythonpath`` entries first, unbuffered output."""
    env = {k: v for k, v in base.items() if k != "WORKBENCH_TASK_TOKEN"}
    env.update(extra)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *filter(None, [base.get("PYTHONPATH", "")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("NCCL_NVLS_ENABLE", "0")
    env.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
    env.setdefault("NVSHMEM_DISABLE_NVLS", "1")
    return env


def evaluate_arguments(spec: JobSpec, device: str, checkpoint: Path, output_dir: Path) -> list[str]:
    """Arguments of ``python -m workbench.runner.evaluation.loop`` for an evaluation spec."""
    training = spec.training
    args = [
        "--task", spec.task,
        "--rl-library", spec.rl_library,
        "--checkpoint", str(checkpoint),
        "--num-envs", str(training["numEnvs"]),
        "--num-episodes", str(training["numEpisodes"]),
        "--steps-per-episode", str(training["stepsPerEpisode"]),
        "--device", device,
        "--output-dir", str(output_dir),
    ]
    if training["seed"] is not None:
        args += ["--seed", str(training["seed"])]
    if training["recordVideo"]:
        args += [
            "--record-video",
            "--video-width", str(training["videoWidth"]),
            "--video-height", str(training["videoHeight"]),
            "--video-episodes", str(training["videoEpisodes"]),
        ]
    for key, value in training["overrides"].items():
        args += ["--override", format_override(key, value)]
    return args
