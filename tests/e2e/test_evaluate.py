"""Evaluation mode end to end: real tiny policies of each library evaluated by the runner, and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import av
import pandas as pd
import pytest
import torch
from evaluation_fixtures import backend, evaluated_jobs, evaluation_settings  # noqa: F401  (fixtures)

from workbench.backends.local import LocalBackend
from workbench.errors import RunnerError
from workbench.runner.evaluation.episodes import COLUMNS, EpisodeCounter, episode_quotas
from workbench.runner.evaluation.video import clip_timing, encode_mp4, frames_for_length, require_viewer

LIBRARIES = ("rsl_rl", "rl_games", "skrl")
TASK = "Isaac-Cartpole-Direct"


@pytest.mark.slow
@pytest.mark.parametrize("library", LIBRARIES)
def test_evaluation_writes_metrics_summary_and_clips(library: str, evaluated_jobs, evaluation_settings) -> None:
    settings = evaluation_settings
    out = evaluated_jobs[library].outputs()
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == list(COLUMNS)
    assert len(metrics) == settings["numEpisodes"]
    assert metrics["episode"].tolist() == list(range(settings["numEpisodes"]))
    assert metrics["length"].between(1, settings["stepsPerEpisode"]).all()
    assert metrics["truncated"].eq(metrics["length"].eq(settings["stepsPerEpisode"])).all()

    summary = json.loads((out / "evaluation-summary.json").read_text())
    assert summary["episodes"] == settings["numEpisodes"]
    assert summary["mean_return"] == pytest.approx(metrics["return"].mean())
    assert summary["min_return"] == pytest.approx(metrics["return"].min())
    assert summary["max_return"] == pytest.approx(metrics["return"].max())
    assert summary["std_return"] == pytest.approx(metrics["return"].std(ddof=0))
    assert summary["mean_length"] == pytest.approx(metrics["length"].mean())
    assert summary["success_rate"] == pytest.approx(metrics["success"].mean())
    assert summary["env_steps"] > 0 and summary["steps_per_second"] > 0
    assert summary["rl_library"] == library and summary["checkpoint_iteration"] is not None

    config = json.loads((out / "evaluation-config.json").read_text())
    assert config["trainingConfig"]["mode"] == "evaluate"

    recorded = metrics[metrics["video"].notna()]
    assert len(recorded) == settings["videoEpisodes"]
    assert (recorded["env_index"] == 0).all()
    assert sorted(p.name for p in (out / "videos").glob("*.mp4")) == sorted(v.split("/")[-1] for v in recorded["video"])
    for row in recorded.itertuples():
        with av.open(str(out / row.video)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert stream.codec_context.pix_fmt == "yuv420p"
            frames = list(container.decode(stream))
        assert len(frames) == frames_for_length(row.length, summary["video_frame_stride"])
        assert (frames[0].width, frames[0].height) == (settings["videoWidth"], settings["videoHeight"])
        assert frames[len(frames) // 2].to_ndarray(format="rgb24").std() > 1.0, "the clip is one flat colour"


@pytest.mark.slow
def test_cli_evaluate_without_video_is_deterministic(evaluated_jobs, trained_job, evaluation_settings) -> None:
    """``workbench evaluate --from-job ... --wait``: no clips, and the same episodes as the run with video."""
    settings = evaluation_settings
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "evaluate",
            "--task",
            TASK,
            "--rl-library",
            "rsl_rl",
            "--from-job",
            trained_job("rsl_rl").job_id,
            "--num-envs",
            str(settings["numEnvs"]),
            "--num-episodes",
            str(settings["numEpisodes"]),
            "--steps-per-episode",
            str(settings["stepsPerEpisode"]),
            "--seed",
            "3",
            "--device",
            "cpu",
            "--wait",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = re.search(r"submitted job ([0-9a-f-]{36})", result.stdout).group(1)
    out = LocalBackend().job(job_id).outputs()
    assert not list(out.glob("videos/*.mp4"))
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == settings["numEpisodes"] and metrics["video"].isna().all()
    with_video = pd.read_csv(evaluated_jobs["rsl_rl"].outputs() / "metrics.csv")
    columns = ["episode", "env_index", "return", "length", "success"]
    pd.testing.assert_frame_equal(metrics[columns], with_video[columns])


def test_episode_quotas_fix_which_episodes_count() -> None:
    assert episode_quotas(5, 2) == [3, 2]
    assert episode_quotas(3, 100) == [1, 1, 1]
    assert episode_quotas(5, 3, first_env_episodes=2) == [2, 2, 1]
    assert episode_quotas(2, 4, first_env_episodes=2) == [2]
    assert episode_quotas(4, 1, first_env_episodes=2) == [4]
    for episodes, envs, first in [(7, 3, 0), (50, 100, 2), (10, 4, 3)]:
        assert sum(episode_quotas(episodes, envs, first)) == episodes


def test_counter_cuts_episodes_at_the_step_limit_and_ignores_the_rest() -> None:
    counter = EpisodeCounter([2, 1], max_steps=3)
    no, yes = torch.tensor([False, False]), torch.tensor([True, False])
    ones = torch.ones(2)
    (first,) = counter.update(ones, yes, no)  # env 0 terminated after 1 step; env 1 goes on
    assert (first.env_index, first.length, first.success, first.truncated) == (0, 1, False, False)
    counter.update(ones, no, no)
    counted = counter.update(ones, no, no)  # env 0 at 2 steps, env 1 reaches the limit of 3
    assert [(e.env_index, e.length, e.truncated, e.success) for e in counted] == [(1, 3, True, True)]
    assert counter.draining == [False, True]
    counted = counter.update(ones, no, torch.tensor([False, True]))  # env 1's cut episode ends: not counted again
    assert [(e.env_index, e.length, e.truncated) for e in counted] == [(0, 3, True)]  # env 0 reaches the limit
    assert counter.draining == [True, False] and counter.done
    assert [e.episode for e in counter.episodes] == [0, 1, 2]
    assert counter.summary()["episodes"] == 3 and counter.summary()["mean_length"] == pytest.approx(7 / 3)


def test_encoded_clip_plays_at_the_clip_rate(tmp_path) -> None:
    fps, stride = clip_timing(1 / 60)
    assert (fps, stride) == (30, 2)
    frames = [((i * 8 + torch.zeros(90, 160, 3)) % 255).to(torch.uint8).numpy() for i in range(12)]
    seconds = encode_mp4(frames, tmp_path / "clip.mp4", fps)
    assert seconds > 0
    with av.open(str(tmp_path / "clip.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == fps
        assert len(list(container.decode(stream))) == 12


def test_video_without_the_gl_viewer_fails_early_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyglet", None)
    monkeypatch.delitem(sys.modules, "isaaclab_visualizers.newton.newton_visualizer", raising=False)
    with pytest.raises(RunnerError, match=r"video recording needs Newton's GL viewer, which cannot be loaded here "
                                          r"\(.*pyglet.*\); install pyglet"):
        require_viewer()
