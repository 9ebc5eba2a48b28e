"""A real browser test: JupyterLab on 127.0.0.1, Debian's chromium driven by playwright-core.

Opens 01_train, fills the form (seeing a validation error next to a field first), clicks Submit, and checks that
the log pane fills, the training plot is redrawn and the job reaches SUCCEEDED. The screenshot is kept under
``test-artifacts/browser/``.

Needs ``apt-get install -y chromium`` and ``npm ci --prefix tests/browser`` (playwright-core); skipped without them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or not (HERE / "node_modules" / "playwright-core").exists() or not shutil.which("node"),
    reason="needs Debian chromium, node and playwright-core (apt-get install -y chromium; npm ci --prefix tests/browser)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def lab(tmp_path: Path):
    """JupyterLab serving a copy of 01_train that only shows the form (the browser submits it)."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    notebook = parameterize_notebook(load_notebook_node(str(ROOT / "notebooks" / "01_train.ipynb")), {"auto_submit": False})
    nbformat.write(notebook, notebooks / "01_train.ipynb")
    env = dict(os.environ)
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               PYTHONPATH=str(ROOT))
    page_config = tmp_path / "config" / "labconfig" / "page_config.json"
    page_config.parent.mkdir(parents=True)
    # What `jupyter labextension disable` writes, plus no "Build Recommended" pop-up caused by other extensions.
    page_config.write_text(json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True},
                                       "buildCheck": False, "buildAvailable": False}))
    port, token = _free_port(), secrets.token_hex(16)
    log = (tmp_path / "lab.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield f"{base}/lab/tree/01_train.ipynb?token={token}"
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_submit_from_the_form_streams_log_plot_and_succeeds(lab: str) -> None:
    result = subprocess.run(["node", str(HERE / "drive_lab.mjs"), lab, str(ARTIFACTS), "300"],
                            capture_output=True, text=True, timeout=900, cwd=HERE,
                            env={**os.environ, "CHROMIUM": CHROMIUM})
    assert result.stdout.strip(), result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert "error" not in seen, f"{seen}\n{result.stderr[-3000:]}"
    assert seen["validation"] is True, "Submit must be disabled while numEnvs is 0"
    assert seen["logLines"] > 5, seen
    assert seen["plotVersions"] >= 2, f"the plot was never redrawn: {seen}"
    assert seen["state"] == "SUCCEEDED", seen
    assert Path(seen["screenshot"]).stat().st_size > 10_000
