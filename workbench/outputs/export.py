"""The output layout of a job, assembled from what Isaac Lab wrote in its run directory.

```
<job-id>/
  training-config.json | evaluation-config.json
  metrics.csv                 step, iteration, wall_time, reward, episode_length, then one column per scalar tag
  checkpoints/model_<iteration>.pt   every saved checkpoint, numbered by training iteration
  checkpoints/best.pt         the library's "best so far" checkpoint, where it keeps one
  *_git_diff.txt              from the run's .diff files
  videos/*.mp4
  logs/job.log
```

Checkpoints keep each library's own file format (the name is normalized, the content is not):
rsl_rl ``model_<it>.pt`` (a torch dict with ``model_state_dict``, ``optimizer_state_dict``, ``iter``),
rl_games ``nn/last_<name>_ep_<epoch>_rew_<r>.pth`` (a torch dict with ``model``, ``epoch``, ...; best: ``nn/<name>.pth``),
skrl ``checkpoints/agent_<timestep>.pt`` (a torch dict of module state dicts; the iteration is timestep / rollouts;
best: ``best_agent.pt``).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from workbench.transport.atomic import write_text_atomic
from workbench.spec.status import Progress

REWARD_TAGS = ("Train/mean_reward", "rewards/step", "Reward / Total reward (mean)")
EPISODE_LENGTH_TAGS = ("Train/mean_episode_length", "episode_lengths/step", "Episode / Total timesteps (mean)")
SECONDARY_AXIS_SUFFIXES = {"rsl_rl": ("/time",), "rl_games": ("/time", "/iter"), "skrl": ("/time",)}
"""Tags logged against another x axis (seconds, epochs) than the library's main step; left out of metrics.csv."""
EPOCH_AXIS_PREFIXES = {"rl_games": ("Episode/",)}
"""Tags rl_games' IsaacAlgoObserver logs at the (1-based) epoch; moved to the frame axis, where epoch e is logged at
frame (e - 1) x frames per epoch."""

_RSL_RL = re.compile(r"^model_(\d+)\.pt$")
_RL_GAMES = re.compile(r"^last_.+_ep_(\d+)_rew_.*\.pth$")
_SKRL = re.compile(r"^agent_(\d+)\.pt$")
_MODEL = re.compile(r"^model_(\d+)\.pt$")


@dataclass(frozen=True)
class Checkpoint:
    source: Path
    iteration: int | None

    @property
    def target_name(self) -> str:
        return "best.pt" if self.iteration is None else f"model_{self.iteration}.pt"


def find_run_dir(logs_root: Path, library: str) -> Path | None:
    """The newest Isaac Lab run directory (the one holding ``run.json``) under ``logs_root/logs/<library>/``."""
    runs = sorted((logs_root / "logs" / library).glob("*/*/run.json"), key=lambda p: p.stat().st_mtime)
    return runs[-1].parent if runs else None


