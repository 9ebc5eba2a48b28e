"""The main job, end to end on this machine: train Isaac-Cartpole-Direct on the CPU, evaluate the policy with a
video, plot the reward curve, and print where everything is (``make demo``).

Sizes are CPU-friendly and can be changed with ``WORKBENCH_DEMO_ENVS`` / ``WORKBENCH_DEMO_ITERATIONS``.
"""

from __future__ import annotations

import os
import sys

from workbench import results
from workbench.backends import get_backend
from workbench.backends.base import Job
from workbench.cli import follow_job
from workbench.outputs import exported
from workbench.outputs.layout import EXPORTED
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState


def _run(job: Job, what: str) -> None:
    status = follow_job(job)
    if status.state is not JobState.SUCCEEDED:
        print(f"{what} {status.state.value}: {status.reason}\nlog: {job.outputs() / 'logs' / 'job.log'}")
        sys.exit(1)


def main() -> None:
    envs = int(os.environ.get("WORKBENCH_DEMO_ENVS", 64))
    iterations = int(os.environ.get("WORKBENCH_DEMO_ITERATIONS", 60))
    backend = get_backend("local")
    print(f"training Isaac-Cartpole-Direct with rsl_rl on the CPU: {envs} envs, {iterations} iterations")
    train = backend.submit(parse_spec({"trainingConfig": {
        "task": "Isaac-Cartpole-Direct", "numEnvs": envs, "maxIterations": iterations, "seed": 42, "device": "cpu"}}))
    _run(train, "training")
    plot = train.outputs() / "reward.png"
    results.plot_training(train, title="Isaac-Cartpole-Direct (rsl_rl, CPU)").savefig(plot, dpi=120)

    print("evaluating the policy: 4 envs, 4 episodes, with video")
    evaluation = backend.submit(parse_spec({"trainingConfig": {
        "mode": "evaluate", "task": "Isaac-Cartpole-Direct", "policy": train.job_id, "numEnvs": 4,
        "numEpisodes": 4, "stepsPerEpisode": 300, "recordVideo": True, "seed": 42, "device": "cpu"}}))
    _run(evaluation, "evaluation")
    summary = results.load_summary(evaluation)

    out = train.outputs()
    print(f"\ntraining job {train.job_id}\n  outputs:     {out}\n  checkpoints: {out / 'checkpoints'}"
          f"\n  metrics:     {out / 'metrics.csv'}\n  reward plot: {plot}")
    policy = out / EXPORTED / exported.ONNX
    if policy.is_file():
        print(f"  policy:      {policy} (ONNX; TorchScript beside it)")
    print(f"evaluation job {evaluation.job_id}\n  outputs:     {evaluation.outputs()}"
          f"\n  metrics:     {evaluation.outputs() / 'metrics.csv'}")
    for video in results.videos(evaluation):
        print(f"  video:       {video}")
    print(f"  mean return {summary['mean_return']:.2f}, mean episode length {summary['mean_length']:.1f}")


if __name__ == "__main__":
    main()
