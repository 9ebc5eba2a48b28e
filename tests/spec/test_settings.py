"""Every ``WORKBENCH_*`` default has one owner: the local backend and the runner both take theirs from it."""

from __future__ import annotations

from pathlib import Path

from workbench.backends.local import LocalBackend
from workbench.runner.__main__ import settings_from
from workbench.spec import settings


def test_the_backend_and_the_runner_share_the_settings_defaults(tmp_path: Path, monkeypatch) -> None:
    for name in ("WORKBENCH_HEARTBEAT_INTERVAL", "WORKBENCH_HEARTBEAT_TIMEOUT", "WORKBENCH_ASSETS"):
        monkeypatch.delenv(name, raising=False)
    backend = LocalBackend()
    runner = settings_from(["--work-dir", str(tmp_path)], {})
    assert (backend.heartbeat_interval, runner.heartbeat_interval) == (settings.HEARTBEAT_INTERVAL_S,) * 2
    assert (backend.heartbeat_timeout, runner.heartbeat_timeout) == (settings.HEARTBEAT_TIMEOUT_S,) * 2
    assert (backend.stop_grace, runner.stop_grace) == (settings.STOP_GRACE_S,) * 2
    assert (backend.assets, runner.assets) == (settings.ASSETS,) * 2
    assert runner.export_interval == settings.EXPORT_INTERVAL_S
