"""Build and synthesize the app.

- ``build_app(config, outdir)`` returns ``(app, stack)`` with the cdk-nag checks and the checkov acknowledgments
  applied.
- ``synth_template(config)`` returns the CloudFormation template as a dict (for tests and the moto harness):
  ``config`` is a whole ``config.json`` document (a dict) or a :class:`PipelineConfig`. The state machine's
  definition is the ``DefinitionString`` of the ``AWS::StepFunctions::StateMachine`` resource (an
  ``Fn::Join`` of strings and references); ``definition_with(template, refs)`` renders it with values for the
  references (e.g. moto's ARNs), and ``state_machine_definition(template)`` with placeholders.
- ``python infra/app.py`` synthesizes into ``$CDK_OUTDIR`` (default ``infra/cdk.out``) from ``infra/config.json``
  or ``$WORKBENCH_INFRA_CONFIG``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from workbench_infra.checkov import apply_checkov
from workbench_infra.config import INFRA_DIR, PipelineConfig, parse_config
from workbench_infra.nag import apply_nag
from workbench_infra.stack import WorkbenchStack

DEFAULT_OUTDIR = INFRA_DIR / "cdk.out"


def build_app(config: PipelineConfig, outdir: str | os.PathLike[str] | None = None) -> tuple[cdk.App, WorkbenchStack]:
    """The CDK app with the workbench stack (env-agnostic: account and region come from the deploy target)."""
    app = cdk.App(outdir=str(outdir) if outdir else None)
    stack = WorkbenchStack(app, config.stack_name, config)
    apply_nag(app, stack)
    apply_checkov(stack)
    return app, stack


def synth(config: PipelineConfig, outdir: str | os.PathLike[str] | None = None) -> tuple[WorkbenchStack, dict[str, Any]]:
    """Synthesize; returns the stack and its template."""
    app, stack = build_app(config, outdir)
    assembly = app.synth()
    return stack, assembly.get_stack_by_name(stack.stack_name).template


def synth_template(config: dict[str, Any] | PipelineConfig) -> dict[str, Any]:
    """The CloudFormation template for a config document (synthesized into a temporary directory)."""
    if not isinstance(config, PipelineConfig):
        config = parse_config(config)
    with tempfile.TemporaryDirectory(prefix="workbench-cdk-") as outdir:
        return synth(config, outdir)[1]


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template.get("Resources", {}).items() if v["Type"] == resource_type}


def definition_with(template: dict[str, Any], refs: dict[str, str] | None = None) -> dict[str, Any]:
    """The state machine's ASL as a dict; ``Ref``/``Fn::GetAtt`` parts become ``refs[logical id]`` or a placeholder."""
    (machine,) = resources_of_type(template, "AWS::StepFunctions::StateMachine").values()
    refs = refs or {}
    return json.loads(_render(machine["Properties"]["DefinitionString"], refs))


def state_machine_definition(template: dict[str, Any]) -> dict[str, Any]:
    return definition_with(template)


def _render(value: Any, refs: dict[str, str]) -> str:
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(part, refs) for part in parts)
    if "Ref" in value:
        return refs.get(value["Ref"], f"<{value['Ref']}>")
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return refs.get(logical_id, f"<{logical_id}.{attribute}>")
    raise ValueError(f"cannot render {value!r} in the state machine definition")


def main(config: PipelineConfig) -> None:
    """``python infra/app.py``: synthesize into ``$CDK_OUTDIR`` (the CDK CLI sets it) or ``infra/cdk.out``."""
    outdir = os.environ.get("CDK_OUTDIR") or DEFAULT_OUTDIR
    app, _ = build_app(config, outdir)
    app.synth()
    print(f"synthesized into {Path(outdir)}")
