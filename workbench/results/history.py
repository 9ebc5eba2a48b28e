"""Per-iteration progress of a running job, read from its log with the runner's own progress parser.

A job's status carries only its latest progress, and a poller sees some iterations but not all. The log has
every iteration, so curves (``workbench.widgets``) and pruning decisions (``workbench.sweep``) read it instead:
:class:`IterationHistory` reads only the lines written since its last ``update`` (the job's :class:`LogReader`).
"""

from __future__ import annotations

from workbench.backends.base import Job
from workbench.errors import WorkbenchError
from workbench.outputs.progress import ProgressParser
from workbench.spec.status import Progress


class IterationHistory:
    """Progress per training iteration, parsed incrementally from the job's log (``library``: the job's own)."""

    def __init__(self, job: Job, library: str | None = None) -> None:
        self.job = job
        self.parser = ProgressParser(library or job.spec().rl_library)
        self.points: dict[int, Progress] = {}
        self._current = Progress()
        self._reader = job.log_reader()

    def update(self) -> dict[int, Progress]:
        """Read the log's new lines; returns the iterations completed or changed by them."""
        changed: dict[int, Progress] = {}
        try:
            lines = self._reader.read()
        except WorkbenchError:
            return changed
        for line in lines:
            progress = self.parser.feed(line)
            if progress is None:
                continue
            if progress.iteration is not None and progress.iteration != self._current.iteration:
                self._current = Progress(iteration=progress.iteration, max_iterations=progress.max_iterations)
            self._current = self._current.merged(progress)
            if self._current.iteration is not None:
                self.points[self._current.iteration] = self._current
                changed[self._current.iteration] = self._current
        return changed
