"""``journal.json``: what optuna does not keep of a sweep. Which job runs each trial (so a restarted sweep
re-attaches to it), on which device slot, its report and last progress, and the sweep's spent time and cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.transport.atomic import write_json_atomic


class Journal:
    """The journal of one sweep directory; every write replaces the file atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        self.doc.setdefault("trials", {})
        self.doc.setdefault("elapsed_seconds", 0.0)
        self.doc.setdefault("cost", 0.0)

    def trial(self, number: int) -> dict[str, Any] | None:
        return self.doc["trials"].get(str(number))

    def record(self, number: int, **fields: Any) -> None:
        self.doc["trials"].setdefault(str(number), {}).update(fields)
        self.save()

    def record_cost(self, number: int, cost: float) -> None:
        """The trial's cost so far, and the sweep's total with it."""
        self.doc["trials"].setdefault(str(number), {})["cost"] = cost
        self.doc["cost"] = sum(entry.get("cost", 0.0) for entry in self.doc["trials"].values())
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.doc)
