"""The output layout of a job: the names every writer (the runner) and reader (results, widgets, sweep, backends)
use, identical in a local run directory and under the job's S3 prefix.

```
<job-id>/
  training-config.json | evaluation-config.json   the validated spec (no secrets, no task tokens)
  metrics.csv                 train: step, iteration, wall_time, reward, episode_length, then one column per tag
                              evaluate: one row per episode (EPISODE_COLUMNS)
  evaluation-summary.json     evaluate: the summary statistics
  checkpoints/model_<iteration>.pt   every saved checkpoint, numbered by training iteration (best.pt: best so far)
  exported/policy.onnx, policy.pt, policy.json   train: the deterministic actor as ONNX and TorchScript, described
                              (:mod:`workbench.outputs.exported`)
  *_git_diff.txt              from the run's .diff files
  videos/*.mp4
  logs/job.log                the whole runner log
```

``step`` is the library's own TensorBoard step (frames for rl_games, timesteps for skrl); ``iteration`` is the
training iteration every library shares, the x axis of every curve.
"""

from __future__ import annotations

METRICS = "metrics.csv"
SUMMARY = "evaluation-summary.json"
CHECKPOINTS = "checkpoints"
EXPORTED = "exported"
VIDEOS = "videos"
JOB_LOG = "logs/job.log"
CONFIG_FILES = {"train": "training-config.json", "evaluate": "evaluation-config.json"}

STEP = "step"
ITERATION = "iteration"
WALL_TIME = "wall_time"
REWARD = "reward"
EPISODE_LENGTH = "episode_length"
TRAINING_COLUMNS = (STEP, ITERATION, WALL_TIME, REWARD, EPISODE_LENGTH)
"""The first columns of a training's metrics.csv, the same for every library; the raw tags follow."""
EPISODE_COLUMNS = ("episode", "env_index", "return", "length", "success", "truncated", "video")
"""The columns of an evaluation's metrics.csv, one row per episode."""


def config_file(mode: str) -> str:
    """The name of the validated spec a job of ``mode`` writes."""
    return CONFIG_FILES[mode]
