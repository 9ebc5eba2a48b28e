"""What moto 5.2.5 lacks for our pipeline, added inside the moto server process. Pinned: it touches moto internals.

1. Step Functions service tasks (``aws-sdk:batch:*`` and ``batch:*``) hand the state's PascalCase parameters
   (``JobName``, ``ContainerOverrides.Environment[].Name``) straight to botocore, which wants the API's member
   names: AWS converts them, moto does not (``States.Runtime``, cause ``'JobName'``). We convert them with
   moto's own converters (``_to_boto_request``, and ``_from_boto_response`` for the result, which AWS returns
   PascalCased: ``$.JobSummaryList``) against botocore's service model, as AWS does.
2. StopExecution: moto marks a stopped execution ABORTED only when its current task returns, so one waiting for
   a task token stays RUNNING (and a later SendTaskFailure turns it FAILED). AWS aborts it at once; so do we.
3. Lambda without Docker: moto runs functions only in Docker containers. A Python function's zip is unpacked
   and its handler called in a local Python subprocess with the function's environment (our handlers are
   plain Python; the runtime container is the only thing not emulated).
4. Batch without Docker: moto runs jobs only in Docker containers. A job's container runs here as a local
   process (``python -m workbench.runner``, the image's entrypoint) with the job definition's and the
   submission's environment, the job definition's volumes mapped to local directories, its output shipped line
   by line to CloudWatch Logs as the ``awslogs`` driver does, and Batch's states SUBMITTED -> PENDING ->
   RUNNABLE -> STARTING -> RUNNING -> SUCCEEDED | FAILED. ``TerminateJob`` stops the process group.
   Multi-node jobs are refused (Isaac Lab refuses distributed training on CPU): they fail with that reason.
   Batch's retries are played too: a failed attempt is matched against the job definition's retry strategy
   (``evaluateOnExit`` in order, glob patterns on the status reason, the container's reason and the exit code; no
   rule matching means RETRY, as on AWS; a terminated job is never retried) and, while attempts are left, the job
   goes back to RUNNABLE and runs again as a new container: the same environment with ``AWS_BATCH_JOB_ATTEMPT`` one
   higher, a fresh working directory and its own log stream. A host termination is played by a marker file,
   ``reclaim-<job name>`` next to ``work_root``, holding ``{"checkpoint": n}``: once the job's checkpoint directory
   (``WORKBENCH_CHECKPOINT_DIR``) holds ``model_<m>.pt`` with m >= n, the attempt's container is stopped as a spot
   reclaim stops it (SIGTERM, SIGKILL after the grace period) with Batch's status reason for it
   (:data:`HOST_TERMINATED`), and the marker is removed (one reclaim per marker).

   With the image worker on (below) the container is the real job image instead: ``docker run`` as ECS runs
   a Batch container (the image's user and working directory, the job's environment exactly as Batch passes it,
   the EFS volume as a host directory owned by uid 1000, the shared memory and memory limit of the job, host
   networking to reach moto), and ``TerminateJob`` is ``docker stop`` (SIGTERM, SIGKILL after 10 s).

The harness passes its settings in ``WORKBENCH_HARNESS`` (JSON): ``runner_env`` (the base environment of
processes it starts), ``volumes_root`` and ``work_root`` (local directories), ``env_overrides`` (applied after
the job's environment, e.g. ``WORKBENCH_ASSETS=offline`` because this machine has no network), ``worker_file``
(a JSON file; while it exists, jobs run in its ``image`` through ``docker_cli`` at ``docker_host``, with the EFS
volume under its ``volumes_root``, its ``extra_volumes`` (host: container path; the kept kernel cache) and its
``env`` (credentials, moto's endpoint) added to the job's environment).
"""

from __future__ import annotations

import fnmatch
import functools
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import moto

MOTO_VERSION = "5.2.5"
LAMBDA_BOOTSTRAP = r"""
import importlib, json, sys, traceback
module_name, _, function_name = sys.argv[1].rpartition(".")
event = json.loads(sys.stdin.read() or "{}")
try:
    result = getattr(importlib.import_module(module_name), function_name)(event, None)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
except Exception as exc:
    traceback.print_exc()
    sys.stdout.write("\n" + json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}) + "\n")
    sys.exit(1)
"""
STOP_GRACE_SECONDS = 10.0
STATE_STEP_SECONDS = 0.3
QUEUE_FILE = "queue-seconds.json"
RECLAIM_PREFIX = "reclaim-"
HOST_TERMINATED = "Host EC2 (instance i-0123456789harness) terminated."
"""What Batch says of a job whose spot instance was reclaimed (the retry strategy matches ``Host EC2*``)."""
_CHECKPOINT_NUMBER = re.compile(r"^model_(\d+)\.pt$")


