"""The sweep's commands: ``workbench sweep SWEEP.json`` runs the sweep a file describes, with a live table of
its trials, and continues it when run again; ``python -m workbench.sweep NAME [--root DIR]`` continues a saved
sweep by name."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.live import Live
from rich.table import Table

from workbench.errors import SweepError, WorkbenchError
from workbench.sweep.study import Sweep

SHOWN_COLUMNS = ("trial", "state", "value", "job_state", "duration_s", "reason")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep saved under NAME to the end of its budget; 1 with the reason when it cannot."""
    parser = argparse.ArgumentParser(prog="python -m workbench.sweep", description="Run or continue a saved sweep.")
    parser.add_argument("name")
    parser.add_argument("--root", type=Path, help="the sweep directory (default $WORKBENCH_HOME/sweeps/NAME)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        frame = Sweep.open(args.name, root=args.root).run()
    except WorkbenchError as exc:
        print(f"sweep {args.name}: {exc}", file=sys.stderr)
        return 1
    print(frame.to_string(index=False))
    return 0


def sweep_from_file(path: Path, root: Path | None = None) -> Sweep:
    """The sweep ``path`` describes; where a sweep of that name was started already, that one, to continue (the
    file must describe the same experiment, :meth:`Sweep.check_continues`; its budget may have grown)."""
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise SweepError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SweepError(f"{path} is not JSON: {exc}") from None
    sweep = Sweep.from_document(document, root=root)
    saved = sweep.dir / "sweep.json"
    if saved.is_file():
        sweep.check_continues(json.loads(saved.read_text()))
    return sweep


def run_live(sweep: Sweep, console: Console | None = None) -> pd.DataFrame:
    """Run ``sweep`` to the end of its budget with a table of its trials redrawn after every poll."""
    console = console or Console()
    with Live(trial_table(sweep, sweep.results()), console=console, refresh_per_second=2) as live:
        frame = sweep.run(watch=lambda results: live.update(trial_table(sweep, results)))
        live.update(trial_table(sweep, frame))
    try:
        best = sweep.best()
    except SweepError:  # no trial completed
        return frame
    console.print(f"\nbest: trial {best['trial']}, {sweep.objective} {_figure(best['value'])}, job {best['job_id']}")
    return frame


def trial_table(sweep: Sweep, frame: pd.DataFrame) -> Table:
    """The trials as a rich table: number, state, objective value, parameters, job state, duration."""
    params = [column for column in frame.columns if column.startswith("param ")]
    table = Table(title=f"sweep {sweep.name}: {len(frame)} trial(s), {sweep.objective} ({sweep.direction})")
    for column in (*SHOWN_COLUMNS[:3], *params, *SHOWN_COLUMNS[3:]):
        table.add_column(column.removeprefix("param ").replace("duration_s", "duration"))
    for row in frame.to_dict("records"):
        row["duration_s"] = None if _missing(row["duration_s"]) else f"{row['duration_s']:.0f} s"
        table.add_row(*(_figure(row[column]) for column in (*SHOWN_COLUMNS[:3], *params, *SHOWN_COLUMNS[3:])))
    return table


def _figure(value: Any) -> str:
    """A cell: floats with four significant digits, nothing for a missing value."""
    if _missing(value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
