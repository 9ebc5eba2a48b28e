"""Evaluation clips: frames grabbed from Isaac Lab's headless Newton GL viewer, encoded H.264 yuv420p with PyAV.

Newton's OpenGL viewer renders off-screen through EGL, also on a machine without a GPU (Mesa's software
driver). The viewer is configured at the clip size, shows environment 0 only, and renders on demand: a frame
costs nothing unless it is grabbed.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import RunnerError

MAX_FPS = 30
"""Clips play in real time at no more than this frame rate (faster control rates skip steps)."""


def clip_timing(step_dt: float) -> tuple[int, int]:
    """``(fps, stride)``: one frame every ``stride`` env steps plays back in real time at ``fps``."""
    control_rate = 1.0 / step_dt if step_dt > 0 else MAX_FPS
    stride = max(1, round(control_rate / MAX_FPS))
    return max(1, round(control_rate / stride)), stride


def frames_for_length(length: int, stride: int) -> int:
    """Frames in the clip of an episode of ``length`` steps (one at its start, then every ``stride`` steps)."""
    return (length + stride - 1) // stride


def require_viewer() -> None:
    """Fail before any simulation, with the reason, where Newton's GL viewer cannot be loaded (it needs pyglet
    and the EGL/OpenGL libraries); Isaac Lab would only say that it could not resolve the visualizer class."""
    try:
        importlib.import_module("isaaclab_visualizers.newton.newton_visualizer")
    except (ImportError, OSError) as exc:
        raise RunnerError(
            f"video recording needs Newton's GL viewer, which cannot be loaded here ({exc}); install pyglet and "
            "the EGL/OpenGL libraries (Debian: libegl1 libgl1 libopengl0), or evaluate without a video"
        ) from exc


def viewer_cfg(width: int, height: int) -> Any:
    """A headless Newton GL viewer of ``width`` x ``height`` that shows environment 0."""
    from isaaclab_visualizers.newton import NewtonGLVisualizerCfg

    return NewtonGLVisualizerCfg(
        headless=True,
        window_width=width,
        window_height=height,
        visible_env_indices=[0],
        focal_length=20.0,
        streaming_view=False,
        enable_live_plots=False,
        enable_markers=False,
    )


class Mp4Writer:
    """Encodes RGB frames to an H.264 (yuv420p, browser-playable) MP4 as they come, so a clip is never held in
    memory; ``seconds`` is the time spent encoding."""

    def __init__(self, path: Path, width: int, height: int, fps: int) -> None:
        import av

        self.path = path
        self.frames = 0
        self.seconds = 0.0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(path), mode="w", options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.options = {"crf": "23", "preset": "veryfast"}

    def write(self, frame: np.ndarray) -> None:
        import av

        start = time.perf_counter()
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[..., :3]), format="rgb24")
        self._container.mux(self._stream.encode(image))
        self.frames += 1
        self.seconds += time.perf_counter() - start

    def close(self) -> None:
        start = time.perf_counter()
        self._container.mux(self._stream.encode())
        self._container.close()
        self.seconds += time.perf_counter() - start


def encode_mp4(frames: list[np.ndarray], path: Path, fps: int) -> float:
    """Write RGB frames as an H.264 yuv420p MP4; returns the seconds it took."""
    if not frames:
        raise ValueError("no frames to encode")
    height, width = frames[0].shape[:2]
    writer = Mp4Writer(path, width, height, fps)
    for frame in frames:
        writer.write(frame)
    writer.close()
    return writer.seconds


class ClipRecorder:
    """Grabs frames of environment 0 from the env's Newton GL viewer into one clip per episode.

    Frames are encoded as they are grabbed into ``<directory>/.clip.mp4``; :meth:`write` names the finished clip.
    """

    def __init__(self, env: Any, width: int, height: int, directory: Path) -> None:
        self.sim = env.sim
        viewers = [v for v in self.sim.visualizers if hasattr(v, "render_rgb_array")]
        if not viewers:
            raise RuntimeError("no frame-capable visualizer is active; the Newton GL viewer did not start")
        self.viewer = viewers[0]
        self.size = (width, height)
        self.directory = directory
        self.fps, self.stride = clip_timing(env.step_dt)
        self.capture_seconds = 0.0
        self.encode_seconds = 0.0
        self._writer: Mp4Writer | None = None
        self._aim_at_env_zero(env)

    @property
    def frames(self) -> int:
        """Frames in the clip being recorded."""
        return self._writer.frames if self._writer is not None else 0

    def _aim_at_env_zero(self, env: Any) -> None:
        """Look at environment 0's robot (else its origin) from the direction and distance the task's visualizer
        settings give."""
        eye, lookat = self.viewer.cfg.eye, self.viewer.cfg.lookat
        target = [o + t for o, t in zip(env.scene.env_origins[0].detach().cpu().tolist(), lookat)]
        articulations = list(getattr(env.scene, "articulations", {}).values())
        if articulations:
            root = getattr(articulations[0].data.root_pos_w, "torch", articulations[0].data.root_pos_w)
            target = [float(v) for v in root[0].detach().cpu().tolist()]
        self.viewer.set_camera_view(tuple(t + e - a for t, e, a in zip(target, eye, lookat)), tuple(target))

    def grab(self) -> None:
        start = time.perf_counter()
        if not self.sim.is_rendering:
            self.sim.forward()
        frame = np.asarray(self.viewer.render_rgb_array())[..., :3]
        if frame.shape[1::-1] != self.size:
            from PIL import Image

            frame = np.asarray(Image.fromarray(frame).resize(self.size))
        self.capture_seconds += time.perf_counter() - start
        if self._writer is None:
            self._writer = Mp4Writer(self.directory / ".clip.mp4", *self.size, self.fps)
        self._writer.write(frame)

    def write(self, name: str) -> Path:
        """Finish the clip being recorded as ``<directory>/<name>``."""
        writer = self._finish()
        if writer is None:
            raise RuntimeError("no frames were grabbed for this clip")
        return writer.path.rename(self.directory / name)

    def discard(self) -> None:
        writer = self._finish()
        if writer is not None:
            writer.path.unlink(missing_ok=True)

    def _finish(self) -> Mp4Writer | None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            self.encode_seconds += writer.seconds
        return writer
