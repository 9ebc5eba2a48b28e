"""Training jobs shared by test_custom_env.py and test_resume.py: each costs 20-60 s here, so each runs once a session.

The example custom package (examples/custom_env) trains with a different archive format per library, so the
first trainings show each format trains; resuming them then shows the counters continue.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

from workbench.backends.local import LocalBackend, LocalJob
from workbench.spec import paths
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "examples" / "custom_env" / "build.py"
TASK = "Workbench-Cartpole-Variant-Direct"
FORMAT_FOR_LIBRARY = {"rsl_rl": "tar.gz", "rl_games": "zip", "skrl": "whl"}
FIRST_ITERATIONS = 3
MORE_ITERATIONS = 2
JOB_TIMEOUT_S = 600


def build_packages(out_dir: Path, source: Path | None = None) -> dict[str, Path]:
    """Run the example's build script (the command the README gives) and return the archives by format."""
    command = [sys.executable, str(BUILD_SCRIPT), str(out_dir)] + (["--source", str(source)] if source else [])
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    built = [Path(line) for line in result.stdout.split()]
    return {fmt: next(p for p in built if p.name.endswith(f".{fmt}")) for fmt in ("tar.gz", "zip", "whl")}


@functools.cache
def example_packages() -> dict[str, Path]:
    return build_packages(paths.workbench_home() / "example-packages")


def train(library: str, max_iterations: int, package_format: str | None = None, **training: object) -> LocalJob:
    """Train the example task through the local backend and wait for it to succeed."""
    document = {
        "trainingConfig": {
            "task": TASK, "rlLibrary": library, "numEnvs": 16, "maxIterations": max_iterations, "device": "cpu",
            "seed": 1, **training,
        },
        "customEnvironmentS3Uri": str(example_packages()[package_format or FORMAT_FOR_LIBRARY[library]]),
    }
    job = LocalBackend(max_concurrent=2).submit(parse_spec(document))
    status = job.wait(timeout=JOB_TIMEOUT_S, poll_interval=0.5)
    assert status.state is JobState.SUCCEEDED, f"{library} job {job.job_id}: {status.reason}\n{log_tail(job)}"
    return job


def log_tail(job: LocalJob, lines: int = 30) -> str:
    log = job.outputs() / "logs" / "job.log"
    return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else "(no log)"


@functools.cache
def first_training(library: str) -> LocalJob:
    return train(library, FIRST_ITERATIONS)


@functools.cache
def resumed_training(library: str) -> LocalJob:
    return train(library, MORE_ITERATIONS, resumeFrom=first_training(library).job_id)


def checkpoint_iterations(job: LocalJob) -> list[int]:
    names = (job.outputs() / "checkpoints").glob("model_*.pt")
    return sorted(int(p.stem.removeprefix("model_")) for p in names)
