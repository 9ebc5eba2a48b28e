"""``cdk synth`` through the CDK CLI works offline (no credentials, no network), from infra/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from infra_configs import INFRA

CDK = INFRA / "node_modules" / ".bin" / "cdk"


def test_cdk_synth_through_the_cli_offline(tmp_path):
    """With the committed config.json (the pipeline's synthesis itself is tested in-process, once per session)."""
    if not CDK.exists():
        pytest.skip("the CDK CLI is not installed: run 'npm ci --prefix infra' (pinned in infra/package.json)")
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CDK_"))
    } | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DISABLE_VERSION_CHECK": "true",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [str(CDK), "synth", "--quiet", "--no-notices", "--output", str(tmp_path / "cdk.out")],
        cwd=INFRA,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    template = json.loads((tmp_path / "cdk.out" / "IsaacLabWorkbench.template.json").read_text())
    assert {r["Type"] for r in template.get("Resources", {}).values()} <= {"AWS::CDK::Metadata"}
    assert json.loads((INFRA / "cdk.context.json").read_text()) == {}
