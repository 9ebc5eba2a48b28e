"""The job panel: curves against the training iteration, the job's own library for its log, the video player."""

from __future__ import annotations

import numpy as np

from workbench.widgets import JobPanel, video_player

RL_GAMES = {"task": "Isaac-Cartpole-Direct", "rlLibrary": "rl_games", "numEnvs": 16, "maxIterations": 3}
FRAMES_METRICS = ("step,iteration,wall_time,reward,episode_length\n"
                  "0,0,1.0,0.5,10\n16384,1,2.0,1.5,20\n32768,2,3.0,2.5,30\n")
"""An rl_games training's metrics: ``step`` counts frames (16 envs x 1024), ``iteration`` the iterations."""


def test_panel_plots_the_curves_against_the_iteration_not_the_step(made_job) -> None:
    panel = JobPanel(made_job(RL_GAMES, files={"metrics.csv": FRAMES_METRICS}))
    panel.refresh()
    curves = panel.curves()
    assert curves["iteration"].tolist() == [0, 1, 2] and curves["reward"].tolist() == [0.5, 1.5, 2.5]
    reward, length = panel.figure().axes
    assert reward.get_xlabel() == "iteration"
    assert np.array_equal(reward.lines[0].get_xdata(), [0, 1, 2])
    assert np.array_equal(length.lines[0].get_ydata(), [10, 20, 30])
    assert bytes(panel.plot.value).startswith(b"\x89PNG") and panel.redraws == 1


def test_panel_parses_the_log_with_the_library_of_the_jobs_spec(made_job) -> None:
    job = made_job({**RL_GAMES, "rlLibrary": "skrl"})
    assert JobPanel(job).iterations.parser.library.name == "skrl"
    assert JobPanel(job, library="rl_games").iterations.parser.library.name == "rl_games"
    job.run_dir.joinpath("spec.json").write_text("not a spec")
    assert JobPanel(job).iterations.parser.library.name == "rsl_rl", "an unreadable spec: the spec's default"


def test_video_player_offers_every_clip_of_a_job(made_job) -> None:
    job = made_job(RL_GAMES, files={"videos/episode-0.mp4": "a", "videos/episode-1.mp4": "b"})
    picker, video = video_player(job).children
    assert [name for name, _ in picker.options] == ["episode-0.mp4", "episode-1.mp4"] and video.value == b"a"
    assert "no videos" in video_player(made_job(RL_GAMES)).value
