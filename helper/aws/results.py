"""A lifecycle action's result: CompleteLifecycleAction's LifecycleActionResult and a hook's
DefaultResult. One enum, so a typo is an AttributeError, not a value AWS refuses at 3 a.m.
(no botocore: the config parser uses it)."""

from __future__ import annotations

from enum import Enum


class Result(str, Enum):
    CONTINUE = "CONTINUE"
    ABANDON = "ABANDON"

    def __str__(self) -> str:  # "CONTINUE" in a log line or an API call, as the plain string was
        return self.value


RESULTS = tuple(r.value for r in Result)