def install() -> None:
    """Patch moto; call once in the server process before it serves requests."""
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"tests/aws/moto_compat.py is written for moto {MOTO_VERSION}, found {moto.__version__}")
    _install_parameter_conversion()
    _install_stop_execution()
    _install_lambda_runner()
    _install_batch_runner()


def harness_settings() -> dict[str, Any]:
    return json.loads(os.environ.get("WORKBENCH_HARNESS", "{}"))


def _install_parameter_conversion() -> None:
    import botocore.session
    from botocore import xform_name
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk,
        state_task_service_batch,
    )

    models: dict[str, Any] = {}

    def operation(self: Any, boto_service_name: str | None, service_action_name: str | None) -> Any:
        service = self._get_boto_service_name(boto_service_name)
        action = self._get_boto_service_action(service_action_name)
        if service not in models:
            models[service] = botocore.session.get_session().get_service_model(service)
        model = models[service]
        name = next((n for n in model.operation_names if xform_name(n) == action), None)
        return model.operation_model(name) if name else None

    def normalise(self: Any, parameters: dict, boto_service_name: str | None = None, service_action_name: str | None = None) -> None:
        found = operation(self, boto_service_name, service_action_name)
        if found is not None:
            self._to_boto_request(parameters, found.input_shape)

    def normalise_response(self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None) -> None:
        found = operation(self, boto_service_name, service_action_name)
        if found is not None and found.output_shape is not None:
            self._from_boto_response(response, found.output_shape)

    for service_class in (state_task_service_aws_sdk.StateTaskServiceAwsSdk, state_task_service_batch.StateTaskServiceBatch):
        service_class._normalise_parameters = normalise
        service_class._normalise_response = normalise_response


def _install_stop_execution() -> None:
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend import execution

    original_stop = execution.Execution.stop
    original_reflect = execution.BaseExecutionWorkerCommunication._reflect_execution_status

    def stop(self: Any, stop_date: Any, error: str | None, cause: str | None) -> None:
        original_stop(self, stop_date=stop_date, error=error, cause=cause)
        if self.exec_status == ExecutionStatus.RUNNING:
            self.exec_status = ExecutionStatus.ABORTED
            self.stop_date = stop_date

    def reflect(self: Any) -> None:
        if self.execution.exec_status != ExecutionStatus.ABORTED:
            original_reflect(self)

    execution.Execution.stop = stop
    execution.BaseExecutionWorkerCommunication._reflect_execution_status = reflect


def _install_lambda_runner() -> None:
    from moto.awslambda.models import LambdaFunction

    def invoke(self: Any, event: Any = None) -> tuple[str, bool, str]:
        self.logs_backend.ensure_log_group(self.logs_group_name)
        settings = harness_settings()
        payload = event if isinstance(event, str) else json.dumps(event or {})
        with tempfile.TemporaryDirectory(prefix="lambda-") as code_dir:
            with zipfile.ZipFile(io.BytesIO(self.code_bytes)) as archive:
                archive.extractall(code_dir)
            env = {
                **settings.get("runner_env", os.environ),
                **self.environment_vars,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
                "PYTHONPATH": code_dir,
            }
            done = subprocess.run(
                [sys.executable, "-c", LAMBDA_BOOTSTRAP, self.handler], input=payload, capture_output=True, text=True,
                cwd=code_dir, env=env, timeout=int(self.timeout or 60) + 30,
            )
        output = done.stdout.rstrip("\n").splitlines() or ["null"]
        logs = "\n".join(done.stderr.splitlines() + output[:-1])
        self.save_logs(logs + "\n" + output[-1])
        return output[-1], done.returncode != 0, logs

    LambdaFunction._invoke_lambda = invoke


def _install_batch_runner() -> None:
    from moto.batch import models as batch_models
    from moto.moto_api import state_manager

    state_manager.set_transition("batch::job", {"progression": "manual", "times": 10**9})
    batch_models.Job.run = _run_job


def _run_job(job: Any) -> None:
    """Batch's job lifecycle with the container replaced by a local process (moto ``Job.run``)."""
    try:
        if job.job_definition.type != "container":
            job.job_stopped_reason = "the test harness runs single-node jobs only"
            job._mark_stopped(success=False)
            return
        attempt = 1
        while True:
            for state in ("PENDING", "RUNNABLE", "STARTING") if attempt == 1 else ("RUNNABLE", "STARTING"):
                if job.stop:
                    job._mark_stopped(success=False)
                    return
                job.status = state
                time.sleep(STATE_STEP_SECONDS)
                if state == "RUNNABLE" and attempt == 1:
                    _hold_in_queue(job)
            _run_container(job, attempt)
            if job.exit_code == 0 and not job.stop:
                job._mark_stopped(success=True)
                return
            if job.stop or not _retried(job, attempt):
                job._mark_stopped(success=False)
                return
            _end_attempt(job)
            attempt += 1
    except Exception as exc:  # the job must end FAILED with the reason, as Batch does
        job.job_stopped_reason = f"harness error: {exc}"
        job._mark_stopped(success=False)


