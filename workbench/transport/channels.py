"""Callback channels: how the runner reports heartbeats and the job's end to whoever waits for it.

``open_channel(uri)`` picks the implementation by URI scheme (papermill iorw-style registry):
``file:///path/status.json`` writes an atomic status file (local backend); ``sfn:`` sends Step Functions
task heartbeats and success/failure with the tokens in the SSM parameters ``WORKBENCH_TASK_TOKEN_PARAMETER``
names (AWS; or one token in ``WORKBENCH_TASK_TOKEN`` for a direct launch).
"""

from __future__ import annotations

import abc
import os
from pathlib import Path

from workbench.errors import RunnerError
from workbench.spec.registry import Registry
from workbench.spec.status import JobStatus
from workbench.transport.atomic import write_json_atomic


class Channel(abc.ABC):
    """Receives every status the runner publishes: state changes, heartbeats and the final state."""

    @abc.abstractmethod
    def publish(self, status: JobStatus, heartbeat: bool = False) -> None:
        """Record ``status``; ``heartbeat`` says the job made progress since the last heartbeat."""


class FileChannel(Channel):
    """Writes the status as JSON to one file, atomically: readers always see a whole, valid document."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def publish(self, status: JobStatus, heartbeat: bool = False) -> None:
        write_json_atomic(self.path, status.to_dict())


class MultiChannel(Channel):
    """Publishes to several channels in turn."""

    def __init__(self, channels: list[Channel]) -> None:
        self.channels = channels

    def publish(self, status: JobStatus, heartbeat: bool = False) -> None:
        for channel in self.channels:
            channel.publish(status, heartbeat)


CHANNELS = Registry("channel", {
    "file": "workbench.transport.channels:FileChannel",
    "sfn": "workbench.transport.sfn_channel:StepFunctionsChannel",
})


def open_channel(uri: str) -> Channel:
    """A channel for ``file:///path``, a plain path, or ``sfn:`` (several joined with commas)."""
    uris = [u for u in uri.split(",") if u]
    if len(uris) > 1:
        return MultiChannel([open_channel(u) for u in uris])
    scheme, _, rest = uri.partition(":") if ":" in uri else ("file", "", uri)
    if scheme not in CHANNELS:
        raise RunnerError(f"unknown channel {uri!r}; use file:///path/status.json or sfn:")
    channel_class = CHANNELS.load(scheme)
    return channel_class(rest.removeprefix("//")) if scheme == "file" else channel_class()
