"""Policy selection and checks: newest checkpoint by number, library formats, and failures before simulation."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import torch
from evaluation_fixtures import backend, log_tail  # noqa: F401  (fixture)

from workbench.errors import PolicyError
from workbench.runner.inputs.policy import check_sizes, inspect_checkpoint, newest_checkpoint, resolve_selector
from workbench.spec import paths
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState

TASK = "Isaac-Cartpole-Direct"


def test_newest_checkpoint_compares_iterations_as_numbers(tmp_path: Path) -> None:
    for name in ("model_999.pt", "model_1500.pt", "model_20.pt", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert newest_checkpoint(tmp_path).name == "model_1500.pt"


def test_job_id_selects_the_newest_checkpoint_of_that_job(workbench_home: Path, tmp_path: Path) -> None:
    job_id = str(uuid.uuid4())
    checkpoints = paths.run_dir(job_id) / "checkpoints"
    checkpoints.mkdir(parents=True)
    try:
        for name in ("model_999.pt", "model_1500.pt"):
            (checkpoints / name).write_bytes(b"x")
        assert resolve_selector(job_id, tmp_path) == checkpoints / "model_1500.pt"
        assert resolve_selector(f"file://{checkpoints}", tmp_path) == (checkpoints / "model_1500.pt").resolve()
    finally:
        shutil.rmtree(paths.run_dir(job_id))


def test_missing_policies_say_what_was_expected(workbench_home: Path, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="has no checkpoints under"):
        resolve_selector(str(uuid.uuid4()), tmp_path)
    with pytest.raises(PolicyError, match="not found"):
        resolve_selector(str(tmp_path / "nope.pt"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyError, match=r"no numbered checkpoint \(model_<iteration>.pt\)"):
        resolve_selector(str(tmp_path / "empty"), tmp_path)


def test_damaged_files_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(PolicyError, match="is empty"):
        inspect_checkpoint(tmp_path / "empty.pt", "rsl_rl")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(PolicyError, match="corrupt or not a PyTorch checkpoint"):
        inspect_checkpoint(tmp_path / "garbage.pt", "rsl_rl")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(PolicyError, match="expected a dictionary of weights"):
        inspect_checkpoint(tmp_path / "list.pt", "rsl_rl")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(PolicyError, match="expected the keys actor_state_dict, iter"):
        inspect_checkpoint(tmp_path / "other.pt", "rsl_rl")


@pytest.mark.slow
@pytest.mark.parametrize("library", ["rsl_rl", "rl_games", "skrl"])
def test_each_library_checkpoint_is_recognized_by_content(library: str, trained_job) -> None:
    checkpoint = newest_checkpoint(trained_job(library).outputs() / "checkpoints")
    assert checkpoint.name.startswith("model_")
    info = inspect_checkpoint(checkpoint, library)
    assert (info.library, info.obs_dim, info.action_dim) == (library, 4, 1)  # cartpole: 4 observations, 1 action
    others = [name for name in ("rsl_rl", "rl_games", "skrl") if name != library]
    with pytest.raises(PolicyError, match=f"was written by {library}, but the evaluation uses {others[0]}"):
        inspect_checkpoint(checkpoint, others[0])
    with pytest.raises(
        PolicyError, match=r"does not fit task 'Isaac-Ant': it takes 4 observations \(the task has 60\)"
    ):
        check_sizes(info, "Isaac-Ant", 60, 8)


def _evaluate(backend, policy: str, task: str = TASK, library: str = "rsl_rl"):
    return backend.submit(
        parse_spec(
            {
                "trainingConfig": {
                    "mode": "evaluate",
                    "task": task,
                    "rlLibrary": library,
                    "policy": policy,
                    "device": "cpu",
                    "numEnvs": 2,
                    "numEpisodes": 2,
                    "stepsPerEpisode": 20,
                }
            }
        )
    )


@pytest.mark.slow
def test_bad_policies_fail_the_job_with_the_reason(backend, trained_job, tmp_path: Path) -> None:
    """Corrupt file, wrong library and wrong task: FAILED with a reason, before any simulation step."""
    corrupt = tmp_path / "model_5.pt"
    good = newest_checkpoint(trained_job("rsl_rl").outputs() / "checkpoints")
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    wrong_task = tmp_path / "model_6.pt"
    shutil.copy(good, wrong_task)
    jobs = {
        "corrupt": (_evaluate(backend, str(corrupt)), "is corrupt or not a PyTorch checkpoint"),
        "library": (
            _evaluate(backend, str(good), library="skrl"),
            "was written by rsl_rl, but the evaluation uses skrl",
        ),
        "task": (_evaluate(backend, str(wrong_task), task="Isaac-Ant-Direct"), "does not fit task 'Isaac-Ant-Direct'"),
    }
    for name, (job, reason) in jobs.items():
        status = job.wait(timeout=300, poll_interval=0.5)
        assert status.state is JobState.FAILED, f"{name}: {status.state.value} {status.reason}\n{log_tail(job)}"
        assert reason in status.reason, f"{name}: {status.reason}"
        log = (job.outputs() / "logs" / "job.log").read_text()
        assert "evaluating " not in log, f"{name}: the simulation started"
        assert not (job.outputs() / "metrics.csv").exists()
