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
  passes ``--max_iterations <checkpoint epoch + maxIterations>`` (:func:`max_iterations_for`).
- **skrl**: ``--checkpoint`` makes ``agent.load`` restore the models, optimizer and preprocessors, but the trainer
  always counts timesteps from 0 (skrl 2.1.1 has no initial timestep) and the checkpoint does not store one. The
  workbench does not patch skrl; when it exports the resumed run it adds ``point.iteration`` to its checkpoint
  numbers and iteration column, and ``point.iteration * rollouts`` to its TensorBoard steps
  (:attr:`ResumePoint.iteration_offset`), so metrics.csv and ``checkpoints/model_<n>.pt`` count up. The event files
  in the run's own log directory keep skrl's numbering.

The new job's metrics.csv covers the whole history: :func:`merge_metrics` keeps the previous job's rows before the
first resumed iteration and appends the new rows. A job killed mid-run is resumed from the newest checkpoint it
exported (the runner exports while training), or else the newest one its library wrote under its run directory.
"""

from __future__ import annotations

import csv
import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from workbench.spec import paths
from workbench.errors import RunnerError
from workbench.outputs import export as outputs
from workbench.transport.storage import fetch_input
from workbench.spec.document import is_job_id

log = logging.getLogger(__name__)

LIBRARIES = ("rsl_rl", "rl_games", "skrl")
_LAYOUT_CHECKPOINT = re.compile(r"^model_(\d+)\.pt$")
_SKRL_CHECKPOINT = re.compile(r"^agent_(\d+)\.pt$")
_RL_GAMES_EPOCH = re.compile(r"_ep_(\d+)")


class ResumeError(RunnerError):
    """The checkpoint to resume from cannot be found, read or used with this job."""


@dataclass(frozen=True)
class ResumePoint:
    """Where training continues from.

    ``iteration`` is the training iteration the checkpoint was saved at (rsl_rl ``iter``, rl_games epoch, skrl
    timestep / rollouts). ``previous_metrics_csv`` is the earlier job's metrics.csv when there is one.
    """

    path: Path
    iteration: int
    library: str | None
    previous_metrics_csv: Path | None = None
    source: str = ""

    @property
    def iteration_offset(self) -> int:
        """What to add to the resumed run's own iteration numbers: skrl counts from 0 again, the others go on."""
        return self.iteration if self.library == "skrl" else 0


def resume_checkpoint(
    selector: str, dest_dir: Path, library: str | None = None, checkpoint_roots: Sequence[Path] = ()
) -> ResumePoint:
    """Resolve ``selector`` (job id, checkpoint path/``file://`` URI, or ``s3://`` URI) and copy what it names to
    ``dest_dir`` (the new job keeps its own copy). ``library`` is the new job's RL library, checked against the
    checkpoint's. A job id is looked up in the local run directories and under each of ``checkpoint_roots``
    (e.g. the EFS checkpoint root, holding ``<job-id>/model_<n>.pt``)."""
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
            checkpoint = _newest_checkpoint(checkpoint, selector)
        metrics = _layout_metrics(checkpoint)
    found_library, iteration = inspect_checkpoint(checkpoint)
    if library is not None and found_library is not None and found_library != library:
        raise ResumeError(
            f"cannot resume from {selector}: its checkpoint {checkpoint.name} was written by {found_library} and "
            f"this job trains with {library}; set rlLibrary to {found_library!r}"
        )
    if iteration is None:
        iteration = _iteration_from_name(checkpoint)
    copy = _copy_into(checkpoint, dest_dir, f"resume_{checkpoint.name}")
    if found_library == "rsl_rl":
        _start_rsl_rl_after(copy, iteration)
    point = ResumePoint(
        path=copy,
        iteration=iteration,
        library=found_library or library,
        previous_metrics_csv=_copy_into(metrics, dest_dir, "previous_metrics.csv") if metrics else None,
        source=selector,
    )
    log.info("resuming from %s (%s, iteration %d)", checkpoint, point.library, point.iteration)
    return point


