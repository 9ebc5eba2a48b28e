"""Runner parts on their own: progress parsing, checkpoint naming, metrics export, atomic status, commands."""

from __future__ import annotations

import csv
import json
import multiprocessing
from pathlib import Path

from tensorboardX import SummaryWriter

from workbench.libraries import library
from workbench.libraries.rl_games import fitting_minibatch
from workbench.outputs import checkpoints, metrics
from workbench.outputs.progress import ProgressParser
from workbench.runner import commands
from workbench.spec.document import parse_spec
from workbench.spec.status import JobState, JobStatus, Progress
from workbench.transport.channels import FileChannel

RSL_RL_OUTPUT = """\
################################################################################
\x1b[1m                             Learning iteration 1/3                             \x1b[0m
                            Total steps: 512
                       Steps per second: 676
                            Mean reward: 0.39
                    Mean episode length: 26.50
"""


def _feed(parser: ProgressParser, text: str) -> Progress:
    progress = Progress()
    for line in text.replace("\r", "\n").splitlines():
        update = parser.feed(line)
        if update is not None:
            progress = progress.merged(update)
    return progress


def test_rsl_rl_iteration_report() -> None:
    progress = _feed(ProgressParser("rsl_rl"), RSL_RL_OUTPUT)
    assert progress == Progress(iteration=2, max_iterations=3, mean_reward=0.39, mean_episode_length=26.5,
                                steps_per_second=676.0)


def test_rl_games_fps_line() -> None:
    line = "fps step: 636 fps step and policy inference: 507 fps total: 227 epoch: 2/3 frames: 512"
    assert ProgressParser("rl_games").feed(line) == Progress(iteration=2, max_iterations=3, steps_per_second=227.0)


def test_skrl_progress_bar_in_iterations() -> None:
    bar = " 33%|###3      | 32/96 [00:06<00:43,  1.46it/s]\r 66%|######6   | 64/96 [00:07<00:26,  2.31it/s]"
    assert _feed(ProgressParser("skrl", rollouts_per_iteration=32), bar) == Progress(iteration=2, max_iterations=3)


def test_own_progress_and_error_lines() -> None:
    parser = ProgressParser("rsl_rl")
    assert parser.feed('WORKBENCH_PROGRESS {"iteration": 4, "max_iterations": 50, "mean_reward": 1.5}') == Progress(
        iteration=4, max_iterations=50, mean_reward=1.5)
    assert parser.feed("WORKBENCH_PROGRESS not json") is None
    assert parser.feed("WORKBENCH_ERROR the checkpoint is not an rsl_rl policy") is None
    assert parser.error == "the checkpoint is not an rsl_rl policy"


def test_missing_asset_becomes_the_failure_reason() -> None:
    parser = ProgressParser("rsl_rl")
    parser.feed("FileNotFoundError: Unable to resolve the file: /home/u/.workbench/assets/Isaac/Robots/Ant/ant.usd")
    assert parser.error.startswith("asset not found: /home/u/.workbench/assets/Isaac/Robots/Ant/ant.usd")
    assert "WORKBENCH_ASSETS=nucleus" in parser.error
    url = "https://raw.githubusercontent.com/newton-physics/newton-assets/main/fourbar_pole/usd/fourbar_pole.usda"
    parser.feed(f"FileNotFoundError: Unable to find the file: {url}")  # Isaac-Fourbar-Pole-Swingup, offline
    assert parser.error == f"asset not found: {url}. The task downloads it from that address at run time (needs network)"


def test_newest_checkpoint_compares_iterations_as_numbers(tmp_path: Path) -> None:
    for n in (999, 1500, 50):
        (tmp_path / f"model_{n}.pt").write_bytes(b"x")
    (tmp_path / "best.pt").write_bytes(b"x")
    assert checkpoints.newest_checkpoint(tmp_path).name == "model_1500.pt"


