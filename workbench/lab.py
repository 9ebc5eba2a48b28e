"""Start JupyterLab on ``notebooks/`` with the project's kernel registered (``python -m workbench.lab``).

The kernel ``workbench`` is installed into this environment (``ipykernel install --sys-prefix``), so the
notebooks run with the interpreter that has the workbench and Isaac Lab. Extra arguments go to JupyterLab,
e.g. ``python -m workbench.lab --port 8899 --no-browser``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL_NAME = "workbench"
ANNOUNCEMENTS = "@jupyterlab/apputils-extension:announcements"


def register_kernel() -> None:
    """Install the ``workbench`` kernelspec for this interpreter into ``sys.prefix``."""
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
         "--display-name", "Isaac Lab Workbench"],
        check=True,
    )


def lab_command(args: Sequence[str] = ()) -> list[str]:
    """The JupyterLab command line: ``notebooks/`` as the root, no news or update checks."""
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={NOTEBOOKS_DIR}", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *args]


def disable_announcements() -> None:
    """Turn off the news pop-up for this environment only (``--level=sys_prefix``)."""
    subprocess.run([sys.executable, "-m", "jupyter", "labextension", "disable", "--level=sys_prefix",
                    ANNOUNCEMENTS], check=False, capture_output=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    register_kernel()
    disable_announcements()
    return subprocess.call(lab_command(args))


if __name__ == "__main__":
    raise SystemExit(main())
