"""``python -m workbench.sweep NAME [--root DIR]``: run or continue a saved sweep and print its results."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.sweep.study import Sweep


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
