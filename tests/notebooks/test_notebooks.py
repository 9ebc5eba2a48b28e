"""The notebooks: committed clean, executed top to bottom under papermill with tiny parameters, and run by nbval.

papermill runs each notebook with real (tiny) jobs on the local backend; ``pytest --nbval-lax`` then runs every
notebook once more with the submission switched off (form, tables and plots only), so the two together cover
both paths without training twice.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from workbench.backends import get_backend
from workbench.spec.paths import workbench_home
from workbench.spec.status import JobState

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["01_train", "02_evaluate", "03_sweep", "04_custom_environment", "05_aws"]
"""05_aws runs against the moto pipeline: tests/aws/test_aws_notebook.py."""


def _execute(name: str, out_dir: Path, /, **parameters: object) -> nbformat.NotebookNode:
    out = out_dir / f"{name}.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=parameters,
                               kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)
    return nbformat.read(out, as_version=4)


def _text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") + str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_clean(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell for cell in code if cell.outputs or cell.execution_count is not None] == [], \
        f"{name} was committed with outputs; clear them (Edit > Clear Outputs of All Cells) before committing"
    assert "widgets" not in notebook.metadata, f"{name} carries saved widget state"
    assert sum("parameters" in cell.metadata.get("tags", []) for cell in code) == 1, f"{name} needs one parameters cell"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, nbformat.NotebookNode]:
    out = tmp_path_factory.mktemp("papermill")
    id_file = out / "job-id"
    notebook = _execute("01_train", out, num_envs=8, max_iterations=2, job_id_file=str(id_file))
    return id_file.read_text().strip(), notebook


def test_train_notebook_trains(trained: tuple[str, nbformat.NotebookNode]) -> None:
    job_id, notebook = trained
    status = get_backend("local").job(job_id).status()
    assert status.state is JobState.SUCCEEDED, status
    assert f"job {job_id}: SUCCEEDED" in _text(notebook)
    assert "model_" in _text(notebook), "the notebook lists the job's checkpoints"


def test_evaluate_notebook_evaluates_a_trained_job(trained: tuple[str, nbformat.NotebookNode], tmp_path: Path) -> None:
    job_id, _ = trained
    notebook = _execute("02_evaluate", tmp_path, policy=job_id, num_envs=4, num_episodes=2, steps_per_episode=50)
    text = _text(notebook)
    assert ": SUCCEEDED" in text, text[-2000:]
    assert "mean_return" in text, "the evaluation summary is shown"
    assert "clips: ['episode_" in text, "the evaluation recorded clips"
    last = notebook.cells[-1].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in last), "the clip player is shown"


def test_sweep_notebook_runs_trials_as_notebooks(tmp_path: Path) -> None:
    notebook = _execute("03_sweep", tmp_path, name="notebook-sweep", max_trials=1, learning_rates=[1e-3],
                        run_as="notebook")
    assert "COMPLETE" in _text(notebook)
    report = workbench_home() / "sweeps" / "notebook-sweep" / "reports" / "trial_0000.ipynb"
    executed = nbformat.read(report, as_version=4)
    assert any("injected-parameters" in cell.metadata.get("tags", []) for cell in executed.cells)
    assert "SUCCEEDED" in _text(executed), "the trial's executed notebook is kept as its report"


def test_custom_environment_notebook_trains_the_example_package(tmp_path: Path) -> None:
    notebook = _execute("04_custom_environment", tmp_path, num_envs=8, max_iterations=2)
    text = _text(notebook)
    assert "Workbench-Cartpole-Variant-Direct -> ('rl_games', 'rsl_rl', 'skrl')" in text or "rsl_rl" in text
    assert ": SUCCEEDED" in text, text[-2000:]


def test_notebooks_pass_nbval_lax(tmp_path: Path) -> None:
    """Every notebook runs top to bottom under ``pytest --nbval-lax`` (no job submitted)."""
    no_jobs = {
        "01_train": {"auto_submit": False},
        "02_evaluate": {"auto_submit": False},
        "03_sweep": {"max_trials": 0, "name": "nbval-empty"},
        "04_custom_environment": {"auto_submit": False, "scan_package": False},
    }
    for name, parameters in no_jobs.items():
        notebook = parameterize_notebook(load_notebook_node(str(NOTEBOOKS / f"{name}.ipynb")), parameters)
        nbformat.write(notebook, tmp_path / f"{name}.ipynb")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-kernel-name", "python3", "-p", "no:cacheprovider",
         "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "-q", *(f"{n}.ipynb" for n in no_jobs)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
