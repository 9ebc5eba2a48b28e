"""The search space and sweep set-up, without any training: parameters to spec fields, grids, early errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.sweep import Choice, FloatRange, IntRange, Sweep, SweepError, apply_params, grid_points
from workbench.sweep.space import space_from_json, space_to_json

BASE = {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 8, "maxIterations": 2, "device": "cpu"}}


def test_parameters_map_to_spec_fields_and_overrides() -> None:
    document = apply_params(BASE, {"agent.algorithm.learning_rate": 3e-4, "numEnvs": 16, "numNodes": 2,
                                   "computeConfig.gpusPerNode": 2})
    assert document["trainingConfig"]["overrides"] == {"agent.algorithm.learning_rate": 3e-4}
    assert document["trainingConfig"]["numEnvs"] == 16
    assert document["computeConfig"] == {"numNodes": 2, "gpusPerNode": 2}
    assert BASE["trainingConfig"].get("overrides") is None, "the base document is not modified"
    assert grid_points({"a.x": Choice([1, 2]), "n": IntRange(1, 3)}) == [
        {"a.x": 1, "n": 1}, {"a.x": 1, "n": 2}, {"a.x": 1, "n": 3},
        {"a.x": 2, "n": 1}, {"a.x": 2, "n": 2}, {"a.x": 2, "n": 3}]


def test_the_space_survives_sweep_json() -> None:
    space = {"a": Choice(["x", 1, True]), "n": IntRange(2, 8, step=2), "lr": FloatRange(1e-4, 1e-2, log=True)}
    assert space_from_json(space_to_json(space)) == space


def test_invalid_sweeps_fail_before_any_trial(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="numEnvs"):
        Sweep("bad", BASE, {"numEnvs": IntRange(0, 8)}, root=tmp_path)
    with pytest.raises(SweepError, match="neither a spec field"):
        Sweep("bad", BASE, {"learning_rate": Choice([1e-3])}, root=tmp_path)
    with pytest.raises(SweepError, match="discrete values"):
        Sweep("bad", BASE, {"agent.algorithm.learning_rate": FloatRange(1e-4, 1e-3)}, strategy="grid", root=tmp_path)
    with pytest.raises(SweepError, match="unknown strategy"):
        Sweep("bad", BASE, {}, strategy="hyperband", root=tmp_path)