def resume_arguments(library: str, point: ResumePoint) -> list[str]:
    """The ``isaaclab train`` arguments that load ``point`` (pass :func:`max_iterations_for` as ``--max_iterations``)."""
    if library not in LIBRARIES:
        raise ResumeError(f"resuming is supported for {', '.join(LIBRARIES)}, not {library!r}")
    if point.library is not None and point.library != library:
        raise ResumeError(f"a {point.library} checkpoint cannot resume a {library} job")
    return ["--checkpoint", str(point.path)]


def max_iterations_for(library: str, point: ResumePoint, more_iterations: int) -> int:
    """``--max_iterations`` that trains ``more_iterations`` past ``point``: rl_games' ``max_epochs`` is a total."""
    return point.iteration + more_iterations if library == "rl_games" else more_iterations


def merge_metrics(point: ResumePoint, metrics_csv: Path, steps_per_iteration: int = 1) -> Path:
    """Rewrite ``metrics_csv`` (the resumed run's own rows, as exported) as the whole training history.

    The resumed run's ``step`` and ``iteration`` columns are shifted by :attr:`ResumePoint.iteration_offset`
    iterations (skrl). The previous job's rows before the resumed run's first iteration come first (all of them
    while it has logged nothing); its rows from there on are dropped, as training went on from the checkpoint
    (a killed job logs past its last one). Columns are the union of both files in their order.
    """
    new_header, new_rows = _read_csv(metrics_csv) if metrics_csv.exists() else ([], [])
    offset = point.iteration_offset
    for row in new_rows:
        row["step"] = _shift(row["step"], offset * steps_per_iteration)
        if row.get("iteration"):
            row["iteration"] = _shift(row["iteration"], offset)
    previous = point.previous_metrics_csv
    old_header, old_rows = _read_csv(previous) if previous is not None and previous.exists() else ([], [])
    cut = min((_position(row) for row in new_rows), default=None)
    kept = [row for row in old_rows if cut is None or _position(row) < cut]
    tmp = metrics_csv.with_name(f".{metrics_csv.name}.merge")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_union(old_header, new_header), restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept + new_rows)
    tmp.replace(metrics_csv)
    return metrics_csv


def inspect_checkpoint(path: Path) -> tuple[str | None, int | None]:
    """Which library wrote a checkpoint and, where the file stores it, the iteration it was saved at."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ResumeError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(data, dict):
        return None, None
    if "iter" in data and any(key.endswith("state_dict") for key in data):
        return "rsl_rl", int(data["iter"])
    if "epoch" in data and "frame" in data:
        return "rl_games", int(data["epoch"])
    if "policy" in data and ("value" in data or "optimizer" in data):
        return "skrl", None
    return None, None


def _start_rsl_rl_after(copy: Path, iteration: int) -> None:
    """Make the job's own copy of an rsl_rl checkpoint resume at the next iteration.

    rsl_rl saves ``iter`` = the index of the iteration it just completed and ``learn`` starts at ``iter``, so a
    resumed run would number its first iteration like the checkpoint's last one (a duplicate TensorBoard step and,
    with one more iteration, the same ``model_<n>.pt`` name). ``iter + 1`` makes the numbers go on.
    """
    import torch

    data = torch.load(copy, map_location="cpu", weights_only=False)
    data["iter"] = iteration + 1
    torch.save(data, copy)


def _iteration_from_name(path: Path) -> int:
    """skrl checkpoints do not store their timestep: ``model_<iteration>.pt`` or ``agent_<timestep>.pt`` says it."""
    if match := _LAYOUT_CHECKPOINT.match(path.name):
        return int(match.group(1))
    if (match := _SKRL_CHECKPOINT.match(path.name)) and (rollouts := _skrl_rollouts(path)):
        return int(match.group(1)) // rollouts
    raise ResumeError(
        f"cannot tell which iteration {path.name} was saved at; name it model_<iteration>.pt or resume from the job id"
    )


def _job_checkpoint(job_id: str, checkpoint_roots: Sequence[Path]) -> tuple[Path, Path | None]:
    """The newest exported checkpoint of a job (its run directory, then ``<root>/<job-id>`` for each checkpoint root),
    else the newest one its library wrote (a job killed before it exported), and the job's metrics.csv."""
    places = [p for p in (paths.run_dir(job_id), *(Path(root) / job_id for root in checkpoint_roots)) if p.is_dir()]
    if not places:
        raise ResumeError(f"cannot resume from job {job_id}: no such job under {paths.runs_dir()}")
    metrics = next((p / "metrics.csv" for p in places if (p / "metrics.csv").is_file()), None)
    for place in places:
        exported = outputs.newest_checkpoint(place / "checkpoints") or outputs.newest_checkpoint(place)
        if exported is not None:
            return exported, metrics
    return _newest_checkpoint(places[0], f"job {job_id}"), metrics


