"""Backends run jobs. Each registers itself under a name; ``get_backend(name)`` builds one.

Implementations are imported only when asked for, so local use never imports boto3.
"""

from __future__ import annotations

from typing import Any

from workbench.backends.base import Backend, Job
from workbench.errors import WorkbenchError
from workbench.spec.registry import Registry

BACKENDS = Registry("backend", {
    "local": "workbench.backends.local:LocalBackend",
    "aws": "workbench.backends.aws:AwsBackend",
})


def backend_names() -> list[str]:
    return BACKENDS.names()


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under ``name``."""
    if name not in BACKENDS:
        raise WorkbenchError(f"unknown backend {name!r}; available: {', '.join(backend_names())}")
    return BACKENDS.load(name)


def get_backend(name: str = "local", **options: Any) -> Backend:
    """Build the backend registered under ``name`` with its options."""
    return backend_class(name)(**options)


__all__ = ["BACKENDS", "Backend", "Job", "get_backend", "backend_class", "backend_names"]
