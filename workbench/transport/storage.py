"""Where a job's outputs go and where its inputs come from, by URI scheme (papermill ``iorw``-style handlers).

``open_storage(uri)`` gives the :class:`Storage` registered for the URI's scheme: a local directory (``file``,
also a plain path; the local backend's run directory itself) or ``s3://bucket/prefix`` (AWS, in
:mod:`workbench.transport.s3`, imported only when used). A storage uploads a job's output layout to its URI and
fetches what its URI names to a local path; ``fetch_input(uri, dest)`` does the latter for a job's inputs
(package, policy, checkpoint).
"""

from __future__ import annotations

import abc
import shutil
from pathlib import Path
from urllib.parse import urlparse

from workbench.errors import RunnerError
from workbench.spec.registry import Registry


class Storage(abc.ABC):
    """The destination of a job's output layout."""

    uri: str

    @abc.abstractmethod
    def upload(self, local_dir: Path) -> None:
        """Copy everything under ``local_dir`` to the storage, keeping relative paths."""

    @abc.abstractmethod
    def fetch(self, dest_dir: Path) -> Path:
        """The local path of what the storage's URI names (downloaded into ``dest_dir`` where it is remote)."""


class LocalStorage(Storage):
    """A local path. Uploading to the runner's own work directory copies nothing; fetching uses the file in place."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser().resolve()
        self.uri = str(self.path)

    def upload(self, local_dir: Path) -> None:
        if local_dir.resolve() == self.path:
            return
        shutil.copytree(local_dir, self.path, dirs_exist_ok=True)

    def fetch(self, dest_dir: Path) -> Path:
        if not self.path.exists():
            raise RunnerError(f"input not found: {self.path}")
        return self.path


STORAGES = Registry("storage", {
    "file": "workbench.transport.storage:LocalStorage",
    "s3": "workbench.transport.s3:S3Storage",
})


def _scheme(uri: str) -> str:
    return urlparse(uri).scheme if "://" in uri else "file"


def open_storage(uri: str) -> Storage:
    """The storage registered for ``uri``'s scheme (a plain path is ``file``)."""
    scheme = _scheme(uri)
    if scheme not in STORAGES:
        raise RunnerError(f"unsupported location {uri!r}; use a path, a file:// URI or s3://bucket/prefix")
    target = uri.removeprefix("file://") if scheme == "file" else uri
    return STORAGES.load(scheme)(target)


def fetch_input(uri: str, dest_dir: Path) -> Path:
    """Bring an input to ``dest_dir`` (local paths are used where they are) and return its local path."""
    return open_storage(uri).fetch(dest_dir)
