"""workbench.results on real jobs: metrics DataFrames, training curves, comparisons, summaries, inline videos."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from evaluation_fixtures import backend, evaluated_jobs, evaluation_settings  # noqa: F401  (fixtures)
from IPython.display import Video

from tests.helpers import TRAIN_ITERATIONS
from workbench import results

LIBRARIES = ("rsl_rl", "rl_games", "skrl")


def _lines(figure) -> list:
    return [line for ax in figure.axes for line in ax.get_lines()]


@pytest.mark.slow
def test_training_curves_of_each_library(trained_job) -> None:
    for library in LIBRARIES:
        job = trained_job(library)
        metrics = results.load_metrics(job)
        assert not metrics.empty and "step" in metrics.columns
        curves = results.training_curves(job)
        assert list(curves.columns) == ["iteration", "reward", "episode_length"]
        assert curves["reward"].notna().any(), f"{library}: no reward tag among {list(metrics.columns)}"
        assert curves["iteration"].max() <= TRAIN_ITERATIONS[library], f"{library}: x is not the iteration"
        figure = results.plot_training(job)
        assert len(figure.axes) == 2 and any(len(line.get_xdata()) for line in _lines(figure))
        figure.savefig(io.BytesIO(), format="png")
        assert results.load_metrics(job.job_id).equals(metrics)  # a job id works as well as the Job


@pytest.mark.slow
def test_compare_puts_several_trainings_on_one_plot(trained_job) -> None:
    jobs = [trained_job(library) for library in LIBRARIES]
    figure = results.compare(jobs, labels=list(LIBRARIES))
    assert len(figure.axes) == 1
    assert [line.get_label() for line in _lines(figure)] == list(LIBRARIES)
    with pytest.raises(ValueError, match="3 jobs but 1 labels"):
        results.compare(jobs, labels=["one"])


@pytest.mark.slow
def test_evaluations_summarized_compared_and_shown(evaluated_jobs, evaluation_settings) -> None:
    jobs = [evaluated_jobs[library] for library in LIBRARIES]
    table = results.summarize(jobs)
    assert len(table) == 3 and (table["episodes"] == evaluation_settings["numEpisodes"]).all()
    for job in jobs:
        metrics = results.load_metrics(job)
        assert results.is_evaluation(metrics)
        assert table.loc[results.job_label(job), "mean_return"] == pytest.approx(metrics["return"].mean())
        assert results.summarize_episodes(metrics)["success_rate"] == pytest.approx(
            results.load_summary(job)["success_rate"]
        )
    bars = results.compare(jobs).axes[0].patches
    assert len(bars) == 3
    figure = results.plot_evaluation(jobs[0])
    figure.savefig(io.BytesIO(), format="png")

    assert results.follow(jobs[0], interval=0.1).state.value == "SUCCEEDED"
    assert len(results.plot(jobs[0]).axes[0].collections) == 2  # success / no success scatter

    shown = results.show_videos(jobs[0])
    assert len(shown) == evaluation_settings["videoEpisodes"]
    assert all(isinstance(video, Video) and video.embed for video in shown)
    assert "data:video/mp4;base64," in shown[0]._repr_html_()
    assert results.show_videos(jobs[0], embed_limit=0)[0].embed is False


def test_a_growing_metrics_file_is_reread(tmp_path: Path) -> None:
    """A live evaluation: each call sees the episodes written so far, also with a line half written."""
    assert results.load_metrics(tmp_path).empty
    with pytest.raises(FileNotFoundError, match="evaluation-summary.json does not exist yet"):
        results.load_summary(tmp_path)
    header = "episode,env_index,return,length,success,truncated,video\n"
    (tmp_path / "metrics.csv").write_text(header + "0,0,1.5,10,True,True,\n")
    assert len(results.load_metrics(tmp_path)) == 1
    with (tmp_path / "metrics.csv").open("a") as handle:
        handle.write("1,1,2.5,12,False,False,\n2,0,3.")
    metrics = results.load_metrics(tmp_path)
    assert metrics["return"].iloc[:2].tolist() == [1.5, 2.5]
    assert results.summarize(tmp_path)["episodes"].iloc[0] == len(metrics)
    assert results.videos(tmp_path) == []
