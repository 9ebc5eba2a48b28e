"""How a trial's job is started (directly on the backend, or by a papermill-executed notebook) and what the sweep
keeps of each running trial."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from workbench.backends import Backend, Job
from workbench.errors import SweepError
from workbench.results.history import IterationHistory
from workbench.spec.document import JobSpec


class TrialHost(Protocol):
    """What a trial runner needs of its sweep: where jobs go and where reports are kept."""

    backend: Backend
    backend_name: str
    dir: Path

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"

Started = tuple[Job, subprocess.Popen | None, Path | None]
"""A started trial: its job, the notebook process running it (if any) and the executed notebook's path."""


@dataclass
class ActiveTrial:
    """A trial whose job runs: what the sweep polls, reports from and may cancel."""

    number: int
    job: Job
    slot: str | None
    process: subprocess.Popen | None = None
    history: IterationHistory | None = None
    last_step: int | None = None
    """The last iteration whose objective value was reported to the study."""
    stop_reason: str | None = None
    """Why the sweep cancelled the job (pruned, budget spent), None while it may run on."""


class TrialRunner:
    """Starts one trial's job: directly on the backend, or through an executed notebook."""

    name = ""

    def start(self, sweep: TrialHost, number: int, spec: JobSpec) -> Started:
        raise NotImplementedError


class BackendTrialRunner(TrialRunner):
    name = "backend"

    def start(self, sweep: TrialHost, number: int, spec: JobSpec) -> Started:
        return sweep.backend.submit(spec), None, None


class NotebookTrialRunner(TrialRunner):
    """Runs ``notebook`` (default ``notebooks/01_train.ipynb``) under papermill with the trial's spec.

    The notebook gets the parameters ``spec_document``, ``backend`` and ``job_id_file`` and writes its job id
    to that file once submitted, so the sweep can follow and prune the job while the notebook runs.
    """

    name = "notebook"

    def __init__(self, notebook: str | Path | None = None, kernel: str = "python3",
                 start_timeout: float = 300.0) -> None:
        self.notebook = Path(notebook) if notebook else NOTEBOOKS_DIR / "01_train.ipynb"
        self.kernel = kernel
        self.start_timeout = start_timeout

    def start(self, sweep: TrialHost, number: int, spec: JobSpec) -> Started:
        reports = sweep.dir / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        report = reports / f"trial_{number:04d}.ipynb"
        id_file = reports / f"trial_{number:04d}.job-id"
        id_file.unlink(missing_ok=True)
        params_file = reports / f"trial_{number:04d}.parameters.json"
        params = {"spec_document": spec.to_dict(), "backend": sweep.backend_name, "job_id_file": str(id_file)}
        params_file.write_text(json.dumps(params))
        command = [sys.executable, "-m", "papermill", str(self.notebook), str(report), "-f", str(params_file),
                   "-k", self.kernel, "--cwd", str(self.notebook.parent), "--no-progress-bar"]
        stderr = (reports / f"trial_{number:04d}.log").open("w")
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + self.start_timeout
        while not id_file.exists() or not id_file.read_text().strip():
            if process.poll() is not None:
                raise SweepError(f"trial {number}'s notebook stopped before submitting its job; see {report}")
            if time.monotonic() > deadline:
                process.kill()
                raise SweepError(f"trial {number}'s notebook did not submit a job within {self.start_timeout:.0f} s")
            time.sleep(0.2)
        return sweep.backend.job(id_file.read_text().strip()), process, report


RUNNERS: dict[str, Callable[..., TrialRunner]] = {"backend": BackendTrialRunner, "notebook": NotebookTrialRunner}


def trial_runner(run_as: str, notebook: str | None = None) -> TrialRunner:
    """The runner named by a sweep's ``run_as`` (the notebook runner runs ``notebook``)."""
    if run_as == NotebookTrialRunner.name:
        return NotebookTrialRunner(notebook)
    return RUNNERS[run_as]()
