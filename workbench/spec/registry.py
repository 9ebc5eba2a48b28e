"""Small registries of implementations by name (papermill-style): backends, channels, storages.

Each maps a name to ``"module:attribute"``; the module is imported only when that implementation is used, so
local use never imports boto3.
"""

from __future__ import annotations

import importlib
from typing import Any


class Registry:
    """Names -> lazily imported implementations."""

    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def register(self, name: str, target: str) -> None:
        """Register ``"module:attribute"`` under ``name`` (replacing any earlier one)."""
        self._entries[name] = target

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def load(self, name: str) -> Any:
        """The implementation registered under ``name`` (KeyError if there is none)."""
        module, attribute = self._entries[name].split(":")
        return getattr(importlib.import_module(module), attribute)
