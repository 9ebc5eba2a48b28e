"""One callback per job across Batch attempts: the real runner (``python -m workbench.runner``) reporting to a real
waitForTaskToken task in moto. An attempt stopped by SIGTERM while Batch may retry it sends nothing; the last
attempt's end is the job's one SendTaskFailure (or SendTaskSuccess: tests/aws/test_aws_recovery.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from test_sfn_channel import settle, waiting  # noqa: F401 - the execution waiting on a task token

REPO = Path(__file__).resolve().parents[2]
SPEC = {"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 100000, "device": "cpu"}}
"""A tiny training that runs until it is stopped."""
MAX_ATTEMPTS = 2


def attempt(number: int, token: str, root: Path) -> tuple[int, str]:
    """Run attempt ``number`` of the job as Batch would (same environment, its own working directory), SIGTERM it
    once it reports RUNNING; its exit code and output."""
    work = root / f"attempt-{number}"
    work.mkdir(parents=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
        "WORKBENCH_CHANNEL": "sfn:", "WORKBENCH_TASK_TOKEN": token, "WORKBENCH_JOB_ID": "job-attempts",
        "WORKBENCH_JOB_SPEC": json.dumps(SPEC), "WORKBENCH_OUTPUT_URI": str(root / "outputs"),
        "WORKBENCH_CHECKPOINT_DIR": str(root / "efs" / "job-attempts"), "WORKBENCH_WARM_START": "off",
        "WORKBENCH_STOP_GRACE": "5", "AWS_BATCH_JOB_ATTEMPT": str(number), "WORKBENCH_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    }
    process = subprocess.Popen([sys.executable, "-m", "workbench.runner"], cwd=work, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    running = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if "status RUNNING" in line:
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert running.wait(180), "the runner never reported RUNNING:\n" + "".join(lines)
        os.killpg(process.pid, signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    reader.join(timeout=10)
    return code, "".join(lines)


def callbacks(sfn, arn: str) -> list[str]:
    return [e["type"] for e in sfn.get_execution_history(executionArn=arn)["events"]
            if e["type"] in ("TaskSucceeded", "TaskFailed")]


def test_a_retryable_attempt_sends_no_callback_and_the_last_attempt_sends_one(waiting, tmp_path):  # noqa: F811
    sfn, arn, token = waiting
    code, output = attempt(1, token, tmp_path)
    assert code == 1, output
    assert "attempt 1 of 2 stopped" in output and "this attempt reports none" in output, output
    assert "status CANCELLED" not in output, output
    time.sleep(1.0)
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    assert callbacks(sfn, arn) == []

    code, output = attempt(2, token, tmp_path)
    assert code == 1 and "status CANCELLED" in output, output
    assert settle(sfn, arn)["status"] == "FAILED"
    assert callbacks(sfn, arn) == ["TaskFailed"]
    (failed,) = [e for e in sfn.get_execution_history(executionArn=arn)["events"] if e["type"] == "TaskFailed"]
    assert failed["taskFailedEventDetails"]["error"] == "WorkbenchJobCancelled"
