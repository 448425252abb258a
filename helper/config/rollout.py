"""A site's `rollout:` (and `defaults: rollout:`): how a full deploy rolls through the site.

    rollout:
      batch: 25%            # hosts a batch takes out at once: a count, or a percent of the site
      min_healthy: 75%      # never fewer healthy hosts than this (count or percent of the site)
      canary: 1             # a first batch of this many hosts (0: none)
      one_zone_at_a_time: true
      max_failed: 0         # stop once more hosts than this failed
      on_failure: stop      # or rollback: redeploy the previous revision to the batches done
      drain_timeout_s: 330  # longest wait for a batch to drain (past it: deregistered anyway)
      healthy_timeout_s: 300
      verify: [curl, -fsS, http://localhost/health]  # run after each batch's deploy (argv)
      ttl_s: 3600           # a killed rollout's hosts are put back after this (like the fleet hold)

Percents round in the safe direction: a batch's down (at least 1), min_healthy's up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from helper.config import fields
from helper.config.yamlfile import Located

ROLLOUT_KEYS = {"batch", "min_healthy", "canary", "one_zone_at_a_time", "max_failed", "on_failure",
                "drain_timeout_s", "healthy_timeout_s", "verify", "ttl_s"}
ON_FAILURE = ("stop", "rollback")
PERCENT_RE = re.compile(r"([0-9]{1,3})%")


@dataclass(frozen=True)
class Amount:
    """A number of hosts, or a percent of the site's hosts."""

    value: int
    percent: bool = False

    def of(self, hosts: int, round_up: bool) -> int:
        if not self.percent:
            return self.value
        whole, rest = divmod(self.value * hosts, 100)
        return whole + (1 if round_up and rest else 0)

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


@dataclass(frozen=True)
class RolloutConfig:
    batch: Amount = Amount(25, percent=True)
    min_healthy: Amount = Amount(75, percent=True)
    canary: int = 0
    one_zone_at_a_time: bool = False
    max_failed: int = 0
    on_failure: str = "stop"
    # A target group's default deregistration delay is 300 s: wait a little past it.
    drain_timeout_s: float = 330.0
    healthy_timeout_s: float = 300.0
    verify: tuple[str, ...] = ()
    ttl_s: float = 3600.0


def _amount(doc: Located, value: Any, keys: tuple, low: int) -> Amount:
    if isinstance(value, str) and PERCENT_RE.fullmatch(value.strip()):
        percent = int(PERCENT_RE.fullmatch(value.strip()).group(1))
        if not low <= percent <= 100:
            raise fields.fail(doc, keys, f"must be a percent from {low}% to 100%, not {value!r}")
        return Amount(percent, percent=True)
    return Amount(fields.whole(doc, value, keys, low, 100_000))


def parse_rollout(doc: Located, raw: Any, keys: tuple) -> RolloutConfig | None:
    """None when the site has no rollout: its full deploy runs on every host at once."""
    if raw is None:
        return None
    section = fields.mapping(doc, raw, keys, ROLLOUT_KEYS)
    default = RolloutConfig()
    number = lambda key, low, high: (getattr(default, key) if key not in section  # noqa: E731
                                     else fields.number(doc, section[key], keys + (key,), low, high))
    whole = lambda key, high: (getattr(default, key) if key not in section  # noqa: E731
                               else fields.whole(doc, section[key], keys + (key,), 0, high))
    verify = section.get("verify")
    if verify is not None and (not isinstance(verify, list) or not verify
                               or not all(isinstance(w, str) and w for w in verify)):
        raise fields.fail(doc, keys + ("verify",), "must be a command as a list of words (argv), e.g. [curl, -f, URL]")
    one_zone = section.get("one_zone_at_a_time", False)
    if not isinstance(one_zone, bool):
        raise fields.fail(doc, keys + ("one_zone_at_a_time",), "must be true or false")
    return RolloutConfig(
        batch=default.batch if "batch" not in section else _amount(doc, section["batch"], keys + ("batch",), 1),
        min_healthy=(default.min_healthy if "min_healthy" not in section
                     else _amount(doc, section["min_healthy"], keys + ("min_healthy",), 0)),
        canary=whole("canary", 100_000),
        one_zone_at_a_time=one_zone,
        max_failed=whole("max_failed", 100_000),
        on_failure=fields.choice(doc, section.get("on_failure"), keys + ("on_failure",), ON_FAILURE, "stop"),
        drain_timeout_s=number("drain_timeout_s", 0, 3600),
        healthy_timeout_s=number("healthy_timeout_s", 1, 3600),
        verify=tuple(verify or ()),
        ttl_s=number("ttl_s", 60, 86400),
    )
