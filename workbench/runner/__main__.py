"""``python -m workbench.runner``: run one job, configured by ``WORKBENCH_*`` environment variables or flags.

The local backend starts it detached; the AWS Batch container runs it as its entrypoint. Exit status: 0 when the
job SUCCEEDED, 1 when it FAILED or was CANCELLED (the reason went to the channel and the log), 2 when a setting or
the spec file cannot be used (the reason on stderr; nothing ran).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

from workbench.errors import SettingError
from workbench.runner.job import JobRunner, RunnerSettings
from workbench.runner.slots import Ticket
from workbench.runner.warm import client as warmstart
from workbench.spec import settings as defaults
from workbench.spec.status import JobState
from workbench.transport.channels import open_channel
from workbench.transport.storage import open_storage


def settings_from(argv: list[str] | None, environ: dict[str, str]) -> RunnerSettings:
    """The runner's settings, each checked (a SettingError names the variable and what it allows; an OSError, the
    spec file that cannot be read)."""
    parser = argparse.ArgumentParser(prog="python -m workbench.runner", description=__doc__)
    parser.add_argument("--spec", type=Path, help="spec JSON file (default: $WORKBENCH_JOB_SPEC text)")
    parser.add_argument("--job-id", default=environ.get("WORKBENCH_JOB_ID"))
    parser.add_argument("--work-dir", type=Path, default=environ.get("WORKBENCH_WORK_DIR"))
    parser.add_argument("--output", default=environ.get("WORKBENCH_OUTPUT_URI"))
    parser.add_argument("--channel", default=environ.get("WORKBENCH_CHANNEL"))
    parser.add_argument("--queue-ticket", type=Path, help="the job's queue ticket (the local backend's)")
    parser.add_argument("--queue-ticket-fd", type=int, help="the inherited descriptor that holds the ticket's lock")
    args = parser.parse_args(argv)
    job_id = args.job_id or str(uuid.uuid4())
    work_dir = (args.work_dir or Path.cwd() / job_id).resolve()
    checkpoint_dir = environ.get("WORKBENCH_CHECKPOINT_DIR")
    timings = defaults.job_timings(environ)
    return RunnerSettings(
        job_id=job_id,
        spec_text=args.spec.read_text(errors="replace") if args.spec else environ.get("WORKBENCH_JOB_SPEC", ""),
        work_dir=work_dir,
        channel=open_channel(args.channel or f"file://{work_dir / 'status.json'}"),
        storage=open_storage(args.output or str(work_dir)),
        heartbeat_interval=timings.heartbeat_interval,
        heartbeat_timeout=timings.heartbeat_timeout,
        export_interval=timings.export_interval,
        stop_grace=timings.stop_grace,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
        assets=defaults.assets_setting(environ),
        max_concurrent=defaults.count_setting("WORKBENCH_MAX_CONCURRENT", None, environ),
        slots_dir=Path(environ["WORKBENCH_SLOTS_DIR"]) if environ.get("WORKBENCH_SLOTS_DIR") else None,
        queue_ticket=_ticket(args.queue_ticket, args.queue_ticket_fd),
        warm_start=defaults.on_off_setting("WORKBENCH_WARM_START", "off", environ),
        warm_idle_s=warmstart.idle_setting(environ),
        attempt=defaults.attempt_setting(environ),
        environ=environ,
    )


def _ticket(path: Path | None, fd: int | None) -> Ticket | None:
    if (path is None) != (fd is None):
        raise SettingError("--queue-ticket and --queue-ticket-fd go together")
    return None if path is None or fd is None else Ticket(path, fd)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = settings_from(argv, dict(os.environ))
    except (SettingError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        status = JobRunner(settings).run()
    except OSError as exc:
        print(f"error: the job's final status could not be published: {exc}", file=sys.stderr)
        return 1
    return 0 if status.state is JobState.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
