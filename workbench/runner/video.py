"""Evaluation clips: frames grabbed from Isaac Lab's headless Newton GL viewer, encoded H.264 yuv420p with PyAV.

Newton's OpenGL viewer renders off-screen through EGL, also on a machine without a GPU (Mesa's software
driver). The viewer is configured at the clip size, shows environment 0 only, and renders on demand: a frame
costs nothing unless it is grabbed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

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


def encode_mp4(frames: list[np.ndarray], path: Path, fps: int) -> float:
    """Write RGB frames as an H.264 (yuv420p, browser-playable) MP4; returns the seconds it took."""
    import av

    if not frames:
        raise ValueError("no frames to encode")
    start = time.perf_counter()
    height, width = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[..., :3]), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return time.perf_counter() - start


class ClipRecorder:
    """Grabs frames of environment 0 from the env's Newton GL viewer, one clip per episode."""

    def __init__(self, env: Any, width: int, height: int) -> None:
        self.sim = env.sim
        viewers = [v for v in self.sim.visualizers if hasattr(v, "render_rgb_array")]
        if not viewers:
            raise RuntimeError("no frame-capable visualizer is active; the Newton GL viewer did not start")
        self.viewer = viewers[0]
        self.size = (width, height)
        self.fps, self.stride = clip_timing(env.step_dt)
        self.frames: list[np.ndarray] = []
        self.capture_seconds = 0.0
        self._aim_at_env_zero(env)

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
        frame = np.asarray(self.viewer.render_rgb_array())
        if frame.shape[1::-1] != self.size:
            from PIL import Image

            frame = np.asarray(Image.fromarray(frame[..., :3]).resize(self.size))
        self.frames.append(frame[..., :3])
        self.capture_seconds += time.perf_counter() - start

    def write(self, path: Path) -> float:
        """Encode the frames grabbed so far to ``path`` and start a new clip; returns the encode seconds."""
        try:
            return encode_mp4(self.frames, path, self.fps)
        finally:
            self.frames = []

    def discard(self) -> None:
        self.frames = []
