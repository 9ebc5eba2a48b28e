"""Paths and infra configurations shared by the infra tests (a module of its own: test modules import it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))

IMPORT_FUNCTION = "vamsImportGlobalPipelineWorkflow"
REGION = "us-west-2"
BUCKET = "workbench-bucket"
"""The pipeline bucket of the Lambda tests, created in moto's in-process S3 (the ``s3`` fixture)."""
ENABLED: dict[str, Any] = {
    "stackName": "WorkbenchTest",
    "app": {
        "pipelines": {
            "useIsaacLabTraining": {
                "enabled": True,
                "acceptNvidiaEula": True,
                "vamsImportFunctionName": IMPORT_FUNCTION,
            }
        }
    },
}
VARIANT: dict[str, Any] = {
    "stackName": "WorkbenchVariant",
    "app": {
        "pipelines": {
            "useIsaacLabTraining": {
                "enabled": True,
                "acceptNvidiaEula": True,
                "autoRegisterWithVAMS": False,
                "keepWarmInstance": True,
                "imageFlavour": "ngc",
                "existingBucketName": "my-existing-bucket",
                "instanceTypes": ["g6e.2xlarge", "g6e.12xlarge", "g6e.48xlarge"],
                "existingVpc": {
                    "vpcId": "vpc-0123456789abcdef0",
                    "availabilityZones": ["us-west-2a", "us-west-2b"],
                    "privateSubnetIds": ["subnet-0000000000000000a", "subnet-0000000000000000b"],
                    "isolatedSubnetIds": ["subnet-0000000000000000c", "subnet-0000000000000000d"],
                },
            }
        }
    },
}
DISABLED: dict[str, Any] = {"stackName": "WorkbenchDisabled", "app": {"pipelines": {"useIsaacLabTraining": {}}}}
