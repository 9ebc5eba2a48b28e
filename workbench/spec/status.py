"""Job states, progress and the status record shared by the runner, the channels and the backends (stdlib only)."""

from __future__ import annotations

import enum
import time
from dataclasses import asdict, dataclass, field
from typing import Any


class JobState(str, enum.Enum):
    """``SUBMITTED -> STARTING -> RUNNING -> SUCCEEDED | FAILED | CANCELLED``."""

    SUBMITTED = "SUBMITTED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Progress:
    """What the training or evaluation has reached, as parsed from its output."""

    iteration: int | None = None
    max_iterations: int | None = None
    mean_reward: float | None = None
    mean_episode_length: float | None = None
    steps_per_second: float | None = None

    def merged(self, newer: Progress) -> Progress:
        """This progress updated with every field ``newer`` knows."""
        return Progress(**{k: v if v is not None else getattr(self, k) for k, v in asdict(newer).items()})

    def describe(self) -> str:
        parts = []
        if self.iteration is not None:
            parts.append(f"iteration {self.iteration}" + (f"/{self.max_iterations}" if self.max_iterations else ""))
        if self.mean_reward is not None:
            parts.append(f"reward {self.mean_reward:.3f}")
        if self.mean_episode_length is not None:
            parts.append(f"episode length {self.mean_episode_length:.1f}")
        if self.steps_per_second is not None:
            parts.append(f"{self.steps_per_second:,.0f} steps/s")
        return ", ".join(parts) or "no progress yet"


@dataclass(frozen=True)
class JobStatus:
    """A job's state with its reason, last heartbeat time (epoch seconds) and progress."""

    job_id: str
    state: JobState
    reason: str = ""
    heartbeat_at: float | None = None
    updated_at: float = field(default_factory=time.time)
    progress: Progress = field(default_factory=Progress)
    output_uri: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def heartbeat_age(self) -> float | None:
        return None if self.heartbeat_at is None else max(0.0, time.time() - self.heartbeat_at)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["state"] = self.state.value
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> JobStatus:
        return cls(
            job_id=doc["job_id"],
            state=JobState(doc["state"]),
            reason=doc.get("reason", ""),
            heartbeat_at=doc.get("heartbeat_at"),
            updated_at=doc.get("updated_at", 0.0),
            progress=Progress(**doc.get("progress", {})),
            output_uri=doc.get("output_uri"),
            details=doc.get("details", {}),
        )
