"""The widgets on the aws backend (moto): the job table shows what each job is, a panel reads its library's log.

The jobs go to a state machine that only waits, created next to the pipeline's: they are submitted, listed and
described exactly as on the pipeline, and nothing runs (no Lambda, no Batch job, no training).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from workbench.backends.aws import AwsBackend, AwsJob
from workbench.spec.document import parse_spec
from workbench.widgets import JobPanel, JobTable, jobs_frame

HOLD = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 600, "End": True}}}
TRAIN = {"task": "Isaac-Cartpole-Direct", "rlLibrary": "rl_games", "numEnvs": 16, "maxIterations": 3}
EVALUATE = {"mode": "evaluate", "task": "Isaac-Ant-Direct", "rlLibrary": "skrl",
            "policyS3Uri": "s3://workbench-test-pipeline/outputs/trained/checkpoints/model_3.pt"}


@pytest.fixture(scope="module")
def held(backend: AwsBackend, pipeline) -> AwsBackend:
    """The aws backend on the waiting state machine."""
    config = dataclasses.replace(backend.config, state_machine_arn=pipeline.variant("widgets-hold", HOLD))
    return AwsBackend(config=config, cache_dir=backend.cache_dir)


@pytest.fixture(scope="module")
def jobs(held: AwsBackend) -> Iterator[dict[str, AwsJob]]:
    """A rl_games training and a skrl evaluation, cancelled when the module is done."""
    submitted = {mode: held.submit(parse_spec({"trainingConfig": training}))
                 for mode, training in (("train", TRAIN), ("evaluate", EVALUATE))}
    yield submitted
    for job in submitted.values():
        job.cancel("the test is done")


def test_job_table_shows_the_task_and_mode_of_each_aws_job(held: AwsBackend, jobs: dict[str, AwsJob]) -> None:
    frame = jobs_frame(held).set_index("job_id")
    assert frame.loc[jobs["train"].job_id, ["mode", "task"]].tolist() == ["train", "Isaac-Cartpole-Direct"]
    assert frame.loc[jobs["evaluate"].job_id, ["mode", "task"]].tolist() == ["evaluate", "Isaac-Ant-Direct"]
    table = JobTable(held)
    assert len(table.table.children) == len(frame) + 1
    assert "Isaac-Ant-Direct" in "".join(row.children[1].value for row in table.table.children[1:])


def test_panel_of_an_aws_job_parses_progress_with_the_jobs_library(held: AwsBackend, jobs: dict[str, AwsJob]) -> None:
    for mode, library in (("train", "rl_games"), ("evaluate", "skrl")):
        panel = JobPanel(held.job(jobs[mode].job_id))
        assert panel.iterations.parser.library.name == library
