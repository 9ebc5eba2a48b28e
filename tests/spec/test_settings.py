"""Every ``WORKBENCH_*`` default has one owner: the local backend and the runner both take theirs from it, and
both refuse a value that is not allowed with a SettingError naming the variable and what it allows."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import run_cli
from workbench.backends.local import LocalBackend
from workbench.errors import SettingError
from workbench.runner.__main__ import settings_from
from workbench.spec import settings
from workbench.spec.document import parse_spec

SETTINGS = ("WORKBENCH_MAX_CONCURRENT", *settings.TIMING_VARIABLES.values(), "WORKBENCH_ASSETS")
VALUES = (st.text(max_size=10) | st.integers(-5, 10**6).map(str) | st.floats().map(repr)
          | st.sampled_from(["1", " 2 ", "1.5", "0", "-1", "nan", "inf", "1e400", "1_0", "0x10", "", "True"]))
"""What people put in environment variables: numbers of every form, near misses, words."""


def test_the_backend_and_the_runner_share_the_settings_defaults(tmp_path: Path, monkeypatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    backend = LocalBackend()
    runner = settings_from(["--work-dir", str(tmp_path)], {})
    assert (backend.heartbeat_interval, runner.heartbeat_interval) == (settings.HEARTBEAT_INTERVAL_S,) * 2
    assert (backend.heartbeat_timeout, runner.heartbeat_timeout) == (settings.HEARTBEAT_TIMEOUT_S,) * 2
    assert (backend.stop_grace, runner.stop_grace) == (settings.STOP_GRACE_S,) * 2
    assert (backend.assets, runner.assets) == (settings.ASSETS,) * 2
    assert runner.export_interval == settings.EXPORT_INTERVAL_S
    assert backend.max_concurrent == settings.MAX_CONCURRENT and runner.max_concurrent is None


@given(value=VALUES)
def test_a_count_is_an_integer_of_at_least_one_or_refused_by_name(value: str) -> None:
    try:
        count = settings.count_setting("WORKBENCH_MAX_CONCURRENT", 1, {"WORKBENCH_MAX_CONCURRENT": value})
    except SettingError as exc:
        assert str(exc) == f"WORKBENCH_MAX_CONCURRENT must be an integer >= 1, not {value!r}"
    else:
        assert type(count) is int and count >= 1 and count == int(value)


@given(name=st.sampled_from(sorted(settings.TIMING_VARIABLES.values())), value=VALUES)
def test_timings_are_positive_seconds_or_refused_by_name(name: str, value: str) -> None:
    try:
        timings = settings.job_timings({name: value})
    except SettingError as exc:
        assert name in str(exc) and ("positive number of seconds" in str(exc) or "must be longer than" in str(exc))
    else:
        chosen = getattr(timings, next(f for f, n in settings.TIMING_VARIABLES.items() if n == name))
        assert chosen == float(value) and 0 < chosen < math.inf
        assert timings.heartbeat_timeout > timings.heartbeat_interval


@pytest.mark.parametrize(("name", "value", "words"), [
    ("WORKBENCH_MAX_CONCURRENT", "-1", "must be an integer >= 1, not '-1'"),
    ("WORKBENCH_MAX_CONCURRENT", "two", "must be an integer >= 1, not 'two'"),
    ("WORKBENCH_HEARTBEAT_TIMEOUT", "0", "must be a positive number of seconds, not '0'"),
    ("WORKBENCH_HEARTBEAT_TIMEOUT", "30", "must be longer than the heartbeat interval"),
    ("WORKBENCH_STOP_GRACE", "inf", "must be a positive number of seconds, not 'inf'"),
    ("WORKBENCH_EXPORT_INTERVAL", "soon", "must be a positive number of seconds, not 'soon'"),
    ("WORKBENCH_ASSETS", "/no/such/assets", "must be offline, nucleus or an existing directory"),
    ("WORKBENCH_WARM_START", "maybe", "must be on or off"),
])
def test_the_backend_and_the_runner_refuse_a_setting_by_name(name: str, value: str, words: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    for read in (LocalBackend, lambda: settings_from(["--work-dir", str(tmp_path)], dict(os.environ))):
        with pytest.raises(SettingError) as refused:
            read()
        assert name in str(refused.value) and words in str(refused.value)


def test_a_runner_with_a_setting_it_cannot_use_exits_2_at_once(tmp_path: Path) -> None:
    """It used to wait forever for one of -1 job slots."""
    spec = tmp_path / "spec.json"
    spec.write_text(parse_spec({"trainingConfig": {"device": "cpu"}}).to_json())
    env = {**os.environ, "WORKBENCH_MAX_CONCURRENT": "-1", "WORKBENCH_SLOTS_DIR": str(tmp_path / "slots")}
    result = subprocess.run([sys.executable, "-m", "workbench.runner", "--spec", str(spec), "--work-dir",
                             str(tmp_path / "job")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: WORKBENCH_MAX_CONCURRENT must be an integer >= 1, not '-1'"


def test_the_cli_refuses_a_setting_with_exit_2_and_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_HEARTBEAT_INTERVAL", "every minute")
    for command in (["list"], ["train", "--device", "cpu"]):
        result = run_cli(*command)
        assert result.returncode == 2, result
        assert result.stderr.strip() == ("error: WORKBENCH_HEARTBEAT_INTERVAL must be a positive number of seconds, "
                                         "not 'every minute'")
