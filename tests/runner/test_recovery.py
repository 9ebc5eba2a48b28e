"""Recovery of an interrupted attempt, piece by piece: the attempt settings, the plan on EFS, where a retried attempt
goes on from, and one continuous metrics.csv across attempts (the whole path runs in tests/aws/test_aws_recovery.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from workbench.errors import SettingError
from workbench.libraries import library
from workbench.outputs.checkpoints import load_checkpoint
from workbench.outputs.metrics import merge_metrics
from workbench.runner import recovery
from workbench.runner.inputs.resume import ResumePoint
from workbench.spec.document import parse_spec
from workbench.spec.settings import Attempt, attempt_setting

SPEC = parse_spec({"trainingConfig": {"task": "Isaac-Cartpole-Direct", "maxIterations": 10}})


def rsl_rl_checkpoint(path: Path, iteration: int) -> Path:
    """A checkpoint in rsl_rl's format (what ``OnPolicyRunner.save`` writes), saved at ``iteration``."""
    import torch

    actor = {"mlp.0.weight": torch.zeros(32, 4), "mlp.2.weight": torch.zeros(1, 32),
             "distribution.std_param": torch.ones(1)}
    torch.save({"actor_state_dict": actor, "optimizer_state_dict": {}, "iter": iteration, "infos": None}, path)
    return path


def write_metrics(path: Path, iterations: range, wall_time: float) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "iteration", "wall_time", "reward", "episode_length"])
        writer.writerows([i, i, wall_time + i, i / 10, 10 + i] for i in iterations)
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture()
def efs(tmp_path: Path) -> Path:
    """The job's checkpoint directory as the interrupted first attempt left it: its plan, checkpoints at iterations
    2 and 4, and metrics up to iteration 6 (it was reclaimed between two checkpoints)."""
    directory = tmp_path / "efs" / "checkpoints" / "job-1"
    directory.mkdir(parents=True)
    recovery.write_plan(directory, recovery.plan_for(SPEC, None))
    for iteration in (2, 4):
        rsl_rl_checkpoint(directory / f"model_{iteration}.pt", iteration)
    write_metrics(directory / "metrics.csv", range(7), wall_time=100.0)
    return directory


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, Attempt(1, 1)),
    ({"AWS_BATCH_JOB_ATTEMPT": "2", "WORKBENCH_MAX_ATTEMPTS": "3"}, Attempt(2, 3)),
    ({"AWS_BATCH_JOB_ATTEMPT": "4", "WORKBENCH_MAX_ATTEMPTS": "3"}, Attempt(4, 4)),
])
def test_the_attempt_comes_from_batch_and_the_job_definition(environ, expected):
    assert attempt_setting(environ) == expected


def test_only_an_attempt_before_the_last_may_be_retried():
    assert [Attempt(n, 3).may_retry for n in (1, 2, 3)] == [True, True, False]
    assert not Attempt(1, 1).may_retry and not Attempt(1, 1).is_retry and Attempt(2, 3).is_retry


@pytest.mark.parametrize("variable", ["AWS_BATCH_JOB_ATTEMPT", "WORKBENCH_MAX_ATTEMPTS"])
def test_a_bad_attempt_setting_names_its_variable(variable):
    with pytest.raises(SettingError, match=variable):
        attempt_setting({variable: "two"})


def test_the_plan_counts_the_iterations_behind_a_resumed_checkpoint(tmp_path):
    assert recovery.plan_for(SPEC, None) == recovery.Plan("rsl_rl", 10)
    resumed = recovery.plan_for(SPEC, ResumePoint(tmp_path / "m.pt", 4, "rsl_rl"))
    assert resumed.total_iterations == 5 + 10  # rsl_rl's model_4.pt has iterations 0..4 behind it
    recovery.write_plan(tmp_path, resumed)
    assert recovery.read_plan(tmp_path) == resumed
    (tmp_path / recovery.PLAN).write_text("{")
    assert recovery.read_plan(tmp_path) is None


