"""The lifecycle section's guards around deploys: lifecycle.breaker (a failing revision stops
its scale-up deploys), lifecycle.alerts (who hears of it) and lifecycle.hold (a full deploy's
fleet hold). Parsed here, apart from the queue and routing keys of helper/config/lifecycle.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from helper.aws.processes import DEFAULT_PROCESSES, DEFAULT_TTL_S, MAX_TTL_S, check_processes
from helper.config import fields
from helper.config.yamlfile import Located
from helper.urls import check_webhook_url

# --- lifecycle.breaker and lifecycle.alerts (issue 11; helper/breaker/state.py, alerts.py) ---
BREAKER_KEYS = {"failures", "on_open", "margin_s"}
ALERT_KEYS = {"sns_topic_arn", "webhook_url"}
ON_OPEN = ("hold", "abandon")
# A topic in any partition; names are 1-256 letters, digits, `-` and `_` (`.fifo` for FIFO topics).
SNS_TOPIC_ARN_RE = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")


@dataclass(frozen=True)
class BreakerConfig:
    # Three failed deploys of one revision is a pattern, not bad luck (one flaky host, one
    # network blip); at most three instances churn before the breaker stops it.
    failures: int = 3
    # hold: new instances wait in Pending:Wait (no churn); abandon: replaced as before, no build.
    on_open: str = "hold"
    # Stop holding this long before the hook's global timeout and apply its default result
    # ourselves (alerting a margin before that): 30 min leaves room for a consumer restart.
    margin_s: float = 1800.0


@dataclass(frozen=True)
class AlertConfig:
    sns_topic_arn: str | None = None
    webhook_url: str | None = None


def parse_breaker(doc: Located, raw) -> BreakerConfig:
    keys = ("lifecycle", "breaker")
    section = fields.mapping(doc, raw, keys, BREAKER_KEYS)
    return BreakerConfig(
        failures=fields.whole(doc, section.get("failures", 3), keys + ("failures",), 1, 9999),
        on_open=fields.choice(doc, section.get("on_open"), keys + ("on_open",), ON_OPEN, "hold"),
        margin_s=fields.number(doc, section.get("margin_s", 1800.0), keys + ("margin_s",), 1, 172800),
    )


def parse_alerts(doc: Located, raw) -> AlertConfig:
    from helper.errors import ConfigError

    keys = ("lifecycle", "alerts")
    section = fields.mapping(doc, raw, keys, ALERT_KEYS)
    topic = fields.string(doc, section.get("sns_topic_arn"), keys + ("sns_topic_arn",))
    if topic is not None and not SNS_TOPIC_ARN_RE.fullmatch(topic):
        raise fields.fail(doc, keys + ("sns_topic_arn",), "must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
    url = fields.string(doc, section.get("webhook_url"), keys + ("webhook_url",))
    if url is not None:
        try:
            check_webhook_url(url)
        except ConfigError as exc:
            raise fields.fail(doc, keys + ("webhook_url",), str(exc)) from None
    return AlertConfig(sns_topic_arn=topic, webhook_url=url)


# --- lifecycle.hold (issue 11; helper/deploys/fleet_hold.py, `fleet hold` / `fleet release`) ---
HOLD_KEYS = {"processes", "ttl_s"}


@dataclass(frozen=True)
class HoldConfig:
    # Names and why these: helper/aws/processes.py. Add HealthCheck when the site's groups use
    # ELB health checks and a deploy restarts the app: a host marked unhealthy mid-deploy is
    # otherwise replaced the moment the hold ends.
    processes: tuple[str, ...] = DEFAULT_PROCESSES
    ttl_s: float = float(DEFAULT_TTL_S)


def parse_hold(doc: Located, raw) -> HoldConfig:
    keys = ("lifecycle", "hold")
    section = fields.mapping(doc, raw, keys, HOLD_KEYS)
    names = section.get("processes", list(DEFAULT_PROCESSES))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise fields.fail(doc, keys + ("processes",), "must be a list of Auto Scaling process names")
    try:
        processes = check_processes(names)
    except ValueError as exc:
        raise fields.fail(doc, keys + ("processes",), str(exc)) from None
    return HoldConfig(processes=processes,
                      ttl_s=fields.number(doc, section.get("ttl_s", DEFAULT_TTL_S), keys + ("ttl_s",), 1, MAX_TTL_S))