def _hold_in_queue(job: Any) -> None:
    """Keep a job RUNNABLE (waiting for an instance) as long as ``queue-seconds.json`` next to ``work_root`` says.

    The file maps job names (``workbench-<job id>``) to seconds; a test writes it before the job is submitted.
    """
    path = Path(harness_settings().get("work_root", ".")).parent / QUEUE_FILE
    try:
        seconds = float(json.loads(path.read_text()).get(job.job_name, 0))
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not job.stop:
        time.sleep(0.2)


def _retried(job: Any, attempt: int) -> bool:
    """Whether Batch retries the failed ``attempt``: attempts left, and the first ``evaluateOnExit`` rule that
    matches says RETRY (none matching: RETRY)."""
    strategy = job.job_definition.retry_strategy or {}
    if attempt >= int(strategy.get("attempts") or 1):
        return False
    facts = {"onStatusReason": job.job_stopped_reason or "", "onReason": "", "onExitCode": str(job.exit_code)}
    for rule in strategy.get("evaluateOnExit") or []:
        patterns = {key: rule[key] for key in facts if key in rule}
        if patterns and all(fnmatch.fnmatchcase(facts[key], pattern) for key, pattern in patterns.items()):
            return rule["action"].lower() == "retry"
    return True


def _end_attempt(job: Any) -> None:
    """Record the failed attempt as Batch does (its stop, reason and exit code) before the job runs again."""
    job.latest_attempt.update(stoppedAt=int(time.time() * 1000), statusReason=job.job_stopped_reason or "")
    job.latest_attempt["container"]["exitCode"] = job.exit_code
    job.job_stopped_reason = None
    job.exit_code = None


def _reclaim_due(job: Any, checkpoint_dir: str | None) -> bool:
    """Whether the job's reclaim marker asks to terminate its host now (it then is removed)."""
    marker = Path(harness_settings().get("work_root", ".")).parent / f"{RECLAIM_PREFIX}{job.job_name}"
    if checkpoint_dir is None or not marker.exists():
        return False
    wanted = int(json.loads(marker.read_text())["checkpoint"])
    names = (path.name for path in Path(checkpoint_dir).glob("model_*.pt"))
    saved = [int(match.group(1)) for name in names if (match := _CHECKPOINT_NUMBER.match(name))]
    if not saved or max(saved) < wanted:
        return False
    marker.unlink()
    return True


