"""Local jobs made on disk for the widget tests: a run directory with a spec, a final status and output files,
as the local backend and the runner leave them (no job runs)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from workbench.backends.local import SPEC_FILE, STATUS_FILE, LocalBackend, LocalJob
from workbench.spec.document import parse_spec
from workbench.spec.paths import run_dir
from workbench.spec.status import JobState, JobStatus

MadeJob = Callable[..., LocalJob]


@pytest.fixture
def made_job() -> MadeJob:
    """``made_job(training, state=SUCCEEDED, files={}, **status)``: a local job with that ``trainingConfig``, that
    final state and those files (path in the run directory -> text); ``status`` fields go to its JobStatus."""

    def make(training: Mapping[str, Any], state: JobState = JobState.SUCCEEDED,
             files: Mapping[str, str] | None = None, **status: Any) -> LocalJob:
        job_id = str(uuid.uuid4())
        directory = run_dir(job_id)
        directory.mkdir(parents=True)
        (directory / SPEC_FILE).write_text(parse_spec({"trainingConfig": dict(training)}).to_json())
        for name, text in (files or {}).items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_text(text)
        final = JobStatus(job_id, state, state.value.lower(), **status)
        (directory / STATUS_FILE).write_text(json.dumps(final.to_dict()))
        return LocalBackend().job(job_id)

    return make
