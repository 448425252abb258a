"""`status`: one screen for the operator at 3 a.m. Per site: the recorded revision (and the one
before), its instances by lifecycle state, every launch waiting in Pending:Wait with its age, its
build and how long AWS still waits for it, the breaker, the fleet hold and any rollout's hosts.

This module is the pure middle: the facts (gathered by status_read.py from AWS and Jenkins) in,
the judgement (what needs a person) and the two renderings out. Every value from outside (a
holder, a revision, a URL) is printed through logfmt.quote, so a tag cannot break the screen.

Needs a person (exit 1): an open breaker; a fleet hold past its `until` (a killed build's, which the
consumer should have released); a waiting launch within NEAR_TIMEOUT_FRACTION of AWS's global
timeout, or with no build while older than its heartbeat timeout; a rollout's host out past its
`until` or marked failed. The JSON form (`--json`, SCHEMA_VERSION) is documented in
docs/operations.md and only grows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from helper.logfmt import quote

SCHEMA_VERSION = 1
# A waiting launch this close to AWS's global timeout (its hard limit, whatever the heartbeats)
# needs a person: at 48 h, the last 4.8 h.
NEAR_TIMEOUT_FRACTION = 0.1


@dataclass(frozen=True)
class Build:
    url: str | None
    state: str  # queued, running, SUCCESS, FAILURE, ABORTED...


@dataclass(frozen=True)
class Waiting:
    instance_id: str
    group: str
    state: str  # Pending:Wait, Warmed:Pending:Wait
    age_s: float | None  # since launch (EC2 LaunchTime); None when EC2 did not say
    heartbeat_timeout_s: int
    global_timeout_s: int
    build: Build | None

    @property
    def global_left_s(self) -> float | None:
        return None if self.age_s is None else self.global_timeout_s - self.age_s


@dataclass(frozen=True)
class Hold:
    group: str
    holder: str
    until: str
    expired: bool


@dataclass(frozen=True)
class OutHost:
    instance_id: str
    state: str  # out, failed
    holder: str
    until: str
    expired: bool


@dataclass
class SiteStatus:
    site: str
    revision: str | None = None
    previous: str | None = None
    groups: list[str] = field(default_factory=list)
    instances: dict[str, int] = field(default_factory=dict)  # lifecycle state -> count
    waiting: list[Waiting] = field(default_factory=list)
    breaker: dict | None = None  # state, revision, failures, since, held; None: no lifecycle group
    holds: list[Hold] = field(default_factory=list)
    rollout: list[OutHost] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be read, one line each

    def attention(self) -> list[str]:
        """What needs a person, one line each; [] when nothing does."""
        found = [f"cannot read: {p}" for p in self.problems]
        if self.breaker and self.breaker.get("state") == "open":
            found.append(f"breaker open since {self.breaker.get('since')}: scale-up deploys stopped; "
                         f"`breaker reset --site {self.site}` once the deploy is fixed")
        found += [f"fleet hold on {h.group} by {quote(h.holder)} expired at {h.until}: the consumer should "
                  f"have released it; `fleet release --site {self.site}`" for h in self.holds if h.expired]
        for w in self.waiting:
            left = w.global_left_s
            if left is not None and left < NEAR_TIMEOUT_FRACTION * w.global_timeout_s:
                found.append(f"{w.instance_id} waits {_duration(w.age_s)}: AWS gives up on it in {_duration(left)}")
            elif w.build is None and w.age_s is not None and w.age_s > w.heartbeat_timeout_s:
                found.append(f"{w.instance_id} waits {_duration(w.age_s)} with no build: is a consumer running?")
        found += [f"rollout left {o.instance_id} {'failed' if o.state == 'failed' else 'out'}"
                  f"{' past its until ' + o.until if o.expired else ''}: `rollout status/abort --site {self.site}`"
                  for o in self.rollout if o.state == "failed" or o.expired]
        return found


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def lines(statuses: list[SiteStatus]) -> list[str]:
    out = []
    for s in statuses:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(s.instances.items())) or "no group instances"
        out.append(f"{s.site}: revision {quote(s.revision or '-')} (before: {quote(s.previous or '-')}); {counts}")
        for w in s.waiting:
            build = "no build" if w.build is None else f"build {w.build.state} {quote(w.build.url or '-')}"
            out.append(f"  waiting {w.instance_id} ({w.group}, {w.state}) for {_duration(w.age_s)}, {build}; "
                       f"heartbeat timeout {_duration(w.heartbeat_timeout_s)}, AWS gives up in "
                       f"{_duration(w.global_left_s)} at the latest")
        if s.breaker:
            b = s.breaker
            out.append(f"  breaker {b['state']}" + (f" since {b['since']} (revision {quote(b['revision'] or '-')}, "
                                                     f"{b['failures']} failures, {b['held']} held)"
                                                     if b["state"] == "open" else ""))
        for h in s.holds:
            out.append(f"  fleet held on {h.group} by {quote(h.holder)} until {h.until}{' (EXPIRED)' if h.expired else ''}")
        for o in s.rollout:
            out.append(f"  rollout: {o.instance_id} {o.state} by {quote(o.holder)} until {o.until}"
                       f"{' (EXPIRED)' if o.expired else ''}")
        for reason in s.attention():
            out.append(f"  NEEDS A PERSON: {reason}")
    flagged = sum(1 for s in statuses if s.attention())
    out.append(f"{len(statuses)} site(s), {flagged} needing a person")
    return out


def as_json(statuses: list[SiteStatus]) -> dict:
    sites = []
    for s in statuses:
        entry = asdict(s)
        entry["waiting"] = [{**asdict(w), "global_left_s": w.global_left_s} for w in s.waiting]
        entry["attention"] = s.attention()
        sites.append(entry)
    return {"schema_version": SCHEMA_VERSION, "needs_a_person": any(s["attention"] for s in sites), "sites": sites}
