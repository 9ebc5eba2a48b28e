"""Where the workbench keeps things on this machine: ``$WORKBENCH_HOME`` (default ``~/.workbench``)."""

from __future__ import annotations

import os
from pathlib import Path


def workbench_home() -> Path:
    """The workbench home: run directories, the offline asset root and the kernel cache live here."""
    return Path(os.environ.get("WORKBENCH_HOME", "~/.workbench")).expanduser().resolve()


def runs_dir() -> Path:
    return workbench_home() / "runs"


def run_dir(job_id: str) -> Path:
    """``$WORKBENCH_HOME/runs/<job-id>/``: spec, status, log and outputs of one local job."""
    return runs_dir() / job_id


def assets_dir() -> Path:
    return workbench_home() / "assets"


def warp_cache_dir() -> Path:
    """Warp's kernel cache, kept across jobs so the second start skips kernel compilation."""
    return workbench_home() / "cache" / "warp"


def cuda_cache_dir() -> Path:
    """The CUDA driver's compute cache (``CUDA_CACHE_PATH``): Warp ships PTX that the driver would otherwise
    recompile in every new process (see docs/benchmarks.md)."""
    return workbench_home() / "cache" / "cuda"


def matplotlib_config_dir() -> Path:
    """Matplotlib's config and font cache (``MPLCONFIGDIR``): built once per home instead of in every job's own
    ``~/.cache``, which a Batch container would write outside the job's directories and lose at its end."""
    return workbench_home() / "cache" / "matplotlib"


def xdg_cache_dir() -> Path:
    """``XDG_CACHE_HOME`` of a job's processes: what libraries cache in ``~/.cache`` (onnxruntime's device id) stays
    under the home, where a Batch container may write, instead of the image's home directory."""
    return workbench_home() / "cache" / "xdg"
