"""Storages upload and fetch by URI scheme; the local one works in place."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench.errors import RunnerError
from workbench.transport.storage import LocalStorage, fetch_input, open_storage


def test_a_local_storage_fetches_in_place_and_names_what_is_missing(tmp_path: Path) -> None:
    policy = tmp_path / "model_3.pt"
    policy.write_bytes(b"x")
    storage = open_storage(f"file://{policy}")
    assert isinstance(storage, LocalStorage) and storage.fetch(tmp_path / "inputs") == policy
    assert fetch_input(str(policy), tmp_path / "inputs") == policy
    with pytest.raises(RunnerError, match="input not found: .*model_4.pt"):
        fetch_input(str(tmp_path / "model_4.pt"), tmp_path)


def test_opening_a_storage_imports_no_cloud_sdk(tmp_path: Path) -> None:
    script = ("import sys; from workbench.transport.storage import open_storage; "
              f"from pathlib import Path; open_storage({str(tmp_path)!r}).upload(Path({str(tmp_path)!r})); "
              "print(sorted(m for m in sys.modules if m.startswith(('boto3', 'botocore', 'workbench.transport.s3'))))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
