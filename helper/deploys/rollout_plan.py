"""Which hosts a rollout takes out together, in what order, and whether min_healthy allows it. Pure.

Hosts already unhealthy go first (CodeDeploy orders them so too): taking them out costs no
healthy capacity. Then an optional canary batch, then batches of the configured size, cut down
to what keeps `min_healthy` healthy hosts in service while a batch is out. A plan that cannot
take even one healthy host out without breaking min_healthy is refused before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from helper.config.rollout import RolloutConfig
from helper.errors import ConfigError


@dataclass(frozen=True)
class Host:
    instance_id: str
    zone: str = ""
    healthy: bool = True  # every load balancer serving it says healthy now


@dataclass(frozen=True)
class Batch:
    number: int  # from 1
    instance_ids: tuple[str, ...]
    kind: str = "batch"  # "unhealthy", "canary" or "batch"


@dataclass(frozen=True)
class Plan:
    site: str
    hosts: int
    healthy_now: int
    min_healthy: int  # hosts that stay healthy and in service while any batch is out
    batches: tuple[Batch, ...]

    def lines(self) -> list[str]:
        head = (f"site {self.site}: {self.hosts} host(s), {self.healthy_now} healthy now, at least "
                f"{self.min_healthy} kept in service, {len(self.batches)} batch(es)")
        return [head] + [f"  batch {b.number} ({b.kind}): {' '.join(b.instance_ids)}" for b in self.batches]


def _chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def _by_zone(hosts: list[Host], size: int, one_zone: bool) -> list[list[str]]:
    if not one_zone:
        return _chunks([h.instance_id for h in hosts], size)
    out: list[list[str]] = []
    for _, zone_hosts in groupby(hosts, key=lambda h: h.zone):
        out += _chunks([h.instance_id for h in zone_hosts], size)
    return out


def plan(site: str, hosts: list[Host], config: RolloutConfig) -> Plan:
    """The batches; ConfigError (one line, exit 2) when min_healthy leaves no room."""
    if not hosts:
        raise ConfigError(f"site {site}: no hosts to roll out to")
    ordered = sorted(hosts, key=lambda h: (h.zone, h.instance_id))
    total = len(ordered)
    healthy = [h for h in ordered if h.healthy]
    unhealthy = [h for h in ordered if not h.healthy]
    min_n = config.min_healthy.of(total, round_up=True)
    size = max(1, config.batch.of(total, round_up=False))
    room = len(healthy) - min_n  # healthy hosts that may be out at once
    if healthy and room < 1:
        raise ConfigError(
            f"site {site}: min_healthy {config.min_healthy} keeps {min_n} of {total} host(s) in service, and only "
            f"{len(healthy)} are healthy now: no healthy host can be taken out (lower rollout.min_healthy, or add hosts)")
    size_healthy = min(size, max(room, 1))
    groups: list[tuple[str, list[str]]] = [("unhealthy", ids) for ids in
                                           _by_zone(unhealthy, size, config.one_zone_at_a_time)]
    rest = healthy
    if config.canary and healthy:
        canary = healthy[:min(config.canary, size_healthy)]
        groups.append(("canary", [h.instance_id for h in canary]))
        rest = healthy[len(canary):]
    groups += [("batch", ids) for ids in _by_zone(rest, size_healthy, config.one_zone_at_a_time)]
    batches = tuple(Batch(n, tuple(ids), kind) for n, (kind, ids) in enumerate(groups, 1))
    return Plan(site, total, len(healthy), min_n, batches)


def wait_bounds_s(deregistration_delays_s: list[float], health_checks: list[tuple[int, float, float]],
                  margin_s: float = 10.0) -> tuple[float, float]:
    """(longest drain, longest wait for healthy) of one batch, from its load balancers' settings:
    the deregistration delays (a classic ELB's connection draining timeout), and each health check's
    (healthy threshold, interval, timeout). A target is healthy after `threshold` checks in a row."""
    drain = max(deregistration_delays_s, default=0.0)
    healthy = max((threshold * (interval + timeout) for threshold, interval, timeout in health_checks), default=0.0)
    return drain, healthy + margin_s


def worst_case_s(the_plan: Plan, config: RolloutConfig, drain_s: float, healthy_s: float) -> float:
    """How long a rollout's waits can take at most: each batch's drain and health waits, capped by
    the config as the rollout caps them (the deploy command's own time is not known here)."""
    return len(the_plan.batches) * (min(drain_s, config.drain_timeout_s) + min(healthy_s, config.healthy_timeout_s))

