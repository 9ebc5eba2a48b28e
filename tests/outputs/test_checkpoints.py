"""One owner of checkpoint rules: names, numbers, newest, and which library wrote a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.errors import PolicyError, ResumeError
from workbench.libraries import LIBRARIES
from workbench.outputs import checkpoints
from workbench.runner.inputs.policy import inspect_checkpoint
from workbench.runner.inputs.resume import resume_checkpoint
from workbench.spec import RL_LIBRARIES


def test_every_library_of_the_spec_has_an_adapter() -> None:
    assert tuple(LIBRARIES) == RL_LIBRARIES


def test_resume_and_evaluation_recognize_a_checkpoint_by_the_same_rule(tmp_path: Path) -> None:
    """An rl_games checkpoint without ``frame`` (rl_games writes it, a trimmed export may not) is rl_games for both:
    an evaluation with another library and a resume with another library are both refused."""
    path = tmp_path / "model_7.pt"
    torch.save({"model": {"a2c_network.mu.weight": torch.zeros(1, 4)}, "epoch": 7}, path)
    assert checkpoints.inspect_checkpoint(path, PolicyError).library == "rl_games"
    with pytest.raises(PolicyError, match="written by rl_games"):
        inspect_checkpoint(path, "rsl_rl")
    with pytest.raises(ResumeError, match="written by rl_games"):
        resume_checkpoint(str(path), tmp_path / "job", "rsl_rl")


def test_newest_is_by_number_for_every_reader(tmp_path: Path) -> None:
    for n in (999, 1500, 50):
        (tmp_path / f"model_{n}.pt").write_bytes(b"x")
    (tmp_path / checkpoints.BEST).write_bytes(b"x")
    assert checkpoints.newest_checkpoint(tmp_path).name == "model_1500.pt"
    assert str(checkpoints.newest_of([Path("checkpoints/model_999.pt"), Path("checkpoints/model_1500.pt")])) == \
        "checkpoints/model_1500.pt"
    assert checkpoints.newest_checkpoint(tmp_path / "missing") is None
