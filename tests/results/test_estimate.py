"""Estimates before submit: rates measured from a training's own metrics.csv, kept per task/library/device/envs,
and ``workbench estimate`` saying the expected time with its source (or that there is no measurement yet)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import run_cli
from workbench.outputs import rates
from workbench.results.estimate import aws_cost, duration, expected_time
from workbench.spec.document import parse_spec
from workbench.spec.paths import runs_dir

SPEC = {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "rlLibrary": "rsl_rl", "numEnvs": 16,
                           "maxIterations": 3, "device": "cpu", "seed": 7}}


def _rate(num_envs: int, job_id: str = "0" * 8, per_iteration: float = 0.5) -> rates.Rate:
    return rates.Rate("Isaac-Cartpole-Direct", "rsl_rl", "cpu", num_envs, 10.0, per_iteration, 5, job_id,
                      "2026-12-03T00:00:00Z")


def test_a_rate_is_measured_from_the_trainings_metrics(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("step,iteration,wall_time,reward,episode_length\n"
                       + "".join(f"{i},{i},{1000 + 2 * i},0.5,10\n" for i in range(5)))
    assert rates.measure(metrics, started_at=990.0) == (10.0, 2.0, 5)
    metrics.write_text("step,iteration,wall_time,reward,episode_length\n0,0,1000,0.5,10\n")
    assert rates.measure(metrics, started_at=990.0) is None, "one iteration tells no rate"


def test_concurrent_jobs_lose_no_rate_and_each_key_keeps_its_newest(tmp_path: Path) -> None:
    path = tmp_path / "rates.json"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: rates.record(_rate(n), path), range(1, 17)))
    kept = json.loads(path.read_text())
    assert len(kept) == 16
    for number in range(rates.KEPT_PER_KEY + 2):
        rates.record(_rate(64, job_id=f"job-{number}"), path)
    newest = [item["job_id"] for item in json.loads(path.read_text())["Isaac-Cartpole-Direct|rsl_rl|cpu|64"]]
    assert newest == [f"job-{n}" for n in range(rates.KEPT_PER_KEY + 1, 1, -1)]


def test_the_estimate_uses_the_nearest_env_count_and_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    spec = parse_spec({**SPEC, "trainingConfig": {**SPEC["trainingConfig"], "numEnvs": 32, "maxIterations": 100}})
    none_yet = expected_time(spec, "cpu")
    assert none_yet.seconds is None and "no measurement yet" in none_yet.describe()
    rates.record(_rate(16, job_id="a" * 36, per_iteration=0.25))
    rates.record(_rate(1024, job_id="b" * 36, per_iteration=9.0))
    found = expected_time(spec, "cpu")
    assert found.seconds == pytest.approx(10.0 + 100 * 0.25 * 2)
    assert "aaaaaaaa" in found.source and "scaled linearly from 16 envs" in found.source
    assert expected_time(spec, "cuda:0").seconds is None, "a CPU rate says nothing about a GPU"
    on_aws, cost = aws_cost(spec)
    assert on_aws.seconds is None and "rough" in on_aws.source and cost.usd > 0
    assert duration(59.6) == "1 min 00 s" and duration(3725) == "1 h 02 min"


@pytest.mark.slow
def test_a_finished_training_makes_the_next_estimate(trained_job, tmp_path: Path) -> None:
    trained_job("rsl_rl")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    result = run_cli("estimate", str(path))
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("expected time: ~"))
    named = line.split("measured by job ")[1].split()[0]
    assert any(run.name.startswith(named) for run in runs_dir().iterdir()), line
    aws = run_cli("estimate", str(path), "--backend", "aws")
    assert aws.returncode == 0 and "no measurement yet" in aws.stdout and "cost: estimated $" in aws.stdout
