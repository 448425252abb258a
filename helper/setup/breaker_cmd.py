"""`breaker status` and `breaker reset`: what an operator sees of the per-site breakers, and the
one way to close one by hand.

The state is the groups' breaker tags (helper/breaker/state.py); the actions held are the
site's groups' Pending:Wait instances, read from Auto Scaling, so any machine with the config
and the rights shows what the consumers see. Values from outside (revisions, reasons) are printed
through logfmt.quote: a tag cannot break the table or the terminal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from helper.breaker import alerts as texts
from helper.breaker.state import BreakerState, BreakerStore, reset, with_parked
from helper.config.lifecycle import LifecycleConfig
from helper.consumer.autoscaling import AutoScaling
from helper.errors import ConfigError
from helper.logfmt import quote

COLUMNS = ("site", "state", "revision", "failures", "since", "held", "reason")


@dataclass(frozen=True)
class SiteBreaker:
    site: str
    groups: tuple[str, ...]
    state: BreakerState


def sites_of(lc: LifecycleConfig, only: str | None = None) -> dict[str, list[str]]:
    """Site -> its lifecycle groups; `only` must be one of them (ConfigError otherwise)."""
    sites = {site: list(lc.groups_of(site)) for site in lc.routed_sites}
    if only is not None and only not in sites:
        raise ConfigError(f"--site {only}: no lifecycle group routes to it (sites with groups: "
                          f"{', '.join(sorted(sites))})")
    return {only: sites[only]} if only else sites


def read(store: BreakerStore, autoscaling: AutoScaling, lc: LifecycleConfig,
         only: str | None = None) -> list[SiteBreaker]:
    """Each site's breaker, with its held actions (the groups' Pending:Wait instances)."""
    found = []
    for site, groups in sites_of(lc, only).items():
        state = store.read(site, groups)
        if state.is_open:  # held only means something while the breaker is open
            state = with_parked(state, autoscaling.waiting_instances(groups))
        found.append(SiteBreaker(site, tuple(groups), state))
    return found


def _row(b: SiteBreaker) -> tuple[str, ...]:
    s = b.state
    return (b.site, s.state.value, s.revision or "-", str(s.failures), s.since if s.is_open else "-",
            str(len(s.held)), s.reason or "-")


def table(breakers: list[SiteBreaker]) -> str:
    rows = [COLUMNS] + [tuple(quote(v) if i > 0 else v for i, v in enumerate(_row(b))) for b in breakers]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    return "".join("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1] + "\n" for r in rows)


def as_json(breakers: list[SiteBreaker]) -> str:
    return json.dumps([{"site": b.site, "state": b.state.state.value, "revision": b.state.revision,
                        "failures": b.state.failures, "since": b.state.since or None,
                        "held": [{"group": g, "instance": i} for g, i in b.state.held],
                        "reason": b.state.reason} for b in breakers], indent=2) + "\n"


def reset_site(store: BreakerStore, autoscaling: AutoScaling, lc: LifecycleConfig, site: str,
               alerts: texts.Alerts | None = None) -> str:
    """Close the site's breaker; the consumers deploy the held actions on their next check."""
    (before,) = read(store, autoscaling, lc, site)
    closed, _ = reset(before.state)
    store.write(site, list(before.groups), closed)
    if not before.state.is_open:
        return f"{quote(site)}: breaker was closed already ({before.state.failures} failure(s) counted, now 0)"
    held = len(before.state.held)
    if alerts is not None:
        alerts.send(texts.breaker_closed(site, "reset by an operator", held))
    return (f"{quote(site)}: breaker closed (was open since {before.state.since}: {before.state.failures} failures "
            f"of {quote(before.state.revision or '?')}); {held} held instance(s) will be deployed by the consumer")
