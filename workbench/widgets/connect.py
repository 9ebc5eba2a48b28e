"""The first cell of the cloud notebook: connect to the deployed pipeline, or stop the notebook there with what
to do (no traceback) when there is no stack to reach."""

from __future__ import annotations

from workbench.backends.aws import AwsBackend
from workbench.errors import BackendConfigError


class NotebookStop(Exception):
    """Stops a notebook at the cell that raised it, showing only its message: IPython renders an exception's
    ``_render_traceback_`` instead of the traceback, and papermill reports the message as the cell's error."""

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


def connect_aws(stack_name: str | None = None, config_file: str | None = None) -> AwsBackend:
    """The aws backend on the stack's outputs (``stack_name``, default ``$WORKBENCH_AWS_STACK`` or the
    workbench's stack) or on a file of them (``config_file``); raises :class:`NotebookStop` saying what to do
    when the stack or the credentials are missing."""
    backend = AwsBackend(stack_name=stack_name, config_file=config_file)
    try:
        config = backend.config
    except BackendConfigError as exc:
        raise NotebookStop(
            f"Not connected to the pipeline: {exc}.\n"
            "To connect: deploy the stack (infra/README.md: `cdk deploy` with the pipeline enabled), make AWS "
            "credentials available (`aws configure`, AWS_PROFILE, or the notebook instance's role), then set "
            "`stack_name` (or `config_file`, a JSON file of the stack's outputs) in the parameters cell and run "
            "the notebook again."
        ) from None
    where = f"the outputs in {backend.config_file}" if backend.config_file else f"stack {backend.stack_name}"
    print(f"connected to the pipeline of {where}: region {config.region}, bucket {config.bucket}, "
          f"capacity {config.capacity}")
    return backend
