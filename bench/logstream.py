"""(e) Log streaming latency: a line appended to a local job's ``logs/job.log`` until ``LocalJob.logs(follow=True)``
yields it. The job directory is a real local-backend layout whose status names this process as the runner."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from pathlib import Path

from workbench.backends.local import LocalJob
from workbench.spec.status import JobState, JobStatus
from workbench.transport.atomic import write_json_atomic


def log_latency(work: Path, lines: int = 200, interval_s: float = 0.05, poll_interval_s: float | None = None) -> dict:
    """p50/p95 delay; ``poll_interval_s`` None is ``LocalJob.logs``' own default."""
    run_dir = work / f"log-latency-{poll_interval_s}"
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    status_path = run_dir / "status.json"
    log_path = run_dir / "logs" / "job.log"
    log_path.write_text("")
    (run_dir / "runner.pid").write_text(str(os.getpid()))
    write_json_atomic(status_path, JobStatus("bench", JobState.RUNNING, "running", time.time()).to_dict())
    job = LocalJob("bench", run_dir, heartbeat_timeout=3600, stop_grace=1)

    def writer() -> None:
        with log_path.open("a") as log:
            for n in range(lines):
                log.write(json.dumps({"n": n, "t": time.time()}) + "\n")
                log.flush()
                time.sleep(interval_s)
        write_json_atomic(status_path, JobStatus("bench", JobState.SUCCEEDED, "done", time.time()).to_dict())

    thread = threading.Thread(target=writer)
    thread.start()
    delays = []
    follow = job.logs(follow=True) if poll_interval_s is None else job.logs(follow=True, poll_interval=poll_interval_s)
    for line in follow:
        delays.append((time.time() - json.loads(line)["t"]) * 1000)
    thread.join()
    ordered = sorted(delays)
    return {"lines": len(delays), "write_interval_ms": interval_s * 1000, "poll_interval_s": poll_interval_s or "default",
            "p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
            "max_ms": round(ordered[-1], 1)}
