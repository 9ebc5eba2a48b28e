"""Run directories as they are on disk, broken or not: every readable job is listed and shown in the job table,
each unreadable run directory is one FAILED entry with the reason, a status file is a status or a
StatusFileError (never another exception), and a job whose end cannot be written down still ends."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.backends.run_dirs import ended_pid, fill, finished_status, tmpfs, write_run
from workbench.backends.local import PID_MAX, PROGRESS_SHAPE, STATUS_SHAPE, LocalBackend, LocalJob
from workbench.errors import StatusFileError
from workbench.spec.status import JobState, JobStatus
from workbench.widgets import JobTable, job_summary, jobs_frame

SAFE_INTS = st.integers(max_value=1) | st.integers(min_value=PID_MAX + 1)
"""Never an int that could be a live process's id: the backend signals the process ids a status names."""
JSON = st.recursive(
    st.none() | st.booleans() | SAFE_INTS | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = [*STATUS_SHAPE, *(f"progress.{name}" for name in PROGRESS_SHAPE), "progress.epoch",
          "details.runner_pid", "details.child_pgid", "details.submitted_at", "details.started_at"]
"""Where a status file's shape can go wrong: every field the backend and the widgets read, and one too many."""


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return tmp_path / "runs"


def _assert_readable_or_refused(job: LocalJob) -> JobStatus | None:
    """The job's status, which the widgets can summarize; None where the file is refused as not a status."""
    try:
        status = job.status()
    except StatusFileError as exc:
        assert job.job_id in str(exc)
        return None
    summary = job_summary(status, job)
    assert summary["state"] == status.state.value and isinstance(status.progress.describe(), str)
    assert status.heartbeat_age is None or status.heartbeat_age >= 0
    return status


def test_one_bad_run_directory_hides_no_other_job(runs: Path) -> None:
    good, other = str(uuid.uuid4()), str(uuid.uuid4())
    write_run(runs, good, finished_status(good, details={"submitted_at": 2e9}))
    whole = json.dumps(finished_status(other)).encode()
    bad = {
        str(uuid.uuid4()): (whole[: len(whole) // 2], "not JSON"),
        str(uuid.uuid4()): (b"\xff\xfe\x00 not a status", "not JSON"),
        str(uuid.uuid4()): (b"[1, 2, 3]", "must be a JSON object, not list"),
        str(uuid.uuid4()): (whole, "names job"),
        str(uuid.uuid4()): (json.dumps(finished_status(state="DONE")).encode(), "state must be one of"),
        str(uuid.uuid4()): (None, "cannot read the status"),
        "notes": (json.dumps(finished_status("notes")).encode(), "not a job id"),
    }
    for name, (status, _) in bad.items():
        write_run(runs, name, status)
    without_spec = str(uuid.uuid4())
    write_run(runs, without_spec, finished_status(without_spec), spec=False)

    listed = {status.job_id: status for status in LocalBackend().list_jobs()}
    assert set(listed) == {good, without_spec, *bad}
    assert next(iter(listed)) == good, "newest first"
    assert listed[good].state is JobState.SUCCEEDED and listed[without_spec].state is JobState.SUCCEEDED
    for name, (_, words) in bad.items():
        assert listed[name].state is JobState.FAILED, listed[name]
        assert listed[name].reason.startswith("unreadable: ") and words in listed[name].reason, listed[name].reason

    frame = jobs_frame(LocalBackend()).set_index("job_id")
    assert frame.loc[good, ["mode", "task", "state"]].tolist() == ["train", "Isaac-Cartpole-Direct", "SUCCEEDED"]
    assert frame.loc[list(bad), "reason"].tolist() == [listed[name].reason for name in bad]
    assert frame.loc["notes", "mode"] is None or pd.isna(frame.loc["notes", "mode"]), "no job to ask for its spec"
    table = JobTable("local")
    assert len(table.table.children) == 1 + len(listed)
    assert table.open("notes") is None and "must be a UUID" in table.detail.children[0].value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=120) | st.builds(lambda n: json.dumps(finished_status("x")).encode()[:n],
                                                st.integers(0, 200)))
def test_status_file_bytes_are_a_status_or_refused_with_the_reason(runs: Path, data: bytes) -> None:
    shutil.rmtree(runs, ignore_errors=True)
    job_id = str(uuid.uuid4())
    write_run(runs, job_id, data)
    _assert_readable_or_refused(LocalBackend().job(job_id))
    assert job_id in {status.job_id for status in LocalBackend().list_jobs()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=st.sampled_from([state.value for state in JobState]),
       changes=st.lists(st.tuples(st.sampled_from(FIELDS), JSON | st.just(KeyError)), min_size=1, max_size=3))
def test_status_shapes_are_a_status_or_refused_with_the_reason(runs: Path, state: str,
                                                                 changes: list[tuple[str, object]]) -> None:
    job_id = str(uuid.uuid4())
    doc = finished_status(job_id, state=state)
    for field, value in changes:
        section, _, key = field.rpartition(".")
        target = doc.setdefault(section, {}) if section else doc
        if not isinstance(target, dict):
            continue
        if value is KeyError:
            target.pop(key, None)
        else:
            target[key] = value
    write_run(runs, job_id, doc)
    status = _assert_readable_or_refused(LocalBackend().job(job_id))
    if status is not None:
        assert status.job_id == job_id and JobState(status.state)


def test_a_job_whose_end_cannot_be_recorded_still_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its runner died while the disk was full: the backend cannot write down that the job failed, but says so."""
    with tmpfs(tmp_path / "home", size_kib=256) as home:
        monkeypatch.setenv("WORKBENCH_HOME", str(home))
        job_id = str(uuid.uuid4())
        write_run(home / "runs", job_id, finished_status(job_id, state="RUNNING", details={"runner_pid": ended_pid()}))
        fill(home)
        status = LocalBackend().job(job_id).status()
        assert status.state is JobState.FAILED and "not recorded" in status.reason, status
        assert status.reason.startswith("the runner process ended without reporting a result")
        assert [listed.state for listed in LocalBackend().list_jobs()] == [JobState.FAILED]
