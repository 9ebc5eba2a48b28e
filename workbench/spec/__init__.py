"""The job spec and everything it needs: the document's rules, job states, the task catalogue, settings and paths.

Stdlib only: the AWS Lambda bundles this package as it is, and a notebook, the CLI and the container share it.
"""

from workbench.spec.document import (
    COMPUTE_DEFAULTS,
    DEVICES,
    EVALUATE_DEFAULTS,
    MODES,
    RL_LIBRARIES,
    TRAIN_DEFAULTS,
    FieldError,
    JobSpec,
    SpecError,
    is_job_id,
    parse_spec,
    resolve_task_id,
)

__all__ = [
    "COMPUTE_DEFAULTS", "DEVICES", "EVALUATE_DEFAULTS", "MODES", "RL_LIBRARIES", "TRAIN_DEFAULTS", "FieldError",
    "JobSpec", "SpecError", "is_job_id", "parse_spec", "resolve_task_id",
]
