"""Export a trained policy for deployment: ``python -m workbench.runner.evaluation.export ...``.

The runner starts this program after a training succeeded. It builds a few environments of the task on the CPU
(the files are device-independent), loads the checkpoint with its library as an evaluation does, steps the
library's own deterministic actor a few times and records what the simulator received for each observation. The
library's actor, normalisation and clipping included, is then written as ONNX and as TorchScript, each file is
run on the recorded observations and must reproduce the recorded actions within ``TOLERANCE``, and only then
does ``exported/`` appear in ``--output-dir`` (written aside first, so a failed export leaves no partial files),
with ``policy.json`` describing both (:mod:`workbench.outputs.exported`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from workbench.errors import PolicyError
from workbench.libraries import LIBRARIES
from workbench.outputs import exported
from workbench.outputs.layout import EXPORTED
from workbench.runner.evaluation.agents import AGENTS
from workbench.runner.evaluation.environment import cfg_sizes, env_sizes, resolve_configs, run_program, task_environment
from workbench.runner.inputs.policy import CheckpointInfo, check_sizes, inspect_checkpoint, resolve_selector

CHECK_ENVS = 4
CHECK_STEPS = 4
SEED = 42
ONNX_OPSET = 18


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workbench.runner.evaluation.export",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--rl-library", required=True, choices=sorted(LIBRARIES))
    parser.add_argument("--checkpoint", required=True, help="checkpoint file, s3:// URI, or a job id")
    parser.add_argument("--output-dir", type=Path, required=True, help="where exported/ is written")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE", help="Hydra override (env.* / agent.*)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_program(lambda: f"exported the policy to {export(args)}", "policy export")


def export(args: argparse.Namespace) -> Path:
    """Export the checkpoint ``args`` names; returns the ``exported/`` directory written."""
    with tempfile.TemporaryDirectory(prefix="workbench-policy-") as download_dir:
        info = inspect_checkpoint(resolve_selector(args.checkpoint, Path(download_dir)), args.rl_library)
        actor, groups, observations, actions = _record(args, info)
    target = args.output_dir / EXPORTED
    partial = args.output_dir / exported.PARTIAL
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        differences = _write(actor, observations, actions, partial)
        description = {
            "task": args.task,
            "rl_library": args.rl_library,
            "checkpoint": info.path.name,
            "checkpoint_iteration": info.iteration,
            "observation_groups": groups,
            "observation_size": observations.shape[1],
            "action_size": actions.shape[1],
            "inputs": [{"name": exported.INPUT_NAME, "shape": ["batch", observations.shape[1]], "dtype": "float32"}],
            "outputs": [{"name": exported.OUTPUT_NAME, "shape": ["batch", actions.shape[1]], "dtype": "float32"}],
            "files": {"onnx": exported.ONNX, "torchscript": exported.TORCHSCRIPT},
            "onnx_opset": ONNX_OPSET,
            "max_abs_difference": differences,
            "tolerance": exported.TOLERANCE,
            "check": {"observations": observations.tolist(), "actions": actions.tolist()},
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (partial / exported.DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    print(f"exported {info.path.name}: ONNX within {differences['onnx']:.1e}, TorchScript within "
          f"{differences['torchscript']:.1e} of {args.rl_library}'s actions", flush=True)
    return target


def _record(args: argparse.Namespace, info: CheckpointInfo) -> tuple[torch.nn.Module, list[str], Any, Any]:
    """The library's actor as one module, its observation groups, and observations with the actions the simulator
    received for them while the library's own agent stepped the task."""
    env_cfg, agent_cfg = resolve_configs(args.task, args.rl_library, args.override)
    check_sizes(info, args.task, *cfg_sizes(env_cfg))
    env_cfg.scene.num_envs = CHECK_ENVS
    observations, actions = [], []
    with task_environment(args.task, env_cfg, "cpu", SEED) as recorder:
        check_sizes(info, args.task, *env_sizes(recorder.unwrapped))
        agent = AGENTS[args.rl_library](recorder, agent_cfg, info.path, "cpu", SEED)
        obs = agent.reset()
        with torch.inference_mode():
            for _ in range(CHECK_STEPS):
                observations.append(agent.observation(obs).detach().clone())
                obs = agent.step(obs)
                actions.append(torch.as_tensor(recorder.action).detach().clone())
        actor = agent.actor().eval()
    return actor, agent.observation_groups, torch.cat(observations).float(), torch.cat(actions).float()


def _write(actor: torch.nn.Module, observations: torch.Tensor, actions: torch.Tensor, directory: Path) -> dict:
    """Write ``actor`` as ONNX and TorchScript into ``directory`` and check both against the recorded actions;
    returns each file's largest difference."""
    import onnxruntime

    example = observations[:1].clone()
    onnx_path, script_path = directory / exported.ONNX, directory / exported.TORCHSCRIPT
    with torch.no_grad():
        torch.onnx.export(
            actor, (example,), str(onnx_path), dynamo=False, opset_version=ONNX_OPSET,
            input_names=[exported.INPUT_NAME], output_names=[exported.OUTPUT_NAME],
            dynamic_axes={exported.INPUT_NAME: {0: "batch"}, exported.OUTPUT_NAME: {0: "batch"}},
        )
        torch.jit.trace(actor, example, check_trace=False).save(str(script_path))
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        onnx_actions = torch.as_tensor(session.run(None, {exported.INPUT_NAME: observations.numpy()})[0])
        script_actions = torch.jit.load(str(script_path))(observations)
    differences = {
        "onnx": float((onnx_actions - actions).abs().max()),
        "torchscript": float((script_actions - actions).abs().max()),
    }
    for name, difference in differences.items():
        if not difference <= exported.TOLERANCE:
            raise PolicyError(
                f"the exported {name} policy differs from the library's actions by {difference:.2e} "
                f"(more than {exported.TOLERANCE:g}); nothing was exported"
            )
    return differences


if __name__ == "__main__":
    sys.exit(main())
