"""Resume training from a checkpoint (``trainingConfig.resumeFrom``) so that it really continues.

The selector is a previous job id (its newest checkpoint), a checkpoint file (path or ``file://``), or an
``s3://`` URI. What each library continues by itself, read from its sources (Isaac Lab 3.0.0 train backends,
rsl-rl-lib 5.5.1, rl_games 1.6.5, skrl 2.1.1), and what the workbench adds:

- **rsl_rl**: ``--checkpoint`` makes ``OnPolicyRunner.load`` restore the models, the optimizer and
  ``current_learning_iteration`` (the checkpoint's ``iter``); ``learn(max_iterations)`` then runs the iterations
  ``iter .. iter + max_iterations - 1`` and TensorBoard steps and ``model_<n>.pt`` names continue. rsl_rl stores the
  index of the iteration it just *completed*, so by itself it would repeat that index; the job's own copy of the
  checkpoint gets ``iter + 1``. ``maxIterations`` counts the new iterations.
- **rl_games**: ``--checkpoint`` makes ``restore`` set ``epoch_num`` and ``frame`` from the checkpoint, so epochs,
  frames and TensorBoard steps continue. Its ``max_epochs`` is a total, not a count of new epochs, so the workbench
  passes ``--max_iterations <checkpoint epoch + maxIterations>`` (its adapter's ``resume_max_iterations``).
- **skrl**: ``--checkpoint`` makes ``agent.load`` restore the models, optimizer and preprocessors, but the trainer
  always counts timesteps from 0 (skrl 2.1.1 has no initial timestep) and the checkpoint does not store one. The
  workbench does not patch skrl; when it exports the resumed run it adds ``point.iteration`` to its checkpoint
  numbers and iteration column, and ``point.iteration * rollouts`` to its TensorBoard steps
  (:attr:`ResumePoint.iteration_offset`), so metrics.csv and ``checkpoints/model_<n>.pt`` count up. The event files
  in the run's own log directory keep skrl's numbering.

The new job's metrics.csv covers the whole history: ``outputs.metrics.merge_metrics`` keeps the previous job's rows before the
first resumed iteration and appends the new rows. A job killed mid-run is resumed from the newest checkpoint it
exported (the runner exports while training), or else the newest one its library wrote under its run directory.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from workbench.errors import ResumeError
from workbench.libraries import library
from workbench.outputs import checkpoints
from workbench.outputs.layout import CHECKPOINTS, METRICS
from workbench.spec.document import is_job_id
from workbench.spec.paths import runs_dir
from workbench.transport.storage import fetch_input

log = logging.getLogger(__name__)

_LAYOUT_CHECKPOINT = re.compile(r"^model_(\d+)\.pt$")


@dataclass(frozen=True)
class ResumePoint:
    """Where training continues from.

    ``iteration`` is the training iteration the checkpoint was saved at (rsl_rl ``iter``, rl_games epoch, skrl
    timestep / rollouts). ``previous_metrics_csv`` is the earlier job's metrics.csv when there is one.
    """

    path: Path
    iteration: int
    library: str
    previous_metrics_csv: Path | None = None
    source: str = ""

    @property
    def iteration_offset(self) -> int:
        """What to add to the resumed run's own iteration numbers (skrl counts from 0 again, the others go on)."""
        return library(self.library).resume_iteration_offset(self.iteration)

    def max_iterations(self, more_iterations: int) -> int:
        """``--max_iterations`` that trains ``more_iterations`` past this point."""
        return library(self.library).resume_max_iterations(self.iteration, more_iterations)

    def arguments(self) -> list[str]:
        """The ``isaaclab train`` arguments that load this checkpoint."""
        return ["--checkpoint", str(self.path)]


