"""Assembling the output layout from what Isaac Lab wrote in its run directory: the run directory itself, its git
diffs and its videos (checkpoints: :mod:`workbench.outputs.checkpoints`; metrics: :mod:`workbench.outputs.metrics`)."""

from __future__ import annotations

import shutil
from pathlib import Path


def find_run_dir(logs_root: Path, library_name: str) -> Path | None:
    """The newest Isaac Lab run directory (the one holding ``run.json``) under ``logs_root/logs/<library>/``."""
    runs = sorted((logs_root / "logs" / library_name).glob("*/*/run.json"), key=lambda p: p.stat().st_mtime)
    return runs[-1].parent if runs else None


def export_git_diffs(run_dir: Path, dest_dir: Path) -> list[Path]:
    """Copy the run's ``*.diff`` files as ``<name>_git_diff.txt``."""
    written = []
    for diff in sorted(run_dir.rglob("*.diff")):
        target = dest_dir / f"{diff.stem}_git_diff.txt"
        shutil.copyfile(diff, target)
        written.append(target)
    return written


def export_videos(run_dir: Path, dest_dir: Path) -> list[Path]:
    """Copy the run's clips into ``dest_dir`` (the layout's ``videos/``)."""
    written = []
    for video in sorted(run_dir.rglob("*.mp4")):
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / video.name
        shutil.copyfile(video, target)
        written.append(target)
    return written
