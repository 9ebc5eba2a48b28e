"""Helpers shared by the tests: run the real CLI, read job ids from its output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TRAIN_ITERATIONS = {"rsl_rl": 3, "rl_games": 3, "skrl": 3}
"""Iterations of the shared tiny trainings (16 envs): enough for checkpoints, metrics rows and a reward value."""


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``workbench`` command in a subprocess (the way users and scripts call it)."""
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def job_id_from(output: str) -> str:
    match = re.search(r"submitted job ([0-9a-f-]{36})", output)
    assert match, f"no job id in CLI output:\n{output}"
    return match.group(1)


def cache_root() -> Path:
    """Kept across test sessions: kernel caches, the image's wheelhouse, synthesized templates."""
    return Path(os.environ.get("WORKBENCH_TEST_CACHE", Path.home() / ".cache" / "workbench-tests"))


class _Payload:
    """Pickles as a call of ``os.system``: what a hostile checkpoint carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def hostile_checkpoint(directory: Path) -> tuple[Path, Path]:
    """An rsl_rl-shaped ``model_5.pt`` whose unpickling would create the returned marker file."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    marker, path = directory / "payload-ran", directory / "model_5.pt"
    torch.save({"actor_state_dict": {"mlp.0.weight": torch.zeros(2, 3)}, "iter": 5, "infos": _Payload(marker)}, path)
    return path, marker
