"""Sweeps with real tiny trainings on the local backend: grid + pruning + resume after a kill, TPE, budgets."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.backends import get_backend
from workbench.spec.status import JobState
from workbench.sweep import Budget, Choice, FloatRange, Packing, Sweep

BASE = {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 8, "maxIterations": 2, "device": "cpu"}}
CPU_PAIR = Packing(slots_per_device=2, devices=("cpu",))

pytestmark = pytest.mark.slow


def _journal(directory: Path) -> dict:
    path = directory / "journal.json"
    return json.loads(path.read_text()) if path.exists() else {"trials": {}}


def test_grid_2x2_prunes_poor_trials_and_resumes_after_a_kill(tmp_path: Path) -> None:
    """Trials 0-1 reward staying alive; trials 2-3 punish it (constructed to be worse at every iteration), so the
    median pruner stops them early. The sweep process is killed once a trial has finished and continued."""
    directory = tmp_path / "grid"
    max_iterations = 30  # long enough that a cancel after the pruning decision lands well before the end
    base = {"trainingConfig": {**BASE["trainingConfig"], "maxIterations": max_iterations}}
    sweep = Sweep("grid", base, {"env.rew_scale_alive": Choice([1.0, -10.0]), "seed": Choice([1, 2])},
                  strategy="grid", pruner="median", packing=CPU_PAIR, root=directory, poll_interval=0.5)
    sweep.save()
    process = subprocess.Popen([sys.executable, "-m", "workbench.sweep", "grid", "--root", str(directory)],
                               stdout=subprocess.DEVNULL, stderr=(tmp_path / "sweep.log").open("w"))
    deadline = time.monotonic() + 240
    while not any("value" in t for t in _journal(directory)["trials"].values()):
        assert process.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.5)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = _journal(directory)["trials"]
    finished_before = {n: t for n, t in before.items() if "value" in t}

    frame = Sweep.open("grid", root=directory).run()

    after = _journal(directory)["trials"]
    requeued = frame["reason"].str.contains("queued again")
    assert (frame[requeued]["job_id"].isna()).all(), "only a trial killed before its job was submitted is queued again"
    frame = frame[~requeued]
    assert len(frame) == 4 and frame["job_id"].nunique() == 4, frame
    for number, trial in before.items():
        if trial.get("job_id"):
            assert after[number]["job_id"] == trial["job_id"], "a submitted trial keeps its job after the resume"
    for number, trial in finished_before.items():
        assert after[number]["finished_at"] == trial["finished_at"], "a finished trial is not re-run"
    by_params = {(row["param env.rew_scale_alive"], row["param seed"]): row for row in frame.to_dict("records")}
    assert [by_params[(1.0, seed)]["state"] for seed in (1, 2)] == ["COMPLETE", "COMPLETE"]
    pruned = [row for row in frame.to_dict("records") if row["state"] == "PRUNED"]
    assert pruned, f"no trial was pruned:\n{frame}"
    backend = get_backend("local")
    for row in pruned:
        assert row["param env.rew_scale_alive"] == -10.0
        status = backend.job(row["job_id"]).status()
        assert status.state is JobState.CANCELLED, status
        assert (status.progress.iteration or 0) < max_iterations, "the pruned trial stopped early"
    assert sweep.best()["params"]["env.rew_scale_alive"] == 1.0


def test_tpe_four_trials_with_results_and_plots(tmp_path: Path) -> None:
    sweep = Sweep("tpe", BASE, {"agent.algorithm.learning_rate": FloatRange(1e-4, 1e-2, log=True),
                                "agent.algorithm.entropy_coef": FloatRange(0.001, 0.02)},
                  strategy="tpe", budget=Budget(max_trials=4), packing=CPU_PAIR, root=tmp_path, poll_interval=0.5)
    frame = sweep.run()
    assert list(frame["state"]) == ["COMPLETE"] * 4, frame
    assert all(math.isfinite(v) for v in frame["value"])
    assert frame["param agent.algorithm.learning_rate"].nunique() == 4
    assert set(frame["slot"]) == {"cpu"}
    spec = json.loads((Path(get_backend("local").job(frame["job_id"][0]).outputs()) / "spec.json").read_text())
    assert spec["trainingConfig"]["overrides"]["agent.algorithm.learning_rate"] == frame["param agent.algorithm.learning_rate"][0]
    assert sweep.best()["value"] == frame["value"].max()
    assert sweep.plot_objective().get_ylabel() == "mean_reward"
    assert sweep.plot_parallel_coordinates() is not None
    assert Sweep.open("tpe", root=tmp_path).run()["job_id"].tolist() == frame["job_id"].tolist(), \
        "running a finished sweep again starts nothing"


def test_time_budget_cancels_running_trials(tmp_path: Path) -> None:
    base = {"trainingConfig": {**BASE["trainingConfig"], "maxIterations": 500}}
    sweep = Sweep("budget", base, {"seed": Choice([1, 2, 3])}, strategy="grid", budget=Budget(max_seconds=8),
                  root=tmp_path, poll_interval=0.5)
    frame = sweep.run()
    assert len(frame) == 1, "no trial starts once the time budget is spent"
    assert frame["state"][0] == "FAIL" and "time budget of 8 s spent" in frame["reason"][0]
    assert get_backend("local").job(frame["job_id"][0]).status().state is JobState.CANCELLED
