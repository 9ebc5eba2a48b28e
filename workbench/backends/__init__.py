"""Backends run jobs. Each registers itself under a name; ``get_backend(name)`` builds one.

Implementations are imported only when asked for, so local use never imports boto3.
"""

from __future__ import annotations

import importlib
from typing import Any

from workbench.backends.base import Backend, Job
from workbench.errors import WorkbenchError

_BACKENDS: dict[str, str] = {
    "local": "workbench.backends.local:LocalBackend",
    "aws": "workbench.backends.aws:AwsBackend",
}


def register_backend(name: str, target: str) -> None:
    """Register ``"module:Class"`` under ``name`` (papermill-style engine registry)."""
    _BACKENDS[name] = target


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str = "local", **options: Any) -> Backend:
    """Build the backend registered under ``name`` with its options."""
    if name not in _BACKENDS:
        raise WorkbenchError(f"unknown backend {name!r}; available: {', '.join(backend_names())}")
    module, cls = _BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)


__all__ = ["Backend", "Job", "get_backend", "register_backend", "backend_names"]
