"""The job table and the policy picker's choices, from the backend's jobs (their specs and statuses)."""

from __future__ import annotations

from workbench.backends.local import LocalBackend
from workbench.spec.status import JobState, Progress
from workbench.widgets import JobTable, job_summary, jobs_frame, policy_choices

TRAIN = {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 3}
EVALUATE = {"mode": "evaluate", "task": "Isaac-Ant-Direct", "rlLibrary": "skrl", "policy": "/tmp/model_3.pt"}


def test_job_table_lists_jobs_of_the_backend(made_job) -> None:
    trained = made_job(TRAIN, details={"started_at": 1000.0}, updated_at=1012.5,
                       progress=Progress(iteration=3, mean_reward=4.25))
    evaluated = made_job(EVALUATE, state=JobState.FAILED)
    frame = jobs_frame(LocalBackend()).set_index("job_id")
    assert frame.loc[trained.job_id, ["mode", "task", "state", "duration_s", "final_reward", "iteration"]].tolist() == [
        "train", "Isaac-Cartpole-Direct", "SUCCEEDED", 12.5, 4.25, 3]
    assert frame.loc[evaluated.job_id, ["mode", "task", "state"]].tolist() == ["evaluate", "Isaac-Ant-Direct", "FAILED"]
    status = evaluated.status()
    submitted = (evaluated.run_dir / "spec.json").stat().st_mtime
    assert status.details["submitted_at"] == submitted, "a local job's status says when it was submitted"
    assert job_summary(status, evaluated)["duration_s"] == round(status.updated_at - submitted, 1)
    table = JobTable("local", limit=1)
    assert list(table.frame().columns)[:4] == ["job_id", "mode", "task", "state"]
    assert len(table.frame()) == 1 and len(table.table.children) == 2


def test_policy_choices_are_the_trained_jobs_whose_checkpoint_an_evaluation_finds(made_job) -> None:
    """The runner resolves a job id to ``job_checkpoint``'s newest numbered checkpoint: a job with only
    ``best.pt`` has none to give."""
    numbered = made_job(TRAIN, files={"checkpoints/model_3.pt": "x"})
    only_best = made_job(TRAIN, files={"checkpoints/best.pt": "x"})
    without = made_job(TRAIN)
    failed = made_job(TRAIN, state=JobState.FAILED, files={"checkpoints/model_1.pt": "x"})
    evaluation = made_job(EVALUATE, files={"checkpoints/model_3.pt": "x"})
    choices = policy_choices(LocalBackend())
    assert numbered.job_id in choices
    assert not {only_best.job_id, without.job_id, failed.job_id, evaluation.job_id} & set(choices)
