"""Resume: train N iterations, resume for M more with each library; counters, checkpoints and metrics continue."""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from pathlib import Path

import pytest
from trained_jobs import (
    FIRST_ITERATIONS,
    MORE_ITERATIONS,
    TASK,
    checkpoint_iterations,
    example_packages,
    first_training,
    log_tail,
    resumed_training,
    train,
)

from workbench.backends.local import LocalBackend
from workbench.errors import RunnerError
from workbench.outputs.metrics import merge_metrics
from workbench.runner.inputs.resume import ResumePoint, resume_checkpoint
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

LIBRARIES = ("rsl_rl", "rl_games", "skrl")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _key(row: dict[str, str]) -> tuple[str, str, str]:
    return row["step"], row["iteration"], row["wall_time"]


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_merge_drops_rows_logged_after_the_checkpoint(tmp_path: Path) -> None:
    """A killed job logged iterations 0-5 but its last checkpoint was at 2: history is 0-2 old, then 3-4 new."""
    previous = _write(tmp_path / "previous.csv", ["step", "iteration", "wall_time", "reward"],
                      [[i, i, 100 + i, i / 10] for i in range(6)])
    current = _write(tmp_path / "metrics.csv", ["step", "iteration", "wall_time", "reward", "Loss/value"],
                     [[3, 3, 200, 0.9, 1.5], [4, 4, 201, 1.0, 1.4]])
    merge_metrics(current, previous, ResumePoint(tmp_path / "m.pt", 2, "rsl_rl").iteration_offset)
    rows = _rows(current)
    assert [r["iteration"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [r["wall_time"] for r in rows] == ["100", "101", "102", "200", "201"]
    assert rows[0]["Loss/value"] == "" and rows[-1]["Loss/value"] == "1.4"


def test_merge_offsets_skrl_steps_and_iterations(tmp_path: Path) -> None:
    """skrl counts from 0 again: its rows move after the checkpoint's iteration (steps by iteration x rollouts)."""
    previous = _write(tmp_path / "previous.csv", ["step", "iteration", "reward"], [[32, 1, 0.1], [64, 2, 0.2], [96, 3, 0.3]])
    current = _write(tmp_path / "metrics.csv", ["step", "iteration", "reward"], [[32, 1, 0.4], [64, 2, 0.5]])
    merge_metrics(current, previous, ResumePoint(tmp_path / "m.pt", 3, "skrl").iteration_offset, steps_per_iteration=32)
    assert [(r["step"], r["iteration"]) for r in _rows(current)] == [
        ("32", "1"), ("64", "2"), ("96", "3"), ("128", "4"), ("160", "5")]


def test_merge_before_the_resumed_run_logged_anything(tmp_path: Path) -> None:
    previous = _write(tmp_path / "previous.csv", ["step", "iteration"], [[i, i] for i in range(5)])
    current = tmp_path / "metrics.csv"
    current.write_text("step,iteration\n")
    merge_metrics(current, previous, ResumePoint(tmp_path / "m.pt", 2, "rsl_rl").iteration_offset)
    assert [r["iteration"] for r in _rows(current)] == ["0", "1", "2", "3", "4"]


def test_resume_arguments_per_library(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model_40.pt"
    for library, total in (("rsl_rl", 10), ("rl_games", 50), ("skrl", 10)):
        point = ResumePoint(checkpoint, 40, library)
        assert point.arguments() == ["--checkpoint", str(checkpoint)]
        assert point.max_iterations(10) == total


def test_unknown_job_or_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="no such job"):
        resume_checkpoint("00000000-0000-4000-8000-000000000000", tmp_path, "rsl_rl")
    with pytest.raises(RunnerError, match="input not found"):
        resume_checkpoint(str(tmp_path / "model_3.pt"), tmp_path, "rsl_rl")


@pytest.mark.slow
@pytest.mark.parametrize("library", LIBRARIES)
def test_resume_continues_counters_checkpoints_and_metrics(library: str) -> None:
    first, resumed = first_training(library), resumed_training(library)
    before, after = checkpoint_iterations(first), checkpoint_iterations(resumed)
    # rsl_rl numbers iterations from 0; rl_games and skrl count completed ones
    last_before = FIRST_ITERATIONS - 1 if library == "rsl_rl" else FIRST_ITERATIONS
    assert before[-1] == last_before, log_tail(first)
    assert after and min(after) > last_before, (before, after)
    assert after[-1] == last_before + MORE_ITERATIONS, log_tail(resumed)

    log = (resumed.outputs() / "logs" / "job.log").read_text()
    assert f"iteration {last_before} of that training" in log
    if library == "rsl_rl":
        assert f"Learning iteration {last_before + 1}/{last_before + 1 + MORE_ITERATIONS}" in log
    if library == "rl_games":
        assert f"epoch: {last_before + 1}/{last_before + MORE_ITERATIONS}" in log

    old, merged = _rows(first.outputs() / "metrics.csv"), _rows(resumed.outputs() / "metrics.csv")
    iterations = [float(r["iteration"]) for r in merged]
    assert iterations == sorted(set(iterations)), iterations
    finished = max(float(r["wall_time"]) for r in old)
    history = [_key(r) for r in merged if float(r["wall_time"]) <= finished]
    new = [float(r["iteration"]) for r in merged if float(r["wall_time"]) > finished]
    assert history == [_key(r) for r in old][: len(history)] and history, "the first job's rows come first, unchanged"
    assert new and float(history[-1][1]) + 1 == new[0], (history, new)
    assert new[-1] > float(old[-1]["iteration"])
    spec = json.loads((resumed.outputs() / "training-config.json").read_text())
    assert spec["trainingConfig"]["resumeFrom"] == first.job_id


@pytest.mark.slow
def test_resume_a_job_killed_mid_run() -> None:
    """SIGKILL a long rsl_rl training once it saved checkpoints; a new job resumes from its last checkpoint."""
    document = {
        "trainingConfig": {"task": TASK, "rlLibrary": "rsl_rl", "numEnvs": 16, "maxIterations": 1000,
                           "device": "cpu", "overrides": {"agent.save_interval": 1}},
        "customEnvironmentS3Uri": str(example_packages()["whl"]),
    }
    killed = LocalBackend(max_concurrent=2).submit(parse_spec(document))
    deadline = time.monotonic() + 300
    raw = killed.outputs() / "isaaclab"
    while not any(raw.rglob("model_2.pt")):
        assert time.monotonic() < deadline and not killed.status().state.is_terminal, log_tail(killed)
        time.sleep(0.5)
    os.killpg(int(killed.status().details["child_pgid"]), signal.SIGKILL)
    status = killed.wait(timeout=120, poll_interval=0.5)
    assert status.state is JobState.FAILED and "SIGKILL" in status.reason, status.reason
    saved = max(int(p.stem.removeprefix("model_")) for p in raw.rglob("model_*.pt"))
    assert checkpoint_iterations(killed)[-1] == saved

    resumed = train("rsl_rl", 1, package_format="whl", resumeFrom=killed.job_id)
    assert checkpoint_iterations(resumed) == [saved + 1]
    assert f"iteration {saved} of that training" in (resumed.outputs() / "logs" / "job.log").read_text()
