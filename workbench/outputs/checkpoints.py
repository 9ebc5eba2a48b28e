"""Checkpoints: their names in the output layout, their numbers, which is newest, and whose format they have.

The runner copies each library's checkpoints into ``checkpoints/`` as ``model_<iteration>.pt`` (``best.pt`` for a
"best so far" file), keeping the library's own file content, so the library is recognized by the content (the
library adapters' ``detects``), never by the name. In a directory the newest checkpoint is the one with the
highest number, compared as numbers (``model_1500`` is newer than ``model_999``).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from workbench.libraries import LIBRARIES, checkpoint_globals, detect, library
from workbench.outputs.layout import CHECKPOINTS
from workbench.spec.paths import run_dir

SUFFIXES = (".pt", ".pth")
BEST = "best.pt"
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about itself: the library that wrote it, the iteration, the policy's sizes."""

    path: Path
    library: str | None
    iteration: int | None
    obs_dim: int | None = None
    action_dim: int | None = None


def layout_name(iteration: int | None) -> str:
    """``model_<iteration>.pt``, or ``best.pt`` for a checkpoint without an iteration."""
    return BEST if iteration is None else f"model_{iteration}.pt"


def checkpoint_number(path: PurePath) -> int | None:
    """The number in a checkpoint's name (the last one in it), or None."""
    match = _LAST_NUMBER.search(path.stem)
    return int(match.group(1)) if match else None


def newest_of(names: Iterable[PurePath]) -> PurePath | None:
    """The numbered checkpoint with the highest number among ``names`` (any other file is ignored)."""
    numbered = [p for p in names if p.suffix in SUFFIXES and checkpoint_number(p) is not None]
    return max(numbered, key=lambda p: (checkpoint_number(p), p.name)) if numbered else None


def newest_checkpoint(directory: Path) -> Path | None:
    """The numbered checkpoint with the highest number in ``directory`` (None if it has none)."""
    if not directory.is_dir():
        return None
    return newest_of(p for p in directory.iterdir() if p.is_file())


def job_checkpoint_places(job_id: str, checkpoint_roots: Sequence[Path] = ()) -> list[Path]:
    """Where a job's checkpoints may be: its local run directory, then ``<root>/<job-id>`` for each root (e.g.
    the EFS checkpoint root); only the places that exist."""
    candidates = (run_dir(job_id), *(Path(root) / job_id for root in checkpoint_roots))
    return [place for place in candidates if place.is_dir()]


def job_checkpoint(job_id: str, checkpoint_roots: Sequence[Path] = ()) -> Path | None:
    """The newest exported checkpoint of a job: ``checkpoints/`` of its run directory, or a checkpoint root's
    ``<job-id>/`` directory (which holds them directly)."""
    for place in job_checkpoint_places(job_id, checkpoint_roots):
        found = newest_checkpoint(place / CHECKPOINTS) or newest_checkpoint(place)
        if found is not None:
            return found
    return None


def newest_written_checkpoint(root: Path) -> Path | None:
    """The newest checkpoint a library wrote anywhere under ``root`` (a job killed before it exported)."""
    candidates: list[tuple[int, float, Path]] = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        numbers = [library_.written_checkpoint_number(path.name) for library_ in LIBRARIES.values()]
        number = next((n for n in numbers if n is not None), None)
        if number is not None:
            candidates.append((number, path.stat().st_mtime, path))
    return max(candidates, key=lambda item: (item[0], item[1]))[2] if candidates else None


def load_checkpoint(path: Path, error: type[Exception]) -> Mapping[str, Any]:
    """Load a checkpoint on the CPU without running code from it; every failure becomes ``error`` with the reason.

    Unpickling is restricted to tensors, containers, numbers and the types a supported library's checkpoints hold
    (the adapters' ``checkpoint_globals``): a file naming anything else (``os.system``, a class of its own) is
    refused before any of it is built.
    """
    import pickle

    import torch

    if not path.is_file():
        raise error(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise error(f"checkpoint {path} is empty")
    allowed = checkpoint_globals()
    try:
        with torch.serialization.safe_globals(allowed):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise error(_refusal(path, allowed) or f"checkpoint {path} is corrupt or not a PyTorch checkpoint "
                    f"({_unpickler_reason(exc)})") from None
    except Exception as exc:  # torch raises many types for a damaged file
        raise error(f"checkpoint {path} is corrupt or not a PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, Mapping):
        raise error(f"checkpoint {path} holds a {type(data).__name__}, expected a dictionary of weights")
    return data


def _unpickler_reason(exc: Exception) -> str:
    """The unpickler's own reason from torch's long weights-only message (e.g. "Unsupported operand 110")."""
    text = str(exc)
    _, found, rest = text.partition("WeightsUnpickler error:")
    reason = rest.strip().splitlines()[0].strip() if found and rest.strip() else text.splitlines()[0]
    return f"UnpicklingError: {reason}"


def _refusal(path: Path, allowed: list[Any]) -> str | None:
    """Why a checkpoint is refused: the types it names beyond the allow-list, if it names any."""
    import torch

    known = {f"{kind.__module__}.{kind.__qualname__}" for kind in allowed}
    try:
        named = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - an unreadable file is reported as corrupt by the caller
        return None
    foreign = [name for name in named if name not in known]
    if not foreign:
        return None
    return (f"refusing to load {path}: it contains {', '.join(foreign)}, which no rsl_rl, rl_games or skrl "
            "checkpoint holds; nothing from it was run")


def inspect_checkpoint(path: Path, error: type[Exception]) -> CheckpointInfo:
    """Load a checkpoint and read what it says: its library (None for an unknown format), iteration and sizes."""
    data = load_checkpoint(path, error)
    found = detect(data)
    if found is None:
        return CheckpointInfo(path, None, None)
    sizes = found.policy_sizes(data, path)
    return CheckpointInfo(path, found.name, sizes.iteration, sizes.obs_dim, sizes.action_dim)


def expected_keys(library_name: str) -> str:
    """The keys a checkpoint of ``library_name`` has (for error messages)."""
    return ", ".join(library(library_name).checkpoint_keys)


def sync_checkpoints(library_run_dir: Path, library_name: str, dest: Path, iteration_offset: int = 0) -> list[Path]:
    """Copy the library's checkpoints that are new or changed into ``dest`` under their layout names; returns the
    copies. ``iteration_offset`` is added to the iterations (a resumed skrl run counts from 0 again)."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    found = library(library_name).run_checkpoints(library_run_dir)
    for checkpoint in sorted(found, key=lambda c: (c.iteration is None, c.iteration or 0, c.source.stat().st_mtime)):
        iteration = checkpoint.iteration + iteration_offset if checkpoint.iteration is not None else None
        target = dest / layout_name(iteration)
        source_stat = checkpoint.source.stat()
        if target.exists() and target.stat().st_mtime >= source_stat.st_mtime and target.stat().st_size == source_stat.st_size:
            continue
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copy2(checkpoint.source, tmp)
        tmp.replace(target)
        copied.append(target)
    return copied
