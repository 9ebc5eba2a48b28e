"""Lazy access to the AWS SDK (SkyPilot adaptor style): boto3 is imported on first use, never at import time.

Every client honours the standard configuration: credentials and region from the environment or the profile,
and ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` (botocore reads them itself), which points the
workbench at an emulator such as moto server.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from workbench.errors import WorkbenchError

RETRIES = {"mode": "standard", "max_attempts": 8}


class AwsUnavailableError(WorkbenchError):
    """boto3 is not installed, or no AWS region is configured."""


@functools.cache
def boto3() -> Any:
    """The boto3 module, imported on first use."""
    try:
        import boto3 as module
    except ImportError as exc:
        raise AwsUnavailableError(
            "AWS support needs boto3, which is not installed; install it with 'pip install boto3'"
        ) from exc
    return module


def sdk_errors() -> tuple[type[BaseException], ...]:
    """The exception classes the SDK raises for failed calls (to catch and re-raise as typed errors)."""
    import botocore.exceptions

    return (boto3().exceptions.Boto3Error, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


def client(service: str, region: str | None = None, session: Any = None, **config: Any) -> Any:
    """A boto3 client with standard retries; ``session`` is an existing ``boto3.Session`` to take it from."""
    from botocore.config import Config

    boto_session = session or boto3().session.Session()
    region = region or boto_session.region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise AwsUnavailableError("no AWS region is configured; set AWS_REGION or pass region=...")
    return boto_session.client(service, region_name=region, config=Config(retries=RETRIES, **config))


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    """The AWS error message of a ``ClientError`` in plain words, else ``str(exc)``."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    return f"{error.get('Code')}: {error.get('Message')}" if error else str(exc)
