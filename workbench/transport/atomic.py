"""Atomic writes: a reader never sees a half-written status, spec or metrics file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_json_atomic(path: Path, document: object) -> None:
    """Write JSON to ``path`` atomically (never a half-written file)."""
    write_text_atomic(path, json.dumps(document, indent=2))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` through a temporary file in the same directory and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
