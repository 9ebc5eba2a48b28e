"""The CDK app: ``python infra/app.py`` (or ``cdk synth`` from ``infra/``) synthesizes the workbench stack.

Reads ``infra/config.json`` or the file named by ``$WORKBENCH_INFRA_CONFIG``; writes into ``$CDK_OUTDIR``
(default ``infra/cdk.out``). See ``workbench_infra.synth`` for ``synth_template(config)``.
"""

import sys
from pathlib import Path

INFRA_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(INFRA_DIR), str(INFRA_DIR.parent)]  # workbench_infra, and workbench.spec.document for the Lambda code

from workbench_infra.config import ConfigError, load_config  # stdlib only: a bad config fails before the CDK loads

if __name__ == "__main__":
    try:
        config = load_config()
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    from workbench_infra.synth import main

    main(config)
