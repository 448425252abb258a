"""One way to read a botocore failure: its error code, its message, and a one-line explanation.

The only module that looks inside `ClientError.response`; everything else asks here.
"""

from __future__ import annotations

from botocore.exceptions import ClientError


def _error(exc: Exception) -> dict:
    return exc.response.get("Error", {}) if isinstance(exc, ClientError) else {}


def error_code(exc: Exception) -> str:
    """AWS's error code ("LoadBalancerNotFound", "Throttling", ...), or "" for other failures."""
    return _error(exc).get("Code", "")


def error_message(exc: Exception) -> str:
    """AWS's own message for an AWS error (it may name the ids at fault), or "" for other failures."""
    return _error(exc).get("Message", "")


def explain(exc: Exception) -> str:
    """`Code: Message` for an AWS error; botocore's own text for the rest (timeouts, ...)."""
    if isinstance(exc, ClientError):
        err = _error(exc)
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(exc)