@pytest.mark.parametrize("library_name", ["rsl_rl", "rl_games", "skrl"])
def test_a_retry_ends_where_the_uninterrupted_job_would_have(library_name):
    """Each library's own count: rsl_rl numbers iterations 0..9 and resumes after the checkpoint's index; rl_games
    takes a total of epochs; skrl counts new iterations after the checkpoint's (its numbers are offset by it)."""
    adapter = library(library_name)
    spec = parse_spec({"trainingConfig": {"task": "Isaac-Cartpole-Direct", "maxIterations": 10,
                                          "rlLibrary": library_name}})
    plan = recovery.plan_for(spec, None)
    for checkpoint in (1, 4, 8):
        remaining = plan.total_iterations - adapter.iterations_done(checkpoint)
        argument = adapter.resume_max_iterations(checkpoint, remaining)
        if library_name == "rsl_rl":
            assert list(range(checkpoint + 1, checkpoint + 1 + argument))[-1] == list(range(10))[-1]
        elif library_name == "rl_games":
            assert argument == 10
        else:
            assert adapter.resume_iteration_offset(checkpoint) + argument == 10


def test_a_retry_resumes_from_the_newest_checkpoint_and_says_where_it_was_interrupted(efs, tmp_path):
    found = recovery.recover(SPEC, efs, tmp_path / "inputs", Attempt(2, 3))
    assert found is not None and found.point is not None
    assert (found.point.iteration, found.remaining, found.interrupted_at) == (4, 5, 6)
    assert "interrupted at iteration 6, resumed from checkpoint 4 (attempt 2)" in found.describe()
    assert load_checkpoint(found.point.path, ValueError)["iter"] == 5  # the job's copy numbers iterations on
    assert found.point.previous_metrics_csv is not None
    assert rows(found.point.previous_metrics_csv) == rows(efs / "metrics.csv")


def test_the_retry_and_the_interrupted_attempt_make_one_continuous_metrics_csv(efs, tmp_path):
    found = recovery.recover(SPEC, efs, tmp_path / "inputs", Attempt(2, 3))
    own = write_metrics(tmp_path / "metrics.csv", range(5, 10), wall_time=500.0)  # the resumed run's own rows
    merge_metrics(own, found.point.previous_metrics_csv, found.point.iteration_offset)
    recovery.keep_metrics(own, efs)
    merged = rows(efs / "metrics.csv")
    assert [r["iteration"] for r in merged] == [str(i) for i in range(10)]
    assert [float(r["wall_time"]) for r in merged] == [100.0 + i for i in range(5)] + [500.0 + i for i in range(5, 10)]


def test_an_attempt_interrupted_before_its_first_checkpoint_starts_again(efs, tmp_path):
    for checkpoint in efs.glob("model_*.pt"):
        checkpoint.unlink()
    found = recovery.recover(SPEC, efs, tmp_path / "inputs", Attempt(2, 3))
    assert found is not None and found.point is None and found.remaining == 10
    assert "before its first checkpoint" in found.describe()


def test_without_a_plan_or_of_another_library_nothing_is_recovered(efs, tmp_path):
    other = parse_spec({"trainingConfig": {"task": "Isaac-Cartpole-Direct", "rlLibrary": "skrl"}})
    assert recovery.recover(other, efs, tmp_path / "inputs", Attempt(2, 3)) is None
    (efs / recovery.PLAN).unlink()
    assert recovery.recover(SPEC, efs, tmp_path / "inputs", Attempt(2, 3)) is None


def test_a_held_end_says_what_happened_and_that_the_next_attempt_reports():
    words = recovery.held_end(Attempt(1, 3), "cancelled (SIGTERM received)", 7)
    assert words.startswith("attempt 1 of 3 stopped at iteration 7: cancelled (SIGTERM received)")
    assert "reports none" in words
