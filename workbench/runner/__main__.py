"""``python -m workbench.runner``: run one job, configured by ``WORKBENCH_*`` environment variables or flags.

The local backend starts it detached; the AWS Batch container runs it as its entrypoint. Exit status: 0 when the
job SUCCEEDED, 1 when it FAILED or was CANCELLED (the reason went to the channel and the log).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

from workbench.runner.job import JobRunner, RunnerSettings
from workbench.runner.warm import client as warmstart
from workbench.spec import settings as defaults
from workbench.spec.settings import on_off_setting
from workbench.spec.status import JobState
from workbench.transport.channels import open_channel
from workbench.transport.storage import open_storage


def settings_from(argv: list[str] | None, environ: dict[str, str]) -> RunnerSettings:
    parser = argparse.ArgumentParser(prog="python -m workbench.runner", description=__doc__)
    parser.add_argument("--spec", type=Path, help="spec JSON file (default: $WORKBENCH_JOB_SPEC text)")
    parser.add_argument("--job-id", default=environ.get("WORKBENCH_JOB_ID"))
    parser.add_argument("--work-dir", type=Path, default=environ.get("WORKBENCH_WORK_DIR"))
    parser.add_argument("--output", default=environ.get("WORKBENCH_OUTPUT_URI"))
    parser.add_argument("--channel", default=environ.get("WORKBENCH_CHANNEL"))
    args = parser.parse_args(argv)
    job_id = args.job_id or str(uuid.uuid4())
    spec_text = args.spec.read_text() if args.spec else environ.get("WORKBENCH_JOB_SPEC", "")
    work_dir = (args.work_dir or Path.cwd() / job_id).resolve()
    checkpoint_dir = environ.get("WORKBENCH_CHECKPOINT_DIR")
    return RunnerSettings(
        job_id=job_id,
        spec_text=spec_text,
        work_dir=work_dir,
        channel=open_channel(args.channel or f"file://{work_dir / 'status.json'}"),
        storage=open_storage(args.output or str(work_dir)),
        heartbeat_interval=float(environ.get("WORKBENCH_HEARTBEAT_INTERVAL", defaults.HEARTBEAT_INTERVAL_S)),
        heartbeat_timeout=float(environ.get("WORKBENCH_HEARTBEAT_TIMEOUT", defaults.HEARTBEAT_TIMEOUT_S)),
        export_interval=float(environ.get("WORKBENCH_EXPORT_INTERVAL", defaults.EXPORT_INTERVAL_S)),
        stop_grace=float(environ.get("WORKBENCH_STOP_GRACE", defaults.STOP_GRACE_S)),
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
        assets=environ.get("WORKBENCH_ASSETS", defaults.ASSETS),
        max_concurrent=int(environ["WORKBENCH_MAX_CONCURRENT"]) if environ.get("WORKBENCH_MAX_CONCURRENT") else None,
        slots_dir=Path(environ["WORKBENCH_SLOTS_DIR"]) if environ.get("WORKBENCH_SLOTS_DIR") else None,
        warm_start=on_off_setting("WORKBENCH_WARM_START", "off", environ),
        warm_idle_s=warmstart.idle_setting(environ),
        environ=environ,
    )


def main(argv: list[str] | None = None) -> int:
    status = JobRunner(settings_from(argv, dict(os.environ))).run()
    return 0 if status.state is JobState.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
