"""Multi-node (AWS Batch multi-node parallel) and multi-GPU training: node role and the torchrun launch.

Batch starts the same container on every node with ``AWS_BATCH_JOB_NODE_INDEX``, ``AWS_BATCH_JOB_NUM_NODES``,
``AWS_BATCH_JOB_MAIN_NODE_INDEX`` and, on the other nodes only, ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS``.
Every node runs ``torchrun`` with a static rendezvous at the main node and Isaac Lab's per-rank trainer (the
worker script of ``isaaclab train_multigpu``) with ``--distributed`` and one ``--run_timestamp`` shared by all
nodes. Every node heartbeats; only the main node uploads the outputs and reports success or failure.

A worker node's torchrun often exits non-zero *after* the training ended: the main node's torchrun finishes first
and closes the rendezvous store the others still talk to. So the main node, once its training exited 0, writes a
marker (:data:`TRAINING_FINISHED`) in the job's checkpoint directory on EFS, which every node shares, before it
exports and uploads; a worker whose training exits non-zero waits up to :data:`WORKER_GRACE_S` for that marker and,
if it appears, ends successfully with the reason in its log (:func:`worker_end`). A worker that fails while the
training still runs (no marker) fails. The Batch job's status is the main node's in any case; the Batch failure
hook ignores worker nodes' events, so neither can fail a job the main node is completing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import RunnerError

MASTER_PORT = 29500
NCCL_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}
"""Kept in every distributed child's environment: NVLink multicast (NVLS) off, which these hosts need."""

WORKER_MODULE = "isaaclab_rl.entrypoints.multigpu"
TRAINING_FINISHED = ".workbench-training-finished"
"""The marker the main node writes in the job's (shared) checkpoint directory once its training exited 0."""
WORKER_GRACE_S = 60.0
"""How long a worker whose training failed waits for the main node's marker before it reports the failure."""


@dataclass(frozen=True)
class NodeContext:
    """Where this process sits in a multi-node job. ``rank`` is the torchrun node rank (the main node is 0)."""

    node_index: int
    num_nodes: int
    main_node_index: int
    main_address: str

    @property
    def is_main(self) -> bool:
        return self.node_index == self.main_node_index

    @property
    def rank(self) -> int:
        return (self.node_index - self.main_node_index) % self.num_nodes

    def describe(self) -> str:
        role = "main node" if self.is_main else f"worker node (main at {self.main_address})"
        return f"node {self.node_index} of {self.num_nodes}, {role}"


def node_context_from_env(environ: Mapping[str, str], local_address: str | None = None) -> NodeContext | None:
    """The node's place in a Batch multi-node job, or ``None`` for a single-node job.

    On the main node Batch does not set the main node's address; ``local_address`` (default: this host's
    address) is used there.
    """
    if "AWS_BATCH_JOB_NUM_NODES" not in environ:
        return None
    try:
        num_nodes = int(environ["AWS_BATCH_JOB_NUM_NODES"])
        index = int(environ.get("AWS_BATCH_JOB_NODE_INDEX", "0"))
        main = int(environ.get("AWS_BATCH_JOB_MAIN_NODE_INDEX", "0"))
    except ValueError as exc:
        raise RunnerError(f"malformed AWS Batch multi-node variables: {exc}") from exc
    if not (0 <= index < num_nodes and 0 <= main < num_nodes):
        raise RunnerError(f"node index {index} / main node {main} out of range for {num_nodes} nodes")
    if num_nodes == 1:
        return None
    address = environ.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS")
    if not address:
        if index != main:
            raise RunnerError("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set on a worker node")
        address = local_address or _local_address()
    return NodeContext(node_index=index, num_nodes=num_nodes, main_node_index=main, main_address=address)


def train_arguments(command: Sequence[str]) -> list[str]:
    """The ``isaaclab train`` arguments of a command line (everything after ``train``)."""
    for position, arg in enumerate(command):
        if arg == "train":
            return list(command[position + 1:])
    raise RunnerError(f"not an 'isaaclab train' command: {' '.join(command)}")


def master_port(job_id: str) -> int:
    """A rendezvous port derived from the job id (stable across nodes, different for jobs sharing hosts)."""
    return MASTER_PORT + int(hashlib.sha256(job_id.encode()).hexdigest(), 16) % 1000


def shared_run_timestamp(job_id: str) -> str:
    """The ``--run_timestamp`` every node passes: derived from the job id, so all nodes agree without talking."""
    return f"job-{job_id}"


