"""Session fixtures shared by the evaluation tests: an evaluation of each library's tiny trained policy.

Test modules import the fixtures they use; the jobs are cached here, so they run once per session even though
each importing module registers its own copy of the fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.backends.local import LocalBackend, LocalJob
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

LIBRARIES = ("rsl_rl", "rl_games", "skrl")
TASK = "Isaac-Cartpole-Direct"
EVALUATION = {
    "numEnvs": 2,
    "numEpisodes": 3,
    "stepsPerEpisode": 30,
    "videoEpisodes": 2,
    "videoWidth": 320,
    "videoHeight": 180,
}
JOB_TIMEOUT = 600
_EVALUATED: dict[str, LocalJob] = {}


def log_tail(job: LocalJob, lines: int = 40) -> str:
    path = job.outputs() / "logs" / "job.log"
    return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else "(no log)"


def wait_all(jobs: dict[str, LocalJob], expect: JobState = JobState.SUCCEEDED) -> None:
    for name, job in jobs.items():
        status = job.wait(timeout=JOB_TIMEOUT, poll_interval=0.5)
        assert (
            status.state is expect
        ), f"{name} job {job.job_id}: {status.state.value} ({status.reason})\n{log_tail(job)}"


@pytest.fixture(scope="session")
def evaluation_settings() -> dict:
    """The size of the shared evaluations (numEnvs, numEpisodes, stepsPerEpisode, video settings)."""
    return dict(EVALUATION)


@pytest.fixture(scope="session")
def backend(workbench_home: Path) -> LocalBackend:
    return LocalBackend(max_concurrent=3)


@pytest.fixture(scope="session")
def evaluated_jobs(backend: LocalBackend, trained_job) -> dict[str, LocalJob]:
    """An evaluation with video of each library's shared tiny training (conftest's ``trained_job``), selected by
    the training's job id; the three run side by side."""
    if _EVALUATED:
        return _EVALUATED
    trained = {library: trained_job(library) for library in LIBRARIES}
    jobs = {
        library: backend.submit(
            parse_spec(
                {
                    "trainingConfig": {
                        "mode": "evaluate",
                        "task": TASK,
                        "rlLibrary": library,
                        "policy": job.job_id,
                        "device": "cpu",
                        "recordVideo": True,
                        "seed": 3,
                        **EVALUATION,
                    }
                }
            )
        )
        for library, job in trained.items()
    }
    wait_all(jobs)
    _EVALUATED.update(jobs)
    return jobs
