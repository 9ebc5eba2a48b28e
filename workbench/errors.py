"""Typed errors. Every one carries the reason in words a user understands."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.spec.document import FieldError
    from workbench.spec.status import JobStatus


class WorkbenchError(Exception):
    """Base class of the workbench's own errors."""


class SpecError(WorkbenchError, ValueError):
    """The document is not a valid job spec; ``errors`` lists every problem found, each with its field's path."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"invalid job spec ({len(self.errors)} problem(s)):\n{lines}")


class JobNotFoundError(WorkbenchError):
    """No job with that id on this backend."""


class JobFailedError(WorkbenchError):
    """A job ended in FAILED or CANCELLED."""

    def __init__(self, status: JobStatus) -> None:
        self.status = status
        super().__init__(f"job {status.job_id} {status.state.value}: {status.reason}")


class StatusFileError(WorkbenchError, ValueError):
    """A local job's status file is missing, unreadable, or not a job status (malformed input: the CLI exits 2)."""


class RunnerError(WorkbenchError):
    """The runner cannot go on with the job; the message is the job's failure reason."""


class AssetError(RunnerError):
    """An asset the task needs is missing from the offline asset root."""


class PolicyError(RunnerError):
    """The policy to evaluate is missing, corrupt or does not fit the task/library."""


class PackageError(RunnerError):
    """A custom environment package is unsafe, corrupt or failed to install."""


class ResumeError(RunnerError):
    """The checkpoint to resume from cannot be found, read or used with this job."""


class EvaluationError(RunnerError):
    """The evaluation cannot go on; the message is the reason."""


class SweepError(WorkbenchError):
    """The sweep cannot be set up or continued; the message says why."""


class BudgetExceededError(WorkbenchError):
    """The work's estimated cost is over the budget given; nothing was submitted."""

    def __init__(self, estimated_usd: float, budget_usd: float, detail: str = "") -> None:
        self.estimated_usd = estimated_usd
        self.budget_usd = budget_usd
        super().__init__(
            f"refused: the estimated cost ${estimated_usd:.2f} is over the budget of ${budget_usd:.2f}"
            + (f" ({detail})" if detail else "")
        )


class BackendConfigError(WorkbenchError):
    """A backend cannot find or read its configuration (e.g. the AWS stack's outputs)."""


class SettingError(WorkbenchError):
    """A ``WORKBENCH_*`` environment variable has a value that is not allowed."""