def _newest_checkpoint(root: Path, what: str) -> Path:
    """The newest checkpoint a library wrote anywhere under ``root`` (for a job killed before it exported)."""
    candidates: list[tuple[int, float, Path]] = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if match := (_LAYOUT_CHECKPOINT.match(path.name) or _SKRL_CHECKPOINT.match(path.name)):
            candidates.append((int(match.group(1)), path.stat().st_mtime, path))
        elif path.suffix == ".pth" and (match := _RL_GAMES_EPOCH.search(path.stem)):
            candidates.append((int(match.group(1)), path.stat().st_mtime, path))
    if not candidates:
        raise ResumeError(f"cannot resume from {what}: it has no checkpoint (model_<n>.pt, agent_<n>.pt or nn/*.pth)")
    return max(candidates, key=lambda item: (item[0], item[1]))[2]


def _layout_metrics(checkpoint: Path) -> Path | None:
    """``<job>/metrics.csv`` next to ``<job>/checkpoints/model_<n>.pt``, if the checkpoint is in the output layout."""
    if checkpoint.parent.name != "checkpoints":
        return None
    metrics = checkpoint.parent.parent / "metrics.csv"
    return metrics if metrics.is_file() else None


def _fetch_s3_metrics(uri: str, dest_dir: Path) -> Path | None:
    """The job's metrics.csv next to an ``s3://.../<job>/checkpoints/model_<n>.pt`` URI, when it is there."""
    parent = uri.rsplit("/", 2)
    if len(parent) != 3 or parent[1] != "checkpoints":
        return None
    try:
        return fetch_input(f"{parent[0]}/metrics.csv", dest_dir / "previous")
    except Exception as exc:  # noqa: BLE001 - a missing metrics file only shortens the merged history
        log.info("no previous metrics.csv next to %s (%s)", uri, exc)
        return None


def _skrl_rollouts(checkpoint: Path) -> int | None:
    """``agent.rollouts`` of the run a skrl ``<run>/checkpoints/agent_<t>.pt`` belongs to, if its params are there."""
    run_dir = checkpoint.parent.parent
    return outputs.skrl_rollouts(run_dir) if (run_dir / "params" / "agent.yaml").is_file() else None


def _copy_into(source: Path, dest_dir: Path, name: str) -> Path:
    target = dest_dir / name
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)
    return target


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row.get("step") not in (None, "")]
        return list(reader.fieldnames or []), rows


def _position(row: dict[str, str]) -> float:
    """Where a row lies in training: its iteration (the same unit as checkpoints), else its step."""
    return float(row.get("iteration") or row["step"])


def _shift(value: str, offset: int) -> str:
    if not offset:
        return value
    shifted = float(value) + offset
    return str(int(shifted)) if shifted.is_integer() else repr(shifted)


def _union(*headers: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for header in headers:
        seen.update(dict.fromkeys(header))
    return list(seen)
