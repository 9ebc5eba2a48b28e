"""The Lambda handlers' sources (``infra/lambdas/<name>/handler.py``), importable here without the CDK."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"


def load_lambda_module(name: str) -> ModuleType:
    """Import ``infra/lambdas/<name>/handler.py`` as ``workbench_lambda_<name>`` (for its constants and tests)."""
    module_name = f"workbench_lambda_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, LAMBDAS_DIR / name / "handler.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
