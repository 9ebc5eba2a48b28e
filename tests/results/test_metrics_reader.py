"""The one reader of metrics.csv: curves against the training iteration, from the columns the writer emits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.outputs.layout import TRAINING_COLUMNS
from workbench.outputs.metrics import metrics_csv
from workbench.results import plot_training, training_curves


def _rl_games_run(tmp_path: Path) -> Path:
    """What the runner writes for rl_games: steps in frames (16384 per epoch), the library's own tags."""
    rows = {epoch * 16384: {"wall_time": 100.0 + epoch, "rewards/step": 10.0 * epoch,
                            "episode_lengths/step": 20.0 + epoch} for epoch in range(4)}
    (tmp_path / "metrics.csv").write_text(metrics_csv(rows, "rl_games", steps_per_iteration=16384))
    return tmp_path


def test_curves_are_against_the_iteration_not_the_librarys_step(tmp_path: Path) -> None:
    curves = training_curves(_rl_games_run(tmp_path))
    assert list(curves.columns) == ["iteration", "reward", "episode_length"]
    assert curves["iteration"].tolist() == [0, 1, 2, 3]
    assert curves["reward"].tolist() == [0.0, 10.0, 20.0, 30.0]
    assert curves["episode_length"].tolist() == [20.0, 21.0, 22.0, 23.0]


def test_curves_read_the_normalized_columns_whatever_the_tags(tmp_path: Path) -> None:
    """A skrl run's curve comes from ``reward``/``episode_length``, not from a list of raw tags."""
    rows = {t * 32: {"wall_time": 1.0, "Reward / Total reward (mean)": float(t),
                     "Episode / Total timesteps (mean)": 5.0} for t in range(1, 4)}
    (tmp_path / "metrics.csv").write_text(metrics_csv(rows, "skrl", steps_per_iteration=32))
    frame = pd.read_csv(tmp_path / "metrics.csv")
    assert list(frame.columns[: len(TRAINING_COLUMNS)]) == list(TRAINING_COLUMNS)
    curves = training_curves(tmp_path)
    assert curves["iteration"].tolist() == [1, 2, 3] and curves["reward"].tolist() == [1.0, 2.0, 3.0]


def test_the_training_plot_spans_the_iterations(tmp_path: Path) -> None:
    figure = plot_training(_rl_games_run(tmp_path))
    reward_axes = figure.axes[0]
    assert reward_axes.get_xlabel() == "iteration"
    assert list(reward_axes.lines[0].get_xdata()) == [0, 1, 2, 3]