def test_library_checkpoints_are_normalized_by_iteration(tmp_path: Path) -> None:
    (tmp_path / "nn").mkdir()
    for name in ("last_cartpole_ep_150_rew_4.2.pth", "last_cartpole_ep_25_rew_-inf.pth", "cartpole.pth"):
        (tmp_path / "nn" / name).write_bytes(b"x")
    names = sorted(checkpoints.layout_name(c.iteration) for c in library("rl_games").run_checkpoints(tmp_path))
    assert names == ["best.pt", "model_150.pt", "model_25.pt"]
    skrl = tmp_path / "skrl"
    (skrl / "checkpoints").mkdir(parents=True)
    (skrl / "params").mkdir()
    (skrl / "params" / "agent.yaml").write_text("agent:\n  rollouts: 32\n  class: !!python/name:builtins.dict ''\n")
    for step in (32, 64, 96):
        (skrl / "checkpoints" / f"agent_{step}.pt").write_bytes(b"x")
    (skrl / "checkpoints" / "best_agent.pt").write_bytes(b"x")
    dest = tmp_path / "out"
    checkpoints.sync_checkpoints(skrl, "skrl", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["best.pt", "model_1.pt", "model_2.pt", "model_3.pt"]


def test_metrics_export_keeps_every_point(tmp_path: Path) -> None:
    run = tmp_path / "run"
    writer = SummaryWriter(str(run))
    for step in range(12000):
        writer.add_scalar("Train/mean_reward", step * 0.5, step)
        writer.add_scalar("Loss/value", 1.0 / (step + 1), step)
        writer.add_scalar("Train/mean_reward/time", step * 0.5, step * 7)
    writer.close()
    reader = metrics.ScalarReader(run, "rsl_rl")
    rows = metrics.export_metrics(reader, tmp_path / "metrics.csv")
    assert len(rows) == 12000
    with (tmp_path / "metrics.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 12000
    assert "Train/mean_reward/time" not in table[0]
    assert float(table[11999]["reward"]) == 11999 * 0.5 and table[11999]["iteration"] == "11999"
    assert metrics.latest_progress(rows, "rsl_rl").mean_reward == 11999 * 0.5


def test_metrics_export_reads_only_what_is_new(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter as TorchSummaryWriter  # flushes synchronously, as rsl_rl's

    run = tmp_path / "run"
    writer = TorchSummaryWriter(str(run))
    for step in range(5):
        writer.add_scalar("Train/mean_reward", float(step), step)
    writer.flush()
    reader = metrics.ScalarReader(run, "rsl_rl")
    assert sorted(metrics.export_metrics(reader, tmp_path / "metrics.csv")) == [0, 1, 2, 3, 4]
    for step in range(5, 8):
        writer.add_scalar("Train/mean_reward", float(step), step)
    writer.flush()
    rows = metrics.export_metrics(reader, tmp_path / "metrics.csv")
    assert sorted(rows) == list(range(8)) and rows[7]["Train/mean_reward"] == 7.0
    assert reader._consumed[(run, "Train/mean_reward")] == 8
    with (tmp_path / "metrics.csv").open() as handle:
        assert [row["reward"] for row in csv.DictReader(handle)] == [repr(float(s)) for s in range(8)]
    writer.close()


def _publish_many(path: str, count: int) -> None:
    channel = FileChannel(path)
    for i in range(count):
        channel.publish(JobStatus("job", JobState.RUNNING, "running " + "x" * (i % 500),
                                  progress=Progress(iteration=i, max_iterations=count)))


def test_status_readers_always_see_a_complete_status(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    FileChannel(path).publish(JobStatus("job", JobState.STARTING))
    writer = multiprocessing.get_context("spawn").Process(target=_publish_many, args=(str(path), 300))
    writer.start()
    reads = 0
    while writer.is_alive() or reads < 100:
        status = JobStatus.from_dict(json.loads(path.read_text()))
        assert status.job_id == "job"
        reads += 1
    writer.join()
    assert writer.exitcode == 0 and reads >= 100
    assert JobStatus.from_dict(json.loads(path.read_text())).progress.iteration == 299
    assert not [p for p in tmp_path.iterdir() if p.name != "status.json"], "temporary files left behind"


def test_train_command_for_each_library_and_device() -> None:
    spec = parse_spec({"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 16, "maxIterations": 3,
                                          "rlLibrary": "rl_games", "seed": 1,
                                          "overrides": {"agent.params.config.gamma": 0.9}}})
    args = commands.train_arguments(spec, "cpu", "2026-01-01_00-00-00",
                                    {"params": {"config": {"horizon_length": 32, "minibatch_size": 16384}}})
    assert args[:4] == ["--rl_library", "rl_games", "--task", "Isaac-Cartpole-Direct"]
    assert "--headless" not in args and ["--device", "cpu"] == args[args.index("--device"):args.index("--device") + 2]
    assert "agent.params.config.device=cpu" in args and "agent.params.config.device_name=cpu" in args
    assert "agent.params.config.minibatch_size=512" in args
    assert args[-1] == "agent.params.config.gamma=0.9"
    rsl = parse_spec({"trainingConfig": {"task": "Isaac-Cartpole-Direct", "numEnvs": 4096}})
    assert "agent.device=cuda:0" in commands.train_arguments(rsl, "cuda:0", "t", None)


def test_rl_games_minibatch_is_left_alone_when_it_divides_the_batch() -> None:
    cfg = {"params": {"config": {"horizon_length": 32, "minibatch_size": 16384}}}
    assert fitting_minibatch(4096, cfg) is None
    assert fitting_minibatch(100, cfg) == 3200


def test_child_environment_never_carries_the_task_token() -> None:
    env = commands.child_environment({"WORKBENCH_TASK_TOKEN": "secret", "PATH": "/bin"}, {"A": "1"}, ["/job/site"])
    assert "WORKBENCH_TASK_TOKEN" not in env and env["PYTHONPATH"] == "/job/site" and env["NCCL_NVLS_ENABLE"] == "0"
