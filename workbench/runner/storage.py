"""Where a job's outputs go and where its inputs come from, by URI scheme.

``open_storage(uri)`` gives a :class:`Storage` for a local directory (local backend: the run directory itself)
or ``s3://bucket/prefix`` (AWS). ``fetch_input(uri, dest)`` brings an input (package, policy, checkpoint) to a
local file.
"""

from __future__ import annotations

import abc
import importlib
import shutil
from pathlib import Path
from urllib.parse import urlparse

from workbench.errors import RunnerError
from workbench.registry import Registry


class Storage(abc.ABC):
    """The destination of a job's output layout."""

    uri: str

    @abc.abstractmethod
    def upload(self, local_dir: Path) -> None:
        """Copy everything under ``local_dir`` to the storage, keeping relative paths."""


class LocalStorage(Storage):
    """A local directory. When it is the runner's own work directory nothing is copied."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).resolve()
        self.uri = str(self.path)

    def upload(self, local_dir: Path) -> None:
        if local_dir.resolve() == self.path:
            return
        shutil.copytree(local_dir, self.path, dirs_exist_ok=True)


STORAGES = Registry("storage", {
    "file": "workbench.runner.storage:LocalStorage",
    "s3": "workbench.runner.s3_storage:S3Storage",
})


def _scheme(uri: str) -> str:
    return urlparse(uri).scheme if "://" in uri else "file"


def open_storage(uri: str) -> Storage:
    scheme = _scheme(uri)
    if scheme not in STORAGES:
        raise RunnerError(f"unsupported output location {uri!r}; use a directory or s3://bucket/prefix")
    target = uri.removeprefix("file://") if scheme == "file" else uri
    return STORAGES.load(scheme)(target)


def fetch_input(uri: str, dest_dir: Path) -> Path:
    """Bring an input file to ``dest_dir`` (local paths are used where they are) and return its path."""
    scheme = _scheme(uri)
    if scheme == "file":
        path = Path(uri.removeprefix("file://")).expanduser()
        if not path.exists():
            raise RunnerError(f"input not found: {path}")
        return path.resolve()
    if scheme == "s3":
        module = importlib.import_module("workbench.runner.s3_storage")
        return module.download(uri, dest_dir)
    raise RunnerError(f"unsupported input location {uri!r}; use a path, file:// or s3:// URI")
