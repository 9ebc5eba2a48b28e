"""Checkpoints are loaded without running code from them: a hostile file is refused by name, for evaluation and
resume alike, and the payload never runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import hostile_checkpoint
from workbench.errors import PolicyError, ResumeError
from workbench.outputs.checkpoints import load_checkpoint
from workbench.runner.inputs.policy import inspect_checkpoint
from workbench.runner.inputs.resume import resume_checkpoint


def test_a_hostile_checkpoint_is_refused_for_evaluation(tmp_path: Path) -> None:
    path, marker = hostile_checkpoint(tmp_path)
    with pytest.raises(PolicyError, match=rf"refusing to load {path}: it contains posix.system"):
        inspect_checkpoint(path, "rsl_rl")
    assert not marker.exists()


def test_a_hostile_checkpoint_is_refused_for_resume(tmp_path: Path) -> None:
    path, marker = hostile_checkpoint(tmp_path)
    with pytest.raises(ResumeError, match="refusing to load .*: it contains posix.system"):
        resume_checkpoint(str(path), tmp_path / "job", "rsl_rl")
    assert not marker.exists()


def test_the_types_a_librarys_checkpoint_holds_still_load(tmp_path: Path) -> None:
    """rl_games keeps numpy scalars next to its weights."""
    path = tmp_path / "last_ep_3.pth"
    torch.save({"model": {"a2c_network.mu.weight": torch.zeros(1, 4)}, "epoch": 3, "frame": 96,
                "last_mean_rewards": np.float64(4.5), "steps": np.int64(7)}, path)
    data = load_checkpoint(path, PolicyError)
    assert data["epoch"] == 3 and float(data["last_mean_rewards"]) == 4.5
