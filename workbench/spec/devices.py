"""Which device a spec's ``device`` field means on this machine (stdlib only: the runner, the CLI's estimate and the
form ask the same question)."""

from __future__ import annotations

from pathlib import Path


def resolve_device(requested: str) -> str:
    """``auto`` becomes ``cuda:0`` where an NVIDIA driver exposes a GPU, else ``cpu``."""
    if requested == "cpu":
        return "cpu"
    if requested == "cuda":
        return "cuda:0"
    gpus = Path("/proc/driver/nvidia/gpus")
    return "cuda:0" if gpus.is_dir() and any(gpus.iterdir()) else "cpu"