def library_checkpoints(run_dir: Path, library: str) -> list[Checkpoint]:
    """Every checkpoint the library saved in ``run_dir``, with its training iteration."""
    found: list[Checkpoint] = []
    if library == "rsl_rl":
        for path in run_dir.glob("model_*.pt"):
            if match := _RSL_RL.match(path.name):
                found.append(Checkpoint(path, int(match.group(1))))
    elif library == "rl_games":
        for path in (run_dir / "nn").glob("*.pth"):
            match = _RL_GAMES.match(path.name)
            found.append(Checkpoint(path, int(match.group(1)) if match else None))
    elif library == "skrl":
        rollouts = skrl_rollouts(run_dir)
        for path in (run_dir / "checkpoints").glob("*.pt"):
            if match := _SKRL.match(path.name):
                found.append(Checkpoint(path, int(match.group(1)) // rollouts))
            elif path.name == "best_agent.pt":
                found.append(Checkpoint(path, None))
    return sorted(found, key=lambda c: (c.iteration is None, c.iteration or 0, c.source.stat().st_mtime))


def skrl_rollouts(run_dir: Path) -> int:
    """skrl's timesteps per training iteration (``agent.rollouts`` in the run's params), 1 if unknown."""
    rollouts = _params(run_dir, "agent").get("agent", {}).get("rollouts")
    return rollouts if isinstance(rollouts, int) and rollouts > 0 else 1


def steps_per_iteration(run_dir: Path, library: str) -> int:
    """How many units of the library's TensorBoard step make one training iteration."""
    if library == "skrl":
        return skrl_rollouts(run_dir)
    if library == "rl_games":
        horizon = _params(run_dir, "agent").get("params", {}).get("config", {}).get("horizon_length")
        num_envs = _params(run_dir, "env").get("scene", {}).get("num_envs")
        if isinstance(horizon, int) and isinstance(num_envs, int):
            return max(1, horizon * num_envs)
    return 1


def _params(run_dir: Path, name: str) -> dict:
    path = run_dir / "params" / f"{name}.yaml"
    if not path.exists():
        return {}
    loaded = yaml.load(path.read_text(), Loader=_LenientLoader)
    return loaded if isinstance(loaded, dict) else {}


class _LenientLoader(yaml.SafeLoader):
    """Reads Isaac Lab's params YAML, whose python/object tags are skipped (only plain values are needed)."""


_LenientLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def checkpoint_iteration(path: Path) -> int | None:
    match = _MODEL.match(path.name)
    return int(match.group(1)) if match else None


def newest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The ``model_<n>.pt`` with the highest iteration, compared as numbers (model_1500 > model_999)."""
    numbered = [(checkpoint_iteration(p), p) for p in checkpoints_dir.glob("model_*.pt")]
    numbered = [(n, p) for n, p in numbered if n is not None]
    return max(numbered)[1] if numbered else None


def sync_checkpoints(run_dir: Path, library: str, dest: Path, iteration_offset: int = 0) -> list[Path]:
    """Copy checkpoints that are new or changed into ``dest`` under their normalized names; returns the copies.

    ``iteration_offset`` is added to the iteration numbers (a resumed skrl run counts from 0 again)."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for checkpoint in library_checkpoints(run_dir, library):
        if checkpoint.iteration is not None and iteration_offset:
            checkpoint = Checkpoint(checkpoint.source, checkpoint.iteration + iteration_offset)
        target = dest / checkpoint.target_name
        source_stat = checkpoint.source.stat()
        if target.exists() and target.stat().st_mtime >= source_stat.st_mtime and target.stat().st_size == source_stat.st_size:
            continue
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copy2(checkpoint.source, tmp)
        tmp.replace(target)
        copied.append(target)
    return copied


def event_dirs(run_dir: Path) -> list[Path]:
    return sorted({p.parent for p in run_dir.rglob("events.out.tfevents.*")})


class ScalarReader:
    """Reads every scalar of a run's TensorBoard event files, incrementally: each ``read()`` parses only the
    records written since the last one (EventAccumulator resumes where it stopped), so a long training can be
    exported again and again at a small cost.

    Rows are ``{step: {"wall_time": t, tag: value}}``; no downsampling (``size_guidance`` 0 keeps every point);
    a later value at the same step wins.
    """

    def __init__(self, run_dir: Path, library: str) -> None:
        self.run_dir = run_dir
        self.library = library
        self.rows: dict[int, dict[str, float]] = {}
        self._accumulators: dict[Path, object] = {}
        self._consumed: dict[tuple[Path, str], int] = {}

    def read(self) -> dict[int, dict[str, float]]:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        skip = SECONDARY_AXIS_SUFFIXES.get(self.library, ())
        epoch_axis = EPOCH_AXIS_PREFIXES.get(self.library, ())
        per_epoch = steps_per_iteration(self.run_dir, self.library) if epoch_axis else 1
        for directory in event_dirs(self.run_dir):
            accumulator = self._accumulators.get(directory)
            if accumulator is None:
                accumulator = self._accumulators[directory] = EventAccumulator(str(directory), size_guidance={"scalars": 0})
            accumulator.Reload()
            for tag in accumulator.Tags().get("scalars", []):
                if tag.endswith(skip):
                    continue
                events = accumulator.Scalars(tag)
                for event in events[self._consumed.get((directory, tag), 0):]:
                    step = (event.step - 1) * per_epoch if tag.startswith(epoch_axis) else event.step
                    row = self.rows.setdefault(step, {})
                    row["wall_time"] = max(row.get("wall_time", 0.0), event.wall_time)
                    row[tag] = event.value
                self._consumed[(directory, tag)] = len(events)
        return self.rows


def read_scalars(run_dir: Path, library: str) -> dict[int, dict[str, float]]:
    """Every scalar of the run, read once (see :class:`ScalarReader`)."""
    return ScalarReader(run_dir, library).read()


def metrics_csv(rows: dict[int, dict[str, float]], steps_per_iteration: int = 1) -> str:
    """CSV text: step, iteration, wall_time, reward, episode_length (the same names for every library), then
    every tag. ``step`` is the library's own TensorBoard step; ``iteration`` is step / steps_per_iteration."""
    tags = sorted({tag for row in rows.values() for tag in row} - {"wall_time"})
    header = ["step", "iteration", "wall_time", "reward", "episode_length", *tags]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for step in sorted(rows):
        row = rows[step]
        writer.writerow(
            [step, _iteration(step, steps_per_iteration), row.get("wall_time", ""), _first(row, REWARD_TAGS), _first(row, EPISODE_LENGTH_TAGS)]
            + [_cell(row.get(tag)) for tag in tags]
        )
    return out.getvalue()


def _iteration(step: int, per_iteration: int) -> str:
    return str(step // per_iteration) if step % per_iteration == 0 else repr(step / per_iteration)


def _first(row: dict[str, float], tags: Iterable[str]) -> str:
    return next((_cell(row[t]) for t in tags if t in row), "")


def _cell(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def export_metrics(reader: ScalarReader, dest: Path) -> dict[int, dict[str, float]]:
    """Write ``dest`` (metrics.csv) from the run's event files, reading what is new; returns all rows."""
    rows = reader.read()
    write_text_atomic(dest, metrics_csv(rows, steps_per_iteration(reader.run_dir, reader.library)))
    return rows


def latest_progress(rows: dict[int, dict[str, float]]) -> Progress:
    """The newest mean reward and episode length in the metrics (libraries that do not print them)."""
    reward = length = None
    for step in sorted(rows, reverse=True):
        row = rows[step]
        reward = reward if reward is not None else next((row[t] for t in REWARD_TAGS if t in row), None)
        length = length if length is not None else next((row[t] for t in EPISODE_LENGTH_TAGS if t in row), None)
        if reward is not None and length is not None:
            break
    return Progress(mean_reward=reward, mean_episode_length=length)


def export_git_diffs(run_dir: Path, dest_dir: Path) -> list[Path]:
    """Copy the run's ``*.diff`` files as ``<name>_git_diff.txt``."""
    written = []
    for diff in sorted(run_dir.rglob("*.diff")):
        target = dest_dir / f"{diff.stem}_git_diff.txt"
        shutil.copyfile(diff, target)
        written.append(target)
    return written


def export_videos(run_dir: Path, dest_dir: Path) -> list[Path]:
    written = []
    for video in sorted(run_dir.rglob("*.mp4")):
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / video.name
        shutil.copyfile(video, target)
        written.append(target)
    return written
