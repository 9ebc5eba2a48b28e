"""``workbench sweep SWEEP.json``: a live table of the trials, a second run continues (nothing re-run), and a bad
file or another experiment under the same name exits 2 before any trial starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli

BASE = {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 8, "maxIterations": 2, "device": "cpu"}}
SWEEP = {
    "name": "cli", "base": BASE, "space": {"seed": {"type": "choice", "values": [1, 2]}}, "strategy": "grid",
    "packing": {"slots_per_device": 2, "devices": ["cpu"]}, "poll_interval": 0.5,
}


def _write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(("change", "named"), [
    ({"spaces": {}}, "unknown spaces"),
    ({"space": None}, "bad space"),
    ({"strategy": "annealing"}, "unknown strategy 'annealing'"),
    ({"base": {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 0}}}, "numEnvs"),
])
def test_a_bad_sweep_file_exits_2_naming_the_problem(tmp_path: Path, change: dict, named: str) -> None:
    result = run_cli("sweep", str(_write(tmp_path / "sweep.json", {**SWEEP, **change})), "--root", str(tmp_path / "s"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s" / "journal.json").exists(), "no trial may start"


def test_a_file_without_a_space_names_the_required_keys(tmp_path: Path) -> None:
    document = {key: value for key, value in SWEEP.items() if key != "space"}
    result = run_cli("sweep", str(_write(tmp_path / "sweep.json", document)))
    assert result.returncode == 2 and "missing space" in result.stderr, result.stderr


@pytest.mark.slow
def test_the_sweep_runs_with_a_table_and_continues_when_run_again(tmp_path: Path) -> None:
    path, root = _write(tmp_path / "sweep.json", SWEEP), tmp_path / "cli"
    first = run_cli("sweep", str(path), "--root", str(root))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "sweep cli: 2 trial(s)" in first.stdout and first.stdout.count("COMPLETE") >= 2, first.stdout
    assert "best: trial" in first.stdout
    journal = json.loads((root / "journal.json").read_text())["trials"]
    jobs = {number: trial["job_id"] for number, trial in journal.items()}
    assert len(jobs) == 2 and all(jobs.values())

    again = run_cli("sweep", str(path), "--root", str(root))
    assert again.returncode == 0, again.stdout + again.stderr
    after = json.loads((root / "journal.json").read_text())["trials"]
    assert {number: trial["job_id"] for number, trial in after.items()} == jobs, "nothing may run twice"
    assert "2 trial(s)" in again.stdout

    other = _write(tmp_path / "other.json", {**SWEEP, "space": {"seed": {"type": "choice", "values": [3, 4]}}})
    refused = run_cli("sweep", str(other), "--root", str(root))
    assert refused.returncode == 2 and "started with another space" in refused.stderr, refused.stderr
