"""``notebooks/05_aws.ipynb`` headless under papermill against the moto pipeline: connect to the stack's outputs,
the estimate, a training followed to its end, its exported policy and curves, an evaluation whose clip is played
from S3, the job table; and without a stack it stops at the connect cell saying what to do."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest
from pipeline import STACK

from workbench.backends.aws import AwsBackend

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "05_aws.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


def _execute(out: Path, **parameters: object) -> nbformat.NotebookNode:
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(NOTEBOOK.parent), progress_bar=False)
    return nbformat.read(out, as_version=4)


def _text(cell: nbformat.NotebookNode) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", []))


def _cell(notebook: nbformat.NotebookNode, starts: str) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.startswith(starts))


@pytest.mark.slow
def test_the_notebook_trains_evaluates_and_plays_the_clip_from_s3(backend: AwsBackend, tmp_path: Path) -> None:
    notebook = _execute(tmp_path / "05_aws.ipynb", stack_name=STACK, num_envs=16, max_iterations=3, device="auto",
                        evaluation_episodes=2, auto_submit=True, timeout_s=600)
    assert f"connected to the pipeline of stack {STACK}" in _text(_cell(notebook, "from workbench.widgets.connect"))
    estimate = _text(_cell(notebook, "from workbench.results.estimate"))
    assert "expected time:" in estimate and "On-demand $" in estimate and "spot about $" in estimate, estimate
    training = _text(_cell(notebook, "from workbench.widgets import JobPanel"))
    assert ": SUCCEEDED" in training, training[-2000:]
    outputs = _text(_cell(notebook, "if job is not None:"))
    assert "exported policy: ['policy.json', 'policy.onnx', 'policy.pt']" in outputs, outputs
    evaluation_cell = _cell(notebook, "from workbench.spec import parse_spec")
    assert "evaluation " in _text(evaluation_cell) and ": SUCCEEDED" in _text(evaluation_cell), _text(evaluation_cell)
    assert any(WIDGET in o.get("data", {}) for o in evaluation_cell.outputs), "the clip player is shown"
    assert any(WIDGET in o.get("data", {}) for o in _cell(notebook, "from workbench.widgets import JobTable").outputs)


def test_without_a_stack_the_notebook_stops_at_connect_saying_what_to_do(backend: AwsBackend, tmp_path: Path) -> None:
    out = tmp_path / "05_aws.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        _execute(out, stack_name="NoSuchWorkbenchStack")
    assert raised.value.ename == "NotebookStop" and "deploy the stack" in raised.value.evalue
    executed = nbformat.read(out, as_version=4)
    error = next(o for o in _cell(executed, "from workbench.widgets.connect").outputs if o.output_type == "error")
    assert "Traceback" not in "\n".join(error.traceback) and "NoSuchWorkbenchStack" in "\n".join(error.traceback)
    assert all(not cell.get("outputs") for cell in executed.cells[executed.cells.index(
        _cell(executed, "from workbench.widgets.connect")) + 1:]), "nothing after the connect cell runs"
