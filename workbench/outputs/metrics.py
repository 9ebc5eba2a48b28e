"""Writing ``metrics.csv`` of a training: every scalar of the run's TensorBoard event files, under the same first
columns for every library (:data:`workbench.outputs.layout.TRAINING_COLUMNS`), and merged with the earlier job's
rows when the training resumed another one."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from workbench.libraries import library
from workbench.outputs.layout import ITERATION, STEP, TRAINING_COLUMNS, WALL_TIME
from workbench.spec.status import Progress
from workbench.transport.atomic import write_text_atomic

Rows = dict[int, dict[str, float]]


def event_dirs(run_dir: Path) -> list[Path]:
    return sorted({p.parent for p in run_dir.rglob("events.out.tfevents.*")})


class ScalarReader:
    """Reads every scalar of a run's TensorBoard event files, incrementally: each ``read()`` parses only the
    records written since the last one (EventAccumulator resumes where it stopped), so a long training can be
    exported again and again at a small cost.

    Rows are ``{step: {"wall_time": t, tag: value}}``; no downsampling (``size_guidance`` 0 keeps every point);
    a later value at the same step wins. Tags the library logs on another axis are left out; tags it logs per
    epoch are moved to the step axis (epoch e at step (e - 1) x steps per iteration).
    """

    def __init__(self, run_dir: Path, library_name: str) -> None:
        self.run_dir = run_dir
        self.library = library(library_name)
        self.rows: Rows = {}
        self._accumulators: dict[Path, object] = {}
        self._consumed: dict[tuple[Path, str], int] = {}

    @property
    def steps_per_iteration(self) -> int:
        return self.library.steps_per_iteration(self.run_dir)

    def read(self) -> Rows:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        skip = self.library.secondary_axis_suffixes
        epoch_axis = self.library.epoch_axis_prefixes
        per_epoch = self.steps_per_iteration if epoch_axis else 1
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
                    step = (event.step - 1) * per_epoch if epoch_axis and tag.startswith(epoch_axis) else event.step
                    row = self.rows.setdefault(step, {})
                    row[WALL_TIME] = max(row.get(WALL_TIME, 0.0), event.wall_time)
                    row[tag] = event.value
                self._consumed[(directory, tag)] = len(events)
        return self.rows


def read_scalars(run_dir: Path, library_name: str) -> Rows:
    """Every scalar of the run, read once (see :class:`ScalarReader`)."""
    return ScalarReader(run_dir, library_name).read()


def metrics_csv(rows: Rows, library_name: str, steps_per_iteration: int = 1) -> str:
    """CSV text: the training columns (reward and episode length from the library's own tags), then every tag."""
    adapter = library(library_name)
    tags = sorted({tag for row in rows.values() for tag in row} - {WALL_TIME})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*TRAINING_COLUMNS, *tags])
    for step in sorted(rows):
        row = rows[step]
        writer.writerow(
            [step, _iteration(step, steps_per_iteration), row.get(WALL_TIME, ""),
             _first(row, adapter.reward_tags), _first(row, adapter.length_tags)]
            + [_cell(row.get(tag)) for tag in tags]
        )
    return out.getvalue()


def export_metrics(reader: ScalarReader, dest: Path) -> Rows:
    """Write ``dest`` (metrics.csv) from the run's event files, reading what is new; returns all rows."""
    rows = reader.read()
    write_text_atomic(dest, metrics_csv(rows, reader.library.name, reader.steps_per_iteration))
    return rows


def latest_progress(rows: Rows, library_name: str) -> Progress:
    """The newest mean reward and episode length in the metrics (for libraries that do not print them)."""
    adapter = library(library_name)
    reward = length = None
    for step in sorted(rows, reverse=True):
        row = rows[step]
        reward = reward if reward is not None else next((row[t] for t in adapter.reward_tags if t in row), None)
        length = length if length is not None else next((row[t] for t in adapter.length_tags if t in row), None)
        if reward is not None and length is not None:
            break
    return Progress(mean_reward=reward, mean_episode_length=length)


def merge_metrics(metrics_path: Path, previous: Path | None, iteration_offset: int, steps_per_iteration: int = 1) -> Path:
    """Rewrite ``metrics_path`` (a resumed run's own rows, as exported) as the whole training history.

    The resumed run's ``step`` and ``iteration`` columns are shifted by ``iteration_offset`` iterations (skrl
    counts from 0 again). The previous job's rows before the resumed run's first iteration come first (all of them
    while it has logged nothing); its rows from there on are dropped, as training went on from the checkpoint
    (a killed job logs past its last one). Columns are the union of both files in their order.
    """
    new_header, new_rows = _read_csv(metrics_path) if metrics_path.exists() else ([], [])
    for row in new_rows:
        row[STEP] = _shift(row[STEP], iteration_offset * steps_per_iteration)
        if row.get(ITERATION):
            row[ITERATION] = _shift(row[ITERATION], iteration_offset)
    old_header, old_rows = _read_csv(previous) if previous is not None and previous.exists() else ([], [])
    cut = min((_position(row) for row in new_rows), default=None)
    kept = [row for row in old_rows if cut is None or _position(row) < cut]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(dict.fromkeys([*old_header, *new_header])), restval="",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept + new_rows)
    write_text_atomic(metrics_path, out.getvalue())
    return metrics_path


def _iteration(step: int, per_iteration: int) -> str:
    return str(step // per_iteration) if step % per_iteration == 0 else repr(step / per_iteration)


def _first(row: dict[str, float], tags: Iterable[str]) -> str:
    return next((_cell(row[t]) for t in tags if t in row), "")


def _cell(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row.get(STEP) not in (None, "")]
        return list(reader.fieldnames or []), rows


def _position(row: dict[str, str]) -> float:
    """Where a row lies in training: its iteration (the same unit as checkpoints), else its step."""
    return float(row.get(ITERATION) or row[STEP])


def _shift(value: str, offset: int) -> str:
    if not offset:
        return value
    shifted = float(value) + offset
    return str(int(shifted)) if shifted.is_integer() else repr(shifted)