def distributed_command(
    train_command: Sequence[str],
    ctx: NodeContext | None,
    gpus_per_node: int,
    run_timestamp: str,
    port: int = MASTER_PORT,
    python: str = sys.executable,
) -> list[str]:
    """The torchrun command for this node, from the single-process ``isaaclab train`` command.

    ``ctx`` is ``None`` for one node with several GPUs. Every node must be given the same ``run_timestamp``
    (e.g. derived from the job id) so that all ranks write one run folder.
    """
    args = [a for a in _without_option(train_arguments(train_command), "--run_timestamp") if a != "--distributed"]
    nodes = ["--nnodes", "1", "--node_rank", "0", "--master_addr", "127.0.0.1"]
    if ctx is not None:
        nodes = ["--nnodes", str(ctx.num_nodes), "--node_rank", str(ctx.rank), "--master_addr", ctx.main_address]
    return [
        python, "-m", "torch.distributed.run",
        "--nproc_per_node", str(gpus_per_node),
        *nodes,
        "--master_port", str(port),
        "--rdzv_backend", "static",
        "--local_ranks_filter", "0",
        worker_script(),
        *args,
        "--run_timestamp", run_timestamp,
        "--distributed",
    ]


@dataclass(frozen=True)
class DistributedLaunch:
    """How this node launches a distributed training: the torchrun command, the child environment, its role."""

    ctx: NodeContext | None
    gpus_per_node: int
    run_timestamp: str
    port: int

    @property
    def is_main(self) -> bool:
        """Whether this node uploads the outputs and reports the job's end."""
        return self.ctx is None or self.ctx.is_main

    def command(self, train_command: Sequence[str]) -> list[str]:
        return distributed_command(train_command, self.ctx, self.gpus_per_node, self.run_timestamp, self.port)

    def environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        return distributed_env(environ)

    def describe(self) -> str:
        where = self.ctx.describe() if self.ctx else "one node"
        return f"distributed training on {where}, {self.gpus_per_node} GPU(s) per node, run {self.run_timestamp}"


def distributed_launch(compute: Mapping[str, object], job_id: str, device: str,
                       environ: Mapping[str, str]) -> DistributedLaunch | None:
    """The distributed launch for a training job, or ``None`` for one process on one device (plain ``isaaclab train``)."""
    ctx = node_context_from_env(environ)
    gpus = int(compute.get("gpusPerNode") or 1)
    if ctx is None and gpus == 1:
        return None
    if "cpu" in device:
        raise RunnerError(
            "distributed training (several nodes or computeConfig.gpusPerNode > 1) needs GPUs; Isaac Lab refuses it "
            "on the CPU: set trainingConfig.device to cuda, or use one node with gpusPerNode 1"
        )
    return DistributedLaunch(ctx, gpus, shared_run_timestamp(job_id), master_port(job_id))


def mark_training_finished(checkpoint_dir: Path | None) -> None:
    """On the main node: the training of every node ended well (written before the export and upload)."""
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (checkpoint_dir / TRAINING_FINISHED).write_text("the main node's training exited 0\n")


def clear_training_finished(checkpoint_dir: Path | None) -> None:
    """On the main node, before the training starts: no marker from an earlier attempt of this job."""
    if checkpoint_dir is not None:
        (checkpoint_dir / TRAINING_FINISHED).unlink(missing_ok=True)


def training_finished(checkpoint_dir: Path | None, wait_s: float = 0.0, poll_s: float = 1.0,
                      sleep: Callable[[float], None] = time.sleep) -> bool:
    """Whether the main node marked the training finished, waiting up to ``wait_s`` seconds for the marker."""
    if checkpoint_dir is None:
        return False
    marker = checkpoint_dir / TRAINING_FINISHED
    deadline = time.monotonic() + wait_s
    while not marker.exists():
        if time.monotonic() >= deadline:
            return False
        sleep(poll_s)
    return True


def worker_end(code: int, cancel_reason: str | None, finished: bool) -> tuple[bool, str]:
    """A worker node's end: ``(succeeded, reason)`` from its training's exit code, a cancellation, and whether
    the main node marked the training finished.

    A worker never uploads or reports the job's end; what matters is that a late failure (the main node finished
    first, or Batch stopped the worker after the main node exited) does not read as a failed node.
    """
    if finished and (code != 0 or cancel_reason):
        what = cancel_reason or f"its training process exited with code {code}"
        return True, (f"this worker node finished: the training ended on the main node, then {what} "
                      "(expected once the main node is done); the main node uploads and reports")
    if cancel_reason:
        return False, cancel_reason
    if code != 0:
        return False, f"this worker node's training failed (exit code {code}) while the training still ran"
    return True, "this worker node finished; the main node uploads and reports"


def distributed_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The child's environment for a distributed run: ``environ`` with the NCCL settings enforced."""
    return {**environ, **NCCL_ENV}


def worker_script() -> str:
    """The per-rank trainer that ``isaaclab train_multigpu`` runs under torchrun."""
    spec = importlib.util.find_spec(WORKER_MODULE)
    if spec is None or spec.origin is None:
        raise RunnerError(f"Isaac Lab's distributed trainer {WORKER_MODULE} is not installed")
    return spec.origin


def _without_option(args: list[str], name: str) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(f"{name}="):
            out.append(arg)
    return out


def _local_address() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
