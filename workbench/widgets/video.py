"""The inline player of an evaluation's clips."""

from __future__ import annotations

from html import escape
from pathlib import Path

import ipywidgets as w

from workbench.results import videos
from workbench.results.metrics import JobLike, job_dir


def video_player(source: JobLike, width: int = 640) -> w.Widget:
    """Inline player for a job's clips (``videos/*.mp4``; for a plain directory, its own ``*.mp4``), with a picker
    when there are several."""
    directory = job_dir(source)
    clips = videos(source) or sorted(directory.glob("*.mp4"))
    if not clips:
        return w.HTML(f"<i>no videos under {escape(str(directory))}</i>")
    video = w.Video(value=clips[0].read_bytes(), format="mp4", width=width, autoplay=False, loop=False, controls=True)
    picker = w.Dropdown(options=[(clip.name, str(clip)) for clip in clips], value=str(clips[0]), description="clip")
    picker.observe(lambda change: setattr(video, "value", Path(change["new"]).read_bytes()), names="value")
    return w.VBox([picker, video]) if len(clips) > 1 else video
