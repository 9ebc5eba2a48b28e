"""Progress from a child's output: rsl_rl's iteration report, rl_games' fps lines, skrl's progress bar, and our
own ``WORKBENCH_PROGRESS {json}`` / ``WORKBENCH_ERROR reason`` lines.

``ProgressParser.feed(line)`` returns a :class:`Progress` with what the line told (or ``None``); the runner merges
them into the job's progress.
"""

from __future__ import annotations

import json
import re

from workbench.libraries import library
from workbench.spec.status import Progress

PROGRESS_PREFIX = "WORKBENCH_PROGRESS "
ERROR_PREFIX = "WORKBENCH_ERROR "

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MISSING_ASSET = re.compile(r"FileNotFoundError: Unable to (?:resolve|find) the file: (\S+)")
"""Isaac Lab's ``retrieve_file_path`` for a path under the asset root (resolve) or a URL it fails to fetch (find)."""
_PROGRESS_KEYS = ("iteration", "max_iterations", "mean_reward", "mean_episode_length", "steps_per_second")


class ProgressParser:
    """Turns output lines of one library's training (or our evaluation) into progress updates."""

    def __init__(self, library_name: str, rollouts_per_iteration: int | None = None) -> None:
        self.library = library(library_name)
        self.rollouts_per_iteration = rollouts_per_iteration
        self.error: str | None = None

    def feed(self, line: str) -> Progress | None:
        line = _ANSI.sub("", line).strip()
        if not line:
            return None
        if line.startswith(PROGRESS_PREFIX):
            return _parse_own_progress(line[len(PROGRESS_PREFIX):])
        if line.startswith(ERROR_PREFIX):
            self.error = line[len(ERROR_PREFIX):].strip()
            return None
        if missing := _MISSING_ASSET.search(line):
            where = missing.group(1)
            self.error = (
                f"asset not found: {where}. The task downloads it from that address at run time (needs network)"
                if "://" in where else
                f"asset not found: {where}. Copy it to that path (the same layout as NVIDIA's asset "
                "server under the asset root), or set WORKBENCH_ASSETS=nucleus to download assets at run time "
                "(needs network)"
            )
            return None
        return self.library.parse_progress(line, self.rollouts_per_iteration)


def _parse_own_progress(payload: str) -> Progress | None:
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    fields = {}
    for key in _PROGRESS_KEYS:
        value = doc.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            fields[key] = int(value) if key in ("iteration", "max_iterations") else float(value)
    return Progress(**fields) if fields else None
