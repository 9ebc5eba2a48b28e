"""``make demo``'s program with tiny sizes: it trains, evaluates and prints where every output is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_demo_trains_evaluates_and_prints_where_the_outputs_are() -> None:
    env = {**os.environ, "WORKBENCH_DEMO_ENVS": "16", "WORKBENCH_DEMO_ITERATIONS": "3"}
    result = subprocess.run([sys.executable, "-m", "workbench.demo"], capture_output=True, text=True, env=env,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    policy = re.search(r"policy:\s+(\S+policy\.onnx)", result.stdout)
    assert policy and Path(policy.group(1)).is_file(), result.stdout
    video = re.search(r"video:\s+(\S+\.mp4)", result.stdout)
    assert video and Path(video.group(1)).is_file(), result.stdout
    assert re.search(r"mean return -?\d+\.\d\d, mean episode length \d+\.\d\b", result.stdout), result.stdout
