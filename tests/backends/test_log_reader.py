"""A job's log is read incrementally: each read returns only what was written since the last one."""

from __future__ import annotations

from pathlib import Path

from workbench.backends.local import FileLogReader, LocalJob
from workbench.results.history import IterationHistory
from workbench.spec.document import parse_spec

REPORT = "Learning iteration {i}/5\nMean reward: {r}\n"


def test_the_reader_returns_only_new_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    reader = FileLogReader(log)
    assert reader.read() == []
    log.write_text("one\ntw")
    assert reader.read() == ["one"] and reader.pending == "tw"
    with log.open("a") as handle:
        handle.write("o\nthree\n")
    assert reader.read() == ["two", "three"]
    assert reader.read() == [] and reader.position == log.stat().st_size


def test_the_history_parses_each_line_once(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "spec.json").write_text(parse_spec({"trainingConfig": {"maxIterations": 5}}).to_json())
    log = tmp_path / "logs" / "job.log"
    log.write_text(REPORT.format(i=0, r=1.5))
    history = IterationHistory(LocalJob("j", tmp_path, 60.0, 1.0))
    assert {k: p.mean_reward for k, p in history.update().items()} == {1: 1.5}
    with log.open("a") as handle:
        handle.write(REPORT.format(i=1, r=2.5))
    assert {k: p.mean_reward for k, p in history.update().items()} == {2: 2.5}
    assert history.update() == {} and sorted(history.points) == [1, 2]
