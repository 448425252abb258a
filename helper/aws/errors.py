"""One way to read a botocore failure: its error code, and a one-line explanation."""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(exc: Exception) -> str:
    """AWS's error code ("LoadBalancerNotFound", "Throttling", ...), or "" for other failures."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return ""


def explain(exc: Exception) -> str:
    """`Code: Message` for an AWS error; botocore's own text for the rest (timeouts, ...)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(exc)
