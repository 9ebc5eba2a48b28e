"""``python -m workbench.sweep``: the sweep CLI (:func:`workbench.sweep.cli.main`)."""

from workbench.sweep.cli import main

raise SystemExit(main())
