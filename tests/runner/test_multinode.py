"""Multi-node launch construction from AWS Batch's multi-node variables."""

from __future__ import annotations

import pytest

from workbench.errors import RunnerError
from workbench.runner.multinode import (
    NCCL_ENV,
    NodeContext,
    distributed_command,
    distributed_env,
    distributed_launch,
    master_port,
    node_context_from_env,
    shared_run_timestamp,
    worker_script,
)
from workbench.spec.settings import is_main_node

TRAIN = ["isaaclab", "train", "--rl_library", "rsl_rl", "--task", "Isaac-Ant", "--num_envs", "4096", "agent.device=cuda:0"]


def batch_env(index: int, nodes: int = 4, main: int = 0, address: str | None = "10.0.1.5") -> dict[str, str]:
    env = {
        "AWS_BATCH_JOB_NODE_INDEX": str(index),
        "AWS_BATCH_JOB_NUM_NODES": str(nodes),
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": str(main),
    }
    if address is not None and index != main:
        env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = address
    return env


def test_single_node_job_has_no_context():
    assert node_context_from_env({}) is None
    assert node_context_from_env(batch_env(0, nodes=1)) is None
    assert is_main_node({})


def test_worker_node_reads_the_main_address():
    ctx = node_context_from_env(batch_env(2))
    assert ctx == NodeContext(node_index=2, num_nodes=4, main_node_index=0, main_address="10.0.1.5")
    assert not ctx.is_main and ctx.rank == 2
    assert not is_main_node(batch_env(2))


def test_main_node_uses_its_own_address_because_batch_sets_none_there():
    ctx = node_context_from_env(batch_env(0), local_address="10.0.1.9")
    assert ctx.is_main and ctx.rank == 0 and ctx.main_address == "10.0.1.9"
    assert is_main_node(batch_env(0))


def test_main_node_other_than_zero_becomes_rank_zero():
    ranks = sorted(node_context_from_env(batch_env(i, nodes=3, main=1), local_address="h").rank for i in range(3))
    assert ranks == [0, 1, 2]
    assert node_context_from_env(batch_env(1, nodes=3, main=1), local_address="h").rank == 0


@pytest.mark.parametrize(
    "env",
    [
        {"AWS_BATCH_JOB_NUM_NODES": "two"},
        {"AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_NODE_INDEX": "2"},
        batch_env(1, nodes=2, address=None),
    ],
)
def test_malformed_variables_are_refused_with_a_reason(env):
    with pytest.raises(RunnerError):
        node_context_from_env(env)


def test_distributed_command_follows_isaaclab_train_multigpu():
    ctx = node_context_from_env(batch_env(3))
    ts = shared_run_timestamp("11111111-2222-3333-4444-555555555555")
    cmd = distributed_command(TRAIN + ["--run_timestamp", "old"], ctx, gpus_per_node=8, run_timestamp=ts, port=29611, python="py")
    assert cmd[:3] == ["py", "-m", "torch.distributed.run"]
    launcher = cmd[: cmd.index(worker_script())]
    options = dict(zip(launcher[3::2], launcher[4::2]))
    assert options == {
        "--nproc_per_node": "8", "--nnodes": "4", "--node_rank": "3", "--master_addr": "10.0.1.5",
        "--master_port": "29611", "--rdzv_backend": "static", "--local_ranks_filter": "0",
    }
    worker_args = cmd[cmd.index(worker_script()) + 1:]
    assert worker_args[:-3] == TRAIN[2:]
    assert worker_args[-3:] == ["--run_timestamp", ts, "--distributed"]
    assert worker_args.count("--run_timestamp") == 1


def test_every_node_gets_the_same_run_folder_name():
    job = "11111111-2222-3333-4444-555555555555"
    commands = [distributed_command(TRAIN, node_context_from_env(batch_env(i), "10.0.1.5"), 1, shared_run_timestamp(job)) for i in range(4)]
    assert len({c[c.index("--run_timestamp") + 1] for c in commands}) == 1


def test_single_node_multi_gpu_runs_locally():
    cmd = distributed_command(TRAIN, None, gpus_per_node=4, run_timestamp="t")
    assert cmd[cmd.index("--nnodes") + 1] == "1" and cmd[cmd.index("--master_addr") + 1] == "127.0.0.1"


def test_the_worker_script_is_isaaclabs_per_rank_trainer():
    from isaaclab_rl.entrypoints import multigpu

    assert worker_script() == multigpu.WORKER_SCRIPT


def test_not_a_train_command_is_refused():
    with pytest.raises(RunnerError):
        distributed_command(["isaaclab", "play", "--task", "x"], None, 1, "t")