def resume_checkpoint(
    selector: str, dest_dir: Path, library_name: str, checkpoint_roots: Sequence[Path] = ()
) -> ResumePoint:
    """Resolve ``selector`` (job id, checkpoint path/``file://`` URI, or ``s3://`` URI) and copy what it names to
    ``dest_dir`` (the new job keeps its own copy). The checkpoint's library must be the new job's. A job id is
    looked up in the local run directories and under each of ``checkpoint_roots`` (e.g. the EFS checkpoint root,
    holding ``<job-id>/model_<n>.pt``)."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    if is_job_id(selector):
        checkpoint, metrics = _job_checkpoint(selector, checkpoint_roots)
    elif urlparse(selector).scheme == "s3":
        checkpoint = fetch_input(selector, dest_dir)
        metrics = _fetch_s3_metrics(selector, dest_dir)
    else:
        checkpoint = fetch_input(selector, dest_dir)
        if checkpoint.is_dir():
            checkpoint = _newest_written(checkpoint, selector)
        metrics = _layout_metrics(checkpoint)
    copy = _copy_into(checkpoint, dest_dir, f"resume_{checkpoint.name}")
    info = checkpoints.inspect_checkpoint(copy, ResumeError)
    if info.library is not None and info.library != library_name:
        raise ResumeError(
            f"cannot resume from {selector}: its checkpoint {checkpoint.name} was written by {info.library} and "
            f"this job trains with {library_name}; set rlLibrary to {info.library!r}"
        )
    iteration = info.iteration if info.iteration is not None else _iteration_from_name(checkpoint, library_name)
    _prepare_copy(copy, library_name, iteration)
    point = ResumePoint(
        path=copy,
        iteration=iteration,
        library=library_name,
        previous_metrics_csv=_copy_into(metrics, dest_dir, "previous_metrics.csv") if metrics else None,
        source=selector,
    )
    log.info("resuming from %s (%s, iteration %d)", checkpoint, point.library, point.iteration)
    return point


def _prepare_copy(copy: Path, library_name: str, iteration: int) -> None:
    """Rewrite the job's own copy where its library needs that to number the resumed iterations on. The copy, not
    the source, is what was inspected and what the training loads."""
    changed = library(library_name).resumed_checkpoint(checkpoints.load_checkpoint(copy, ResumeError), iteration)
    if changed is not None:
        import torch

        torch.save(dict(changed), copy)


def _iteration_from_name(path: Path, library_name: str) -> int:
    """The iteration a checkpoint that does not store it was saved at, from its name (skrl's do not)."""
    if match := _LAYOUT_CHECKPOINT.match(path.name):
        return int(match.group(1))
    iteration = library(library_name).iteration_from_file(path)
    if iteration is None:
        raise ResumeError(
            f"cannot tell which iteration {path.name} was saved at; name it model_<iteration>.pt or resume from the "
            "job id"
        )
    return iteration


def _job_checkpoint(job_id: str, checkpoint_roots: Sequence[Path]) -> tuple[Path, Path | None]:
    """The newest exported checkpoint of a job, else the newest one its library wrote (a job killed before it
    exported), and the job's metrics.csv."""
    places = checkpoints.job_checkpoint_places(job_id, checkpoint_roots)
    if not places:
        raise ResumeError(f"cannot resume from job {job_id}: no such job under {runs_dir()}")
    metrics = next((p / METRICS for p in places if (p / METRICS).is_file()), None)
    exported = checkpoints.job_checkpoint(job_id, checkpoint_roots)
    return exported or _newest_written(places[0], f"job {job_id}"), metrics


def _newest_written(root: Path, what: str) -> Path:
    found = checkpoints.newest_written_checkpoint(root)
    if found is None:
        raise ResumeError(f"cannot resume from {what}: it has no checkpoint (model_<n>.pt, agent_<n>.pt or nn/*.pth)")
    return found


def _layout_metrics(checkpoint: Path) -> Path | None:
    """``<job>/metrics.csv`` next to ``<job>/checkpoints/model_<n>.pt``, if the checkpoint is in the output layout."""
    if checkpoint.parent.name != CHECKPOINTS:
        return None
    metrics = checkpoint.parent.parent / METRICS
    return metrics if metrics.is_file() else None


def _fetch_s3_metrics(uri: str, dest_dir: Path) -> Path | None:
    """The job's metrics.csv next to an ``s3://.../<job>/checkpoints/model_<n>.pt`` URI, when it is there."""
    parent = uri.rsplit("/", 2)
    if len(parent) != 3 or parent[1] != CHECKPOINTS:
        return None
    try:
        return fetch_input(f"{parent[0]}/{METRICS}", dest_dir / "previous")
    except Exception as exc:  # noqa: BLE001 - a missing metrics file only shortens the merged history
        log.info("no previous metrics.csv next to %s (%s)", uri, exc)
        return None


def _copy_into(source: Path, dest_dir: Path, name: str) -> Path:
    target = dest_dir / name
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)
    return target
