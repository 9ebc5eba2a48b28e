"""Build the example custom task package into the three formats the workbench accepts, offline.

    python examples/custom_env/build.py OUTDIR [--source DIR]

writes ``<name>-<version>.tar.gz`` (sdist), ``<name>-<version>.zip`` (the source tree) and
``<name>-<version>-py3-none-any.whl`` to OUTDIR and prints their paths. ``--source`` builds another package
directory the same way (anything with a setuptools ``pyproject.toml``). Nothing is downloaded: setuptools from the
current environment builds the wheel and sdist, and the source tree is copied first, so no build files are left
next to the sources.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent / "package"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def build_packages(out_dir: Path, source: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Build the sdist, source zip and wheel of ``source`` into ``out_dir``; returns them by format."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="custom-env-build-") as scratch:
        tree = Path(scratch) / source.name
        shutil.copytree(source, tree, ignore=IGNORED)
        wheel = _run_hook(tree, "build_wheel", out_dir)
        sdist = _run_hook(tree, "build_sdist", out_dir)
        zip_path = out_dir / f"{sdist.name.removesuffix('.tar.gz')}.zip"
        _zip_tree(tree, zip_path, top=sdist.name.removesuffix(".tar.gz"))
    return {"tar.gz": sdist, "zip": zip_path, "whl": wheel}


def _run_hook(tree: Path, hook: str, out_dir: Path) -> Path:
    """Call the setuptools PEP 517 hook in a subprocess (no build isolation, so nothing is downloaded)."""
    code = f"import sys; from setuptools import build_meta; print(build_meta.{hook}(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", code, str(out_dir.resolve())], cwd=tree, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{hook} failed for {tree.name}:\n{result.stderr.strip()}")
    return out_dir / result.stdout.strip().splitlines()[-1]


def _zip_tree(tree: Path, zip_path: Path, top: str) -> None:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(tree.rglob("*")):
            relative = path.relative_to(tree)
            if path.is_file() and not any(part.endswith(".egg-info") or part == "build" for part in relative.parts):
                zf.write(path, f"{top}/{relative.as_posix()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--source", type=Path, default=PACKAGE_DIR, help="package directory (default: the example)")
    args = parser.parse_args(argv)
    for path in build_packages(args.out_dir, args.source.resolve()).values():
        print(path)


if __name__ == "__main__":
    main()
