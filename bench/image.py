"""The kit-less job image: build time cold (empty BuildKit cache) and cached (a change of the workbench's code
only), and the image's size; on the local Ubuntu 24.04 stand-in base, as the test suite builds it.

``python -m bench image`` (root, Debian's docker.io): the cold build prunes the engine's build cache first, so it
reinstalls every package from the wheelhouse (downloading the wheelhouse itself is not counted: it is a one-off
per version of ``pyproject.toml``). The NGC image it replaces is ~10 GB compressed before the workbench is added.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.docker_engine import JOB_IMAGE, REPO, build_image, ensure_base_image, served, start_engine, wheelhouse
from tests.helpers import cache_root

CONTEXT = ("pyproject.toml", "container", "workbench")


def bench_image(work: Path) -> dict:
    engine = start_engine()
    try:
        base = ensure_base_image(engine, work)
        with served(wheelhouse(cache_root())) as find_links:
            engine.docker("builder", "prune", "--all", "--force", timeout=600)
            cold = build_image(engine, JOB_IMAGE, base, find_links=find_links)
            changed = _context_with_a_code_change(work / "context")
            cached = build_image(engine, JOB_IMAGE, base, find_links=find_links, context=changed)
        return {
            "cold_build_s": round(cold.seconds, 1),
            "cached_build_s": round(cached.seconds, 1),
            "image_size_bytes": cached.size_bytes,
            "image_size_gb": round(cached.size_bytes / 1e9, 2),
        }
    finally:
        engine.stop()


def _context_with_a_code_change(target: Path) -> Path:
    """The image's build context with one line added to the workbench's code (what a commit usually changes)."""
    shutil.rmtree(target, ignore_errors=True)
    for name in CONTEXT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    init = target / "workbench" / "__init__.py"
    init.write_text(init.read_text() + "# a code change\n")
    return target
