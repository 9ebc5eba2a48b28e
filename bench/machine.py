"""The machine, versions and date a figure was measured on."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess

PACKAGES = ("isaaclab", "torch", "warp-lang", "newton", "mujoco-warp", "rsl-rl-lib", "tensorboard", "tensorboardX")


def describe() -> dict:
    """CPU, GPU, driver, Python and package versions, and the UTC time now."""
    info = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "kernel": platform.release(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
    }
    gpu = _gpu()
    if gpu:
        info["gpu"] = gpu
    return info


def label(info: dict) -> str:
    """A one-line name for the machine, e.g. ``NVIDIA H100 80GB HBM3, driver 580.159.04, 16 cores``."""
    if "gpu" in info:
        return f"{info['gpu']['name']}, driver {info['gpu']['driver']}, {info['cpu_count']} cores"
    return f"{info['cpu']} ({info['cpu_count']} cores, shared), no GPU"


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _gpu() -> dict | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    name, driver, memory = (part.strip() for part in out[0].split(","))
    return {"name": name, "driver": driver, "memory": memory, "count": len(out)}