def _run_container(job: Any, attempt: int) -> None:
    """One attempt of the job's container, to its exit (``exit_code`` and ``job_stopped_reason`` say how)."""
    settings = harness_settings()
    props = job.job_definition.container_properties
    worker = _image_worker(settings)
    volumes_root = Path(worker["volumes_root"] if worker else settings["volumes_root"])
    mounts = {
        m["containerPath"]: volumes_root / m["sourceVolume"] for m in job._get_container_property("mountPoints", [])
    }
    env = {e["name"]: e["value"] for e in job._get_container_property("environment", [])}
    batch_env = {"AWS_BATCH_JOB_ID": job.job_id, "AWS_BATCH_JQ_NAME": job.job_queue.name,
                 "AWS_BATCH_JOB_ATTEMPT": str(attempt)}
    checkpoint_dir = _map_paths(env["WORKBENCH_CHECKPOINT_DIR"], mounts) if "WORKBENCH_CHECKPOINT_DIR" in env else None
    for local in mounts.values():
        local.mkdir(parents=True, exist_ok=True)
    if worker:
        container = f"batch-{job.job_id}" + (f"-{attempt}" if attempt > 1 else "")
        command = _docker_run(job, worker, container, mounts, {**env, **batch_env, **worker.get("env", {})})
        stop = functools.partial(_docker_stop, worker, container)
    else:
        env = {k: _map_paths(v, mounts) for k, v in env.items()}
        env = {**settings.get("runner_env", {}), **env, **settings.get("env_overrides", {}), **batch_env}
        command = [sys.executable, "-m", "workbench.runner"]
        stop = _stop
    work_dir = Path(settings["work_root"]) / (job.job_id if attempt == 1 else f"{job.job_id}-attempt-{attempt}")
    work_dir.mkdir(parents=True, exist_ok=True)

    log_config = props.get("logConfiguration") or {}
    options = log_config.get("options") or {}
    group = options.get("awslogs-group", "/aws/batch/job")
    prefix = options.get("awslogs-stream-prefix", job.job_definition.name)
    task_id = (job.job_id if attempt == 1 else f"{attempt}{job.job_id}").replace("-", "")[:32]
    job.log_stream_name = f"{prefix}/default/{task_id}"
    job._log_backend.ensure_log_group(group)
    job._log_backend.ensure_log_stream(group, job.log_stream_name)

    job.job_started_at = datetime.now()
    job._start_attempt()
    process = subprocess.Popen(
        command, cwd=work_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    job.status = "RUNNING"
    shipper = threading.Thread(target=_ship_logs, args=(process, job._log_backend, group, job.log_stream_name), daemon=True)
    shipper.start()
    deadline = None
    if job._get_attempt_duration():
        deadline = time.monotonic() + job._get_attempt_duration()
    while process.poll() is None:
        reclaimed = _reclaim_due(job, checkpoint_dir)
        if job.stop or reclaimed or (deadline is not None and time.monotonic() > deadline):
            if reclaimed:
                job.job_stopped_reason = HOST_TERMINATED
            elif not job.stop:
                job.job_stopped_reason = "Job attempt duration exceeded timeout"
            stop(process)
            break
        time.sleep(0.2)
    process.wait()
    shipper.join(timeout=60)
    job.exit_code = process.returncode
    if process.returncode != 0 and not job.stop:
        job.job_stopped_reason = job.job_stopped_reason or "Essential container in task exited"


def _image_worker(settings: dict[str, Any]) -> dict[str, Any] | None:
    """The image worker's settings while its file exists (tests switch it on and off between jobs)."""
    path = settings.get("worker_file")
    if not path or not Path(path).exists():
        return None
    return json.loads(Path(path).read_text())


def _docker_run(job: Any, worker: dict[str, Any], name: str, mounts: dict[str, Path], env: dict[str, str]) -> list[str]:
    """``docker run`` of the job image as ECS starts a Batch container (no GPU here: that part is left out)."""
    for local in mounts.values():
        os.chown(local, 1000, 1000)  # what the EFS access point's creation info and POSIX user enforce
    command = [worker["docker_cli"], "--host", worker["docker_host"], "run", "--name", name,
               "--label", "workbench-harness=batch", "--network", "host"]
    for container_path, local in mounts.items():
        command += ["--volume", f"{local}:{container_path}"]
    for local, container_path in worker.get("extra_volumes", {}).items():
        command += ["--volume", f"{local}:{container_path}"]
    shared_memory = (job._get_container_property("linuxParameters", {}) or {}).get("sharedMemorySize")
    if shared_memory:
        command += ["--shm-size", f"{shared_memory}m"]
    memory = next((r["value"] for r in job._get_container_property("resourceRequirements", [])
                   if r["type"] == "MEMORY"), None)
    if memory:
        command += ["--memory", f"{memory}m"]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    return [*command, worker["image"]]


def _docker_stop(worker: dict[str, Any], name: str, process: subprocess.Popen) -> None:
    """What ECS does on StopTask: SIGTERM to the container, SIGKILL after the grace period."""
    subprocess.run([worker["docker_cli"], "--host", worker["docker_host"], "stop", "--time", str(int(STOP_GRACE_SECONDS)),
                    name], capture_output=True, timeout=STOP_GRACE_SECONDS + 60, check=False)
    process.wait(timeout=60)


def _map_paths(value: str, mounts: dict[str, Path]) -> str:
    for container_path, local in mounts.items():
        if value == container_path or value.startswith(container_path.rstrip("/") + "/"):
            return str(local) + value[len(container_path.rstrip("/")):]
    return value


def _ship_logs(process: subprocess.Popen, logs_backend: Any, group: str, stream: str) -> None:
    """Send the container's output to CloudWatch Logs in order, flushed every ~0.3 s (the awslogs driver's job)."""
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read() -> None:
        for raw in iter(process.stdout.readline, b""):
            lines.put({"timestamp": int(time.time() * 1000), "message": raw.decode(errors="replace").rstrip("\n")})
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    ended = False
    while not ended:
        batch: list[dict[str, Any]] = []
        try:
            while len(batch) < 500:
                item = lines.get(timeout=0.3)
                if item is None:
                    ended = True
                    break
                batch.append(item)
        except queue.Empty:
            pass
        if batch:
            logs_backend.put_log_events(group, stream, batch)


def _stop(process: subprocess.Popen) -> None:
    """What ECS does on StopTask: SIGTERM to the container, SIGKILL after the grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
