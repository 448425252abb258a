"""One way to read a botocore failure, and the one place that turns it into our own error.

Every client the helper makes (helper/aws/clients.py), and every client a seam is handed, is
`translated`: a failed call raises AwsError, a HelperError that carries the operation, AWS's
error code and message. Code outside helper/aws/ catches AwsError and never imports botocore's
exceptions (tests/test_edges.py); this is the only module that looks inside
`ClientError.response`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from helper.errors import HelperError

log = logging.getLogger(__name__)

# What botocore raises for a failed call: AWS's answer (ClientError) or no answer at all
# (BotoCoreError: a timeout, a refused connection, missing credentials, a bad parameter).
AWS_FAILURES = (ClientError, BotoCoreError)
THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"})


class AwsError(HelperError):
    """An AWS call failed after botocore's own retries. Its text is explain(): one line."""

    def __init__(self, operation: str, code: str, message: str, text: str) -> None:
        super().__init__(text)
        self.operation = operation  # the client method, e.g. "complete_lifecycle_action"
        self.code = code  # AWS's error code, "" when AWS did not answer
        self.message = message  # AWS's own message, "" when AWS did not answer

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLING_CODES


def _error(exc: Exception) -> dict:
    return exc.response.get("Error", {}) if isinstance(exc, ClientError) else {}


def error_code(exc: Exception) -> str:
    """AWS's error code ("LoadBalancerNotFound", "Throttling", ...), or "" for other failures."""
    return exc.code if isinstance(exc, AwsError) else _error(exc).get("Code", "")


def error_message(exc: Exception) -> str:
    """AWS's own message for an AWS error (it may name the ids at fault), or "" for other failures."""
    return exc.message if isinstance(exc, AwsError) else _error(exc).get("Message", "")


def explain(exc: Exception) -> str:
    """`Code: Message` for an AWS error; botocore's own text for the rest (timeouts, ...)."""
    if isinstance(exc, AwsError):
        return str(exc)
    if isinstance(exc, ClientError):
        err = _error(exc)
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(exc)


def translate(exc: Exception, operation: str) -> AwsError:
    return AwsError(operation, error_code(exc), error_message(exc), explain(exc))


def _translating(operation: str, call):
    @functools.wraps(call)
    def translated_call(*args, **kwargs):
        try:
            return call(*args, **kwargs)
        except AWS_FAILURES as exc:
            raise translate(exc, operation) from exc

    return translated_call


class _Pages:
    """A paginator's pages; each page's call translated as it is fetched."""

    def __init__(self, pages, operation: str) -> None:
        self._pages, self._operation = pages, operation

    def __iter__(self):
        iterator = iter(self._pages)
        while True:
            try:
                page = next(iterator)
            except StopIteration:
                return
            except AWS_FAILURES as exc:
                raise translate(exc, self._operation) from exc
            yield page

    def __getattr__(self, name: str) -> Any:  # build_full_result, search, ...
        found = getattr(self._pages, name)
        return _translating(self._operation, found) if callable(found) else found


class _Paginator:
    def __init__(self, paginator, operation: str) -> None:
        self._paginator, self._operation = paginator, operation

    def paginate(self, **kwargs) -> _Pages:
        return _Pages(self._paginator.paginate(**kwargs), self._operation)


class Translated:
    """A botocore client whose every call raises AwsError instead of botocore's exceptions.
    Attributes (`meta`, `exceptions`) pass through untouched."""

    def __init__(self, client, full: Callable[[], Any] | None = None) -> None:
        self._client = client
        # For a client on a cut-down model (helper/aws/clients.py): the same service's client on
        # the full model, made when an operation the cut lacks is asked for. A shortcut must
        # never stop a deploy: one warning, and the full model serves from then on.
        self._full = full

    def _whole(self, name: str) -> bool:
        if self._full is None:
            return False
        log.warning("event=model_cut_missed operation=%s fallback=full_model", name)
        self._client, self._full = self._full(), None
        return True

    def __getattr__(self, name: str) -> Any:
        try:
            found = getattr(self._client, name)
        except AttributeError:
            if not self._whole(name):
                raise
            found = getattr(self._client, name)
        if name == "get_paginator":
            return self._paginator
        if name.startswith("_") or not callable(found):
            return found
        return _translating(name, found)

    def _paginator(self, operation: str) -> _Paginator:
        try:
            return _Paginator(self._client.get_paginator(operation), operation)
        except (KeyError, BotoCoreError):  # not in a cut model (botocore's lookup is a KeyError)
            if not self._whole(operation):
                raise
            return _Paginator(self._client.get_paginator(operation), operation)

    @property
    def untranslated(self):
        """The botocore client itself, for code inside helper/aws/ only."""
        return self._client


def translated(client):
    """The client, translated (once: translating a translated client returns it as it is)."""
    if client is None or isinstance(client, Translated):
        return client
    return Translated(client)
