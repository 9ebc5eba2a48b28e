"""Shared fixtures: every test session gets its own WORKBENCH_HOME (asset root and kernel cache kept across tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def workbench_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private workbench home for the session; the warp kernel cache is shared with later sessions."""
    home = tmp_path_factory.mktemp("workbench-home")
    os.environ["WORKBENCH_HOME"] = str(home)
    cache = Path(os.environ.get("WORKBENCH_TEST_CACHE", Path.home() / ".cache" / "workbench-tests"))
    (home / "cache").mkdir(parents=True, exist_ok=True)
    (cache / "warp").mkdir(parents=True, exist_ok=True)
    (home / "cache" / "warp").symlink_to(cache / "warp", target_is_directory=True)
    return home
