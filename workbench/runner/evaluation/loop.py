"""Bounded, seeded evaluation of a trained policy: ``python -m workbench.runner.evaluation.loop ...``.

Isaac Lab's ``play`` never stops on its own and prints no metrics, so the runner launches this program for
``mode == "evaluate"``. It builds the task's environment the way ``isaaclab play`` does (Isaac Lab's own config
resolution, launcher and library wrappers), loads the policy with its library (or an exported ``policy.onnx``
with onnxruntime, on the raw environment: what will be deployed), and steps ``--num-envs``
environments until exactly ``--num-episodes`` episodes are counted, each cut at ``--steps-per-episode`` steps.

Which episodes count is fixed up front (see :mod:`workbench.runner.evaluation.episodes`): environment 0 counts the recorded
episodes, the others share the rest round-robin, and no more environments are simulated than there are episodes to
count. Actions are the policies' deterministic (mean) actions; the same seed gives the same episodes.

Writes into ``--output-dir``: ``metrics.csv`` (one row per episode), ``evaluation-summary.json`` and, with
``--record-video``, ``videos/episode_<n>.mp4`` (the first ``--video-episodes`` episodes of environment 0).
Progress goes to stdout as ``WORKBENCH_PROGRESS {...}`` lines; a known failure ends with ``WORKBENCH_ERROR <reason>``
and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.errors import EvaluationError
from workbench.libraries import LIBRARIES
from workbench.outputs import exported
from workbench.runner.evaluation.agents import AGENTS, OnnxAgent
from workbench.runner.evaluation.environment import cfg_sizes, env_sizes, resolve_configs, run_program, task_environment
from workbench.runner.evaluation.episodes import COLUMNS, Episode, EpisodeCounter, episode_quotas, loop_step_limit
from workbench.runner.inputs.policy import CheckpointInfo, check_sizes, inspect_checkpoint, resolve_selector

DEFAULT_SEED = 42
PROGRESS_INTERVAL_S = 1.0
QUIET_PROGRESS_INTERVAL_S = 30.0
"""Long episodes still report steps/s this often, so the runner sees the evaluation advancing."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workbench.runner.evaluation.loop", description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--rl-library", required=True, choices=sorted(LIBRARIES))
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or directory, s3:// URI, or a job id")
    parser.add_argument("--num-envs", type=int, required=True)
    parser.add_argument("--num-episodes", type=int, required=True)
    parser.add_argument("--steps-per-episode", type=int, required=True)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda:<n>")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--record-video", action="store_true")
    parser.add_argument("--video-width", type=int, default=640)
    parser.add_argument("--video-height", type=int, default=360)
    parser.add_argument("--video-episodes", type=int, default=2)
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE", help="Hydra override (env.* / agent.*)"
    )
    args = parser.parse_args(argv)
    for name in ("num_envs", "num_episodes", "steps_per_episode", "video_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    # H.264 with yuv420p needs even dimensions
    args.video_width -= args.video_width % 2
    args.video_height -= args.video_height % 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def work() -> str:
        summary = evaluate(args)
        return f"evaluation finished: {summary['episodes']} episodes, mean return {summary['mean_return']:.3f}"

    return run_program(work, "evaluation")


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation described by ``args`` and write its outputs; returns the summary."""
    args.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="workbench-policy-") as download_dir:
        checkpoint = resolve_selector(args.checkpoint, Path(download_dir))
        info = inspect_checkpoint(checkpoint, args.rl_library)
        print(
            f"policy: {checkpoint} ({info.library}, {info.obs_dim} observations, {info.action_dim} actions)", flush=True
        )
        return _run(args, info)


def _run(args: argparse.Namespace, info: CheckpointInfo) -> dict[str, Any]:
    seed = DEFAULT_SEED if args.seed is None else args.seed
    env_cfg, agent_cfg = resolve_configs(args.task, args.rl_library, args.override)
    check_sizes(info, args.task, *cfg_sizes(env_cfg))

    video_episodes = min(args.video_episodes, args.num_episodes) if args.record_video else 0
    quotas = episode_quotas(args.num_episodes, args.num_envs, video_episodes)
    env_cfg.scene.num_envs = len(quotas)
    step_dt = env_cfg.sim.dt * env_cfg.decimation
    if env_cfg.episode_length_s > (args.steps_per_episode - 0.5) * step_dt:
        env_cfg.episode_length_s = (args.steps_per_episode - 0.5) * step_dt
    if args.record_video:
        from workbench.runner.evaluation.video import require_viewer, viewer_cfg

        require_viewer()
        env_cfg.sim.visualizer_cfgs = [viewer_cfg(args.video_width, args.video_height)]

    with task_environment(args.task, env_cfg, args.device, seed) as recorder:
        check_sizes(info, args.task, *env_sizes(recorder.unwrapped))
        if exported.is_exported(info.path):
            agent = OnnxAgent(recorder, info.path, exported.observation_groups(info.path))
        else:
            agent = AGENTS[args.rl_library](recorder, agent_cfg, info.path, args.device, seed)
        return _loop(args, agent, recorder, quotas, video_episodes, seed, info)


def _success_source(env: Any) -> tuple[str, Callable[[], Any] | None]:
    """How success is decided: a task's own success termination term, else surviving to the time limit."""
    manager = getattr(env, "termination_manager", None)
    for name in getattr(manager, "active_terms", []):
        if "success" in name.lower() or "goal" in name.lower():
            return f"termination term {name!r}", lambda: manager.get_term(name)
    return "survived to the time or step limit (truncated, not terminated)", None


def _loop(
    args: argparse.Namespace,
    agent: Any,
    recorder: Any,
    quotas: list[int],
    video_episodes: int,
    seed: int,
    info: CheckpointInfo,
) -> dict[str, Any]:
    import torch

    env = recorder.unwrapped
    criterion, success_term = _success_source(env)
    counter = EpisodeCounter(
        quotas, args.steps_per_episode, success_on_time_out=success_term is None, device=env.device
    )
    limit = loop_step_limit(quotas, args.steps_per_episode, getattr(env, "max_episode_length", None))
    clips = _Clips(env, args, video_episodes)
    fewer = ""
    if len(quotas) < args.num_envs:
        fewer = f" (of {args.num_envs} asked: {args.num_episodes} episodes need no more)"
    print(
        f"evaluating {args.task} ({args.rl_library}) on {len(quotas)} envs{fewer}: {args.num_episodes} episodes of "
        f"at most {args.steps_per_episode} steps, seed {seed}, success = {criterion}",
        flush=True,
    )
    obs = agent.reset()
    clips.start()
    start = last_report = time.perf_counter()
    with torch.inference_mode():
        while not counter.done:
            if counter.steps >= limit:
                raise EvaluationError(f"the evaluation did not finish within {limit} steps; episodes never ended")
            obs = agent.step(obs)
            rewards, terminated, truncated = recorder.last
            counted = counter.update(rewards, terminated, truncated, success_term() if success_term else None)
            clips.after_step(counter, counted)
            now = time.perf_counter()
            quiet = now - last_report
            if (counted and (quiet >= PROGRESS_INTERVAL_S or counter.done)) or quiet >= QUIET_PROGRESS_INTERVAL_S:
                last_report = now
                _progress(counter, len(quotas), now - start - clips.seconds)
    wall = time.perf_counter() - start
    clips.close()
    env_steps = counter.steps * len(quotas)
    summary = {
        **counter.summary(),
        "success_criterion": criterion,
        "env_steps": env_steps,
        "loop_steps": counter.steps,
        "wall_seconds": round(wall, 3),
        "steps_per_second": round(env_steps / max(wall, 1e-9), 1),
        "sim_steps_per_second": round(env_steps / max(wall - clips.seconds, 1e-9), 1),
        "num_envs": len(quotas),
        "steps_per_episode": args.steps_per_episode,
        "seed": seed,
        "task": args.task,
        "rl_library": args.rl_library,
        "checkpoint": str(info.path),
        "checkpoint_iteration": info.iteration,
        "device": args.device,
        **clips.summary(),
    }
    _write_outputs(args.output_dir, counter.episodes, summary)
    return summary


class _Clips:
    """Records the first episodes of environment 0 as clips, while the loop runs."""

    def __init__(self, env: Any, args: argparse.Namespace, episodes: int) -> None:
        self.wanted = episodes
        self.recorder = None
        self.written: list[str] = []
        self.clip_seconds = 0.0
        if episodes:
            from workbench.runner.evaluation.video import ClipRecorder

            self.recorder = ClipRecorder(env, args.video_width, args.video_height, args.output_dir / "videos")

    @property
    def active(self) -> bool:
        return self.recorder is not None and len(self.written) < self.wanted

    @property
    def seconds(self) -> float:
        """Time spent grabbing and encoding frames (not counted as simulation time)."""
        return 0.0 if self.recorder is None else self.recorder.capture_seconds + self.recorder.encode_seconds

    def start(self) -> None:
        if self.active:
            self.recorder.grab()

    def after_step(self, counter: EpisodeCounter, counted: list[Episode]) -> None:
        if not self.active:
            return
        if counter.ended[0]:
            episode = next((e for e in counted if e.env_index == 0), None)
            if episode is not None:
                self.clip_seconds += self.recorder.frames / self.recorder.fps
                name = self.recorder.write(f"episode_{episode.episode:04d}.mp4").name
                episode.video = f"videos/{name}"
                self.written.append(episode.video)
            else:
                self.recorder.discard()
        if not self.active or counter.draining[0]:
            return
        if int(counter.lengths[0]) % self.recorder.stride == 0:
            self.recorder.grab()

    def close(self) -> None:
        """Drop a clip left unfinished (the loop ended before its episode did)."""
        if self.recorder is not None:
            self.recorder.discard()

    def summary(self) -> dict[str, Any]:
        if self.recorder is None:
            return {"videos": []}
        return {
            "videos": self.written,
            "video_fps": self.recorder.fps,
            "video_frame_stride": self.recorder.stride,
            "video_size": list(self.recorder.size),
            "video_seconds": round(self.clip_seconds, 3),
            "video_capture_seconds": round(self.recorder.capture_seconds, 3),
            "video_encode_seconds": round(self.recorder.encode_seconds, 3),
        }


def _progress(counter: EpisodeCounter, num_envs: int, sim_seconds: float) -> None:
    done = counter.episodes
    payload: dict[str, Any] = {"iteration": len(done), "max_iterations": sum(counter.quotas)}
    if done:
        payload["mean_reward"] = round(sum(e.return_ for e in done) / len(done), 4)
        payload["mean_episode_length"] = round(sum(e.length for e in done) / len(done), 2)
    payload["steps_per_second"] = round(counter.steps * num_envs / max(sim_seconds, 1e-9), 1)
    print(f"WORKBENCH_PROGRESS {json.dumps(payload)}", flush=True)


def _write_outputs(directory: Path, episodes: list[Episode], summary: dict[str, Any]) -> None:
    with (directory / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for episode in episodes:
            writer.writerow(episode.row())
    (directory / "evaluation-summary.json").write_text(json.dumps(summary, indent=2) + "\n")




if __name__ == "__main__":
    sys.exit(main())
