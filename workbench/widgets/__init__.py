"""ipywidgets front end of the workbench, one module per widget:

- :mod:`~workbench.widgets.form`: :class:`SubmitForm` builds a job spec from widgets, validates it with
  :func:`workbench.spec.parse_spec` on every change and shows each problem next to its field; Submit hands the
  spec to the chosen backend.
- :mod:`~workbench.widgets.panel`: :class:`JobPanel` follows one job: state, progress bar, the streamed log, and
  reward / episode-length curves against the training iteration, redrawn while the job trains.
- :mod:`~workbench.widgets.table`: :class:`JobTable` lists past jobs (task, mode, state, duration, final reward)
  with open / compare / cancel, for any backend.
- :mod:`~workbench.widgets.video`: :func:`video_player` plays an evaluation job's clips inline.
"""

from workbench.results.plots import figure_png
from workbench.widgets.form import SubmitForm, parse_overrides, save_upload, task_catalogue
from workbench.widgets.panel import JobPanel
from workbench.widgets.table import JobTable, job_summary, jobs_frame, policy_choices
from workbench.widgets.video import video_player

__all__ = [
    "JobPanel", "JobTable", "SubmitForm", "figure_png", "job_summary", "jobs_frame", "parse_overrides",
    "policy_choices", "save_upload", "task_catalogue", "video_player",
]