def test_child_env_keeps_nvlink_multicast_off():
    env = distributed_env({"PATH": "/bin", "NCCL_NVLS_ENABLE": "1"})
    assert env["PATH"] == "/bin"
    assert {k: env[k] for k in NCCL_ENV} == {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def test_one_process_on_one_device_needs_no_distributed_launch():
    assert distributed_launch({"numNodes": 1, "gpusPerNode": 1}, "job", "cuda:0", {}) is None


def test_a_worker_node_launches_torchrun_and_leaves_the_report_to_the_main_node():
    launch = distributed_launch({"numNodes": 4, "gpusPerNode": 2}, "job-7", "cuda:0", batch_env(1))
    assert not launch.is_main
    command = launch.command(TRAIN)
    assert command[command.index("--node_rank") + 1] == "1"
    assert command[command.index("--master_port") + 1] == str(master_port("job-7"))
    assert command[-3:-1] == ["--run_timestamp", shared_run_timestamp("job-7")]
    assert launch.environment({})["NCCL_NVLS_ENABLE"] == "0"
    assert distributed_launch({"numNodes": 4, "gpusPerNode": 2}, "job-7", "cuda:0", batch_env(0, address=None)).is_main


def test_distributed_training_on_the_cpu_is_refused_with_the_reason():
    with pytest.raises(RunnerError, match="needs GPUs"):
        distributed_launch({"numNodes": 1, "gpusPerNode": 4}, "job", "cpu", {})


def test_the_launch_is_the_one_isaaclab_train_multigpu_builds():
    """Same command as Isaac Lab's own launcher for the same node, GPUs, rendezvous and training arguments."""
    from isaaclab.cli.multigpu import build_launch_command, build_parser
    from isaaclab_rl.entrypoints.multigpu import LAUNCHER_CFG

    ctx = node_context_from_env(batch_env(2))
    ours = distributed_command(TRAIN, ctx, gpus_per_node=4, run_timestamp="job-x", port=29555)
    argv = ["--num_gpus", "4", "--nnodes", "4", "--node_rank", "2", "--master_addr", "10.0.1.5", "--master_port", "29555",
            "--rdzv_backend", "static", *TRAIN[2:], "--run_timestamp", "job-x"]
    args_cli, worker_args = build_parser(LAUNCHER_CFG).parse_known_args(argv)
    theirs = build_launch_command(args_cli, worker_args, LAUNCHER_CFG)
    assert ours == theirs


# ------------------------------------------------------------------ a worker node's end (late exits)

from workbench.runner.multinode import (  # noqa: E402
    TRAINING_FINISHED,
    clear_training_finished,
    mark_training_finished,
    training_finished,
    worker_end,
)


def test_a_worker_that_fails_after_the_training_finished_succeeds_with_the_reason():
    succeeded, reason = worker_end(1, None, finished=True)
    assert succeeded
    assert "training ended on the main node" in reason and "exited with code 1" in reason


def test_a_worker_stopped_by_batch_after_the_main_node_exited_succeeds():
    succeeded, reason = worker_end(-15, "cancelled (SIGTERM received)", finished=True)
    assert succeeded and "SIGTERM" in reason


def test_a_worker_that_fails_while_the_training_runs_fails():
    succeeded, reason = worker_end(1, None, finished=False)
    assert not succeeded and "exit code 1" in reason and "still ran" in reason
    assert worker_end(0, "cancelled (SIGTERM received)", finished=False) == (False, "cancelled (SIGTERM received)")
    assert worker_end(0, None, finished=False)[0]


def test_the_main_nodes_marker_is_what_the_worker_waits_for(tmp_path):
    checkpoints = tmp_path / "checkpoints" / "job-1"
    assert not training_finished(checkpoints) and not training_finished(None, wait_s=5)
    naps: list[float] = []

    def main_node_finishes_while_the_worker_waits(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            mark_training_finished(checkpoints)

    assert training_finished(checkpoints, wait_s=60, poll_s=0.01, sleep=main_node_finishes_while_the_worker_waits)
    assert len(naps) == 3 and (checkpoints / TRAINING_FINISHED).is_file()
    clear_training_finished(checkpoints)
    assert not training_finished(checkpoints, wait_s=0.05, poll_s=0.01)
    clear_training_finished(checkpoints)  # nothing to clear: no error


STAND_IN = """
import os, sys
import workbench.runner.job as job
from workbench.runner import __main__ as runner, multinode
job.WORKER_GRACE_S = float(os.environ["GRACE_S"])
child = "import os, sys; print('stand-in rank ended', flush=True); sys.exit(int(os.environ['STAND_IN_EXIT']))"
multinode.DistributedLaunch.command = lambda self, command: [sys.executable, "-c", child]
sys.exit(runner.main())
"""


@pytest.mark.parametrize(
    ("child_exit", "main_marked", "runner_exit", "words"),
    [
        (1, True, 0, "training ended on the main node"),
        (1, False, 1, "while the training still ran"),
        (0, False, 0, "this worker node finished"),
    ],
)
def test_a_real_worker_runner_exits_by_whether_the_training_finished(tmp_path, child_exit, main_marked, runner_exit, words):
    """``python -m workbench.runner`` on worker node 1 of 2, its torchrun replaced by a child that exits ``child_exit``."""
    import json
    import os
    import subprocess
    import sys

    checkpoints = tmp_path / "efs" / "job-mn"
    if main_marked:
        mark_training_finished(checkpoints)
    spec = {"trainingConfig": {"task": "Isaac-Cartpole-Direct-v0", "rlLibrary": "rsl_rl", "device": "cuda"},
            "computeConfig": {"numNodes": 2}}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "AWS_BATCH_"))},
        **batch_env(1, nodes=2),
        "WORKBENCH_JOB_ID": "job-mn", "WORKBENCH_JOB_SPEC": json.dumps(spec),
        "WORKBENCH_WORK_DIR": str(tmp_path / "work"), "WORKBENCH_CHECKPOINT_DIR": str(checkpoints),
        "WORKBENCH_HOME": str(tmp_path / "home"), "STAND_IN_EXIT": str(child_exit), "GRACE_S": "0.5",
    }
    done = subprocess.run([sys.executable, "-c", STAND_IN], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == runner_exit, done.stdout + done.stderr
    assert "stand-in rank ended" in done.stdout
    assert words in done.stdout
    status = json.loads((tmp_path / "work" / "status.json").read_text())
    assert status["state"] == ("SUCCEEDED" if runner_exit == 0 else "FAILED")
