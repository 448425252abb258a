"""A breaker per site: after N failed scale-up deploys of one revision, stop deploying it.

Without it a bad revision loops all night: launch, deploy, fail, ABANDON, replace, launch.
While a site's breaker is open the consumer starts no build for it and holds new launching
actions in Pending:Wait (see `park_decision`); it closes when a full deploy records another
revision, when a deploy of the revision succeeds after all, or when an operator resets it.

The state lives where AWS keeps it for every replica and a person can see it in the console:
a tag on each of the site's Auto Scaling groups, e.g.

    aws-deploy-helper:breaker:web        = v1;state=open;rev=v1.4.2;n=3;since=2026-11-27T17:53:55Z
    aws-deploy-helper:breaker-reason:web = 3 consecutive scale-up deploys of v1.4.2 failed; last: FAILURE

The site is in the key, so a group that moves to another site (or that a second config names
differently) never inherits a breaker it was not part of. Parked actions are not stored: they
are the group's Pending:Wait instances, read when needed.

Fail-safe for a tag we cannot read: CLOSED, with a reason saying so (never an exception).
Anyone with autoscaling:CreateOrUpdateTags on the group can write this tag. If garbage meant
OPEN, any junk value (a typo in the console, a tool that truncates values) would stop every
scale-up deploy of the site and hold its new instances until the hook's global timeout: a
capacity outage for the price of one tag write. Garbage meaning CLOSED gives that person
nothing they could not already do by writing a valid `state=closed` tag, and the worst case is
the behaviour without a breaker. Restrict who may write these keys with an `aws:TagKeys`
condition; a valid OPEN tag is an operator's (or an attacker's) explicit choice, and alerts.

Transitions are pure functions of (state, input, now); `BreakerStore` is the only code that
talks to AWS, through an Auto Scaling client passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import Enum

from helper import PROG
from helper.aws.errors import AwsError, explain, translated
from helper.aws.group_tags import MAX_TAG_VALUE, delete_group_tags, read_group_tags, write_group_tags
from helper.aws.hook_timeouts import global_timeout_s
from helper.deploys.revision import REVISION_RE
from helper.errors import HelperError
from helper.text import one_line as text_line

TAG_PREFIX = f"{PROG}:breaker:"
REASON_TAG_PREFIX = f"{PROG}:breaker-reason:"
# AWS's limits for an Auto Scaling tag (the value's: helper/aws/group_tags.py). The longest state
# value we write is 254 characters (a 200-character revision, n=9999), so it always fits; a longer
# one was not written by us.
MAX_TAG_KEY = 128
FORMAT_VERSION = "v1"
# The count saturates here: four digits keep the value inside 256 characters, and by then
# nobody needs the exact number.
MAX_FAILURES = 9999
# Seconds precision in UTC with a Z: 20 characters, and sorts as text the way it sorts in time.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# [0-9], not \d: \d also matches other scripts' digits, which int() would then accept.
TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
COUNT_RE = re.compile(r"[0-9]{1,4}")


class State(Enum):
    CLOSED = "closed"
    OPEN = "open"


class Event(Enum):
    """What a transition did, so the caller can alert (and deploy the held actions on CLOSED)."""

    OPENED = "opened"
    CLOSED = "closed"


class Park(Enum):
    PARK = "park"
    ALERT_NEAR_TIMEOUT = "alert_near_timeout"
    LET_DEFAULT_APPLY = "let_default_apply"


@dataclass(frozen=True)
class BreakerState:
    state: State = State.CLOSED
    revision: str = ""  # the revision whose deploys failed; "" = none yet, or not recorded
    failures: int = 0  # consecutive failed scale-up deploys of `revision`
    since: str = ""  # UTC, TIME_FORMAT: when it opened (OPEN) or last changed (CLOSED); "" = never
    reason: str = ""  # one line, for people
    held: tuple[tuple[str, str], ...] = ()  # (group, instance): never in the tag, re-derived

    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN

    @property
    def opened_at(self) -> str | None:
        return self.since if self.is_open else None


CLOSED = BreakerState()


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(TIME_FORMAT)


def one_line(text: str, limit: int = MAX_TAG_VALUE) -> str:
    """What a reason may hold: helper/text.py's one printable line, at most a tag value long."""
    return text_line(text, limit)


def _check_threshold(threshold: int) -> None:
    if threshold < 1:
        raise ValueError(f"breaker threshold must be at least 1, not {threshold}")


# --- transitions (pure) ----------------------------------------------------------------------

def on_result(state: BreakerState, revision: str, succeeded: bool, threshold: int,
              detail: str = "", now: datetime | None = None) -> tuple[BreakerState, Event | None]:
    """The state after one scale-up deploy of `revision` finished.

    A success closes the breaker (it can only come from a build started before it opened,
    and proves the revision deploys). A failure of another revision than the one counted
    starts a new count: the site moved on, so the old count (and an open breaker) is void.
    """
    _check_threshold(threshold)
    stamp = _stamp(now)
    if succeeded:
        if state.is_open:
            return (BreakerState(State.CLOSED, revision, 0, stamp, f"a scale-up deploy of {revision or '?'} succeeded"),
                    Event.CLOSED)
        if state.failures:
            return BreakerState(State.CLOSED, revision, 0, stamp, ""), None
        return state, None
    same = revision == state.revision
    failures = min(state.failures + 1, MAX_FAILURES) if same else 1
    why = one_line(f"{failures} consecutive scale-up deploys of {revision or 'an unrecorded revision'} failed"
                   + (f"; last: {detail}" if detail else ""))
    if state.is_open and same:
        return replace(state, failures=failures, reason=why), None
    if failures >= threshold:
        return BreakerState(State.OPEN, revision, failures, stamp, why), Event.OPENED
    event = Event.CLOSED if state.is_open else None  # open for an older revision: void now
    return BreakerState(State.CLOSED, revision, failures, stamp, why), event


def close_if_revision_changed(state: BreakerState, recorded_revision: str | None,
                              now: datetime | None = None) -> tuple[BreakerState, Event | None]:
    """A full deploy recorded another revision: the failures counted no longer apply."""
    if not recorded_revision or recorded_revision == state.revision or (not state.is_open and not state.failures):
        return state, None
    closed = BreakerState(State.CLOSED, recorded_revision, 0, _stamp(now),
                          one_line(f"a full deploy recorded {recorded_revision} (was {state.revision or '?'})"))
    return closed, (Event.CLOSED if state.is_open else None)


def reset(state: BreakerState, now: datetime | None = None,
          reason: str = "reset by an operator") -> tuple[BreakerState, Event | None]:
    closed = BreakerState(State.CLOSED, state.revision, 0, _stamp(now), one_line(reason))
    return closed, (Event.CLOSED if state.is_open else None)


def park_decision(now: datetime, action_started_at: datetime, global_timeout_s: float,
                  margin_s: float) -> Park:
    """What to do with an action held by an open breaker.

    At `global timeout - margin` we stop holding and complete with the hook's DefaultResult
    ourselves: at a time we choose, counted and logged, instead of AWS's timer firing at a
    moment no one watches (and with the margin as slack for a consumer that was down). During
    the `margin` before that a person is alerted (the caller alerts once per action).
    `action_started_at` must not be later than the real start: for a reconciled action
    without a notification, pass the instance's LaunchTime. `global_timeout_s` is the hook's
    global timeout (helper/aws/hook_timeouts.py; `park_decision_for_hook` computes it).
    """
    give_up_at = action_started_at + timedelta(seconds=global_timeout_s - margin_s)
    if now >= give_up_at:
        return Park.LET_DEFAULT_APPLY
    if now >= give_up_at - timedelta(seconds=margin_s):
        return Park.ALERT_NEAR_TIMEOUT
    return Park.PARK


# The margin is at most this fraction of a hook's global timeout. A margin at or beyond the
# global timeout left no hold at all: every held action was given up the moment it was held, so
# an open breaker abandoned a launch a second, faster churn than no breaker (issue 19 item 24).
# Nine tenths keeps a tenth of the global timeout (100 x HeartbeatTimeout) as the hold: ten
# heartbeat timeouts, at least 300 s on AWS, longer than a failing build takes to churn.
MAX_MARGIN_FRACTION = 0.9


def effective_margin_s(margin_s: float, global_timeout: float) -> float:
    """lifecycle.breaker.margin_s as used for a hook with this global timeout: clamped, never refused,
    since the hook's timeout is read from AWS at run time (doctor and the log say when it is clamped)."""
    return min(margin_s, global_timeout * MAX_MARGIN_FRACTION)


def park_decision_for_hook(now: datetime, action_started_at: datetime, heartbeat_timeout_s: int,
                           margin_s: float) -> Park:
    """`park_decision` for an action of a hook with this HeartbeatTimeout (AWS's global-timeout rule),
    with the margin clamped to the hook."""
    overall = global_timeout_s(heartbeat_timeout_s)
    return park_decision(now, action_started_at, overall, effective_margin_s(margin_s, overall))


def seconds_left(now: datetime, action_started_at: datetime, global_timeout_s: float, margin_s: float) -> float:
    """Until `park_decision` says LET_DEFAULT_APPLY (for the alert's "minutes left")."""
    give_up_at = action_started_at + timedelta(seconds=global_timeout_s - margin_s)
    return max(0.0, (give_up_at - now).total_seconds())


# --- the tags ---------------------------------------------------------------------------------

def tag_keys(site: str) -> tuple[str, str]:
    state_key, reason_key = TAG_PREFIX + site, REASON_TAG_PREFIX + site
    if len(reason_key) > MAX_TAG_KEY:  # site names are at most 63 characters: never in practice
        raise ValueError(f"site name {site!r} makes a tag key longer than {MAX_TAG_KEY} characters")
    return state_key, reason_key


def encode_tags(site: str, state: BreakerState) -> dict[str, str]:
    state_key, reason_key = tag_keys(site)
    value = (f"{FORMAT_VERSION};state={state.state.value};rev={state.revision};"
             f"n={min(state.failures, MAX_FAILURES)};since={state.since}")
    if len(value) > MAX_TAG_VALUE:  # only an unvalidated revision can get here
        raise ValueError(f"breaker tag for {site} would be {len(value)} characters, more than {MAX_TAG_VALUE}")
    return {state_key: value, reason_key: one_line(state.reason)}


def _parse(value: str) -> BreakerState | str:
    """The state a tag value holds, or why it holds none (one line, no input echoed)."""
    if len(value) > MAX_TAG_VALUE:
        return f"{len(value)} characters, more than {MAX_TAG_VALUE}"
    version, _, rest = value.partition(";")
    if version != FORMAT_VERSION:
        return "unknown format version"
    found: dict[str, str] = {}
    for part in rest.split(";"):
        key, eq, val = part.partition("=")
        if not eq or key not in ("state", "rev", "n", "since") or key in found:
            return "unknown, repeated or malformed field"
        found[key] = val
    if len(found) != 4:
        return "missing field"
    states = {s.value: s for s in State}
    if found["state"] not in states:
        return "unknown state"
    rev, count, since = found["rev"], found["n"], found["since"]
    if rev and (not REVISION_RE.fullmatch(rev) or ".." in rev):
        return "revision is not a revision"
    if not COUNT_RE.fullmatch(count):
        return "failure count is not a number"
    if since and not TIME_RE.fullmatch(since):
        return "since is not a UTC time"
    if since:
        try:
            datetime.strptime(since, TIME_FORMAT)
        except ValueError:
            return "since is not a UTC time"
    state = states[found["state"]]
    if state is State.OPEN and (int(count) < 1 or not since):
        return "open without failures or time"
    return BreakerState(state, rev, int(count), since)


def _decode(site: str, tags: dict[str, str]) -> BreakerState | str | None:
    """One group's breaker, why its tag is unreadable, or None when it has no tag."""
    state_key, reason_key = tag_keys(site)
    if state_key not in tags:
        return None
    parsed = _parse(tags[state_key])
    if isinstance(parsed, str):
        return f"unreadable breaker tag ({parsed}): treated as closed"
    return replace(parsed, reason=one_line(tags.get(reason_key, "")))


def decode_tags(site: str, tags: dict[str, str]) -> BreakerState:
    """One group's breaker from its tags; never raises, and garbage is never OPEN."""
    decoded = _decode(site, tags)
    if decoded is None:
        return CLOSED
    return replace(CLOSED, reason=decoded) if isinstance(decoded, str) else decoded


def merge(site: str, by_group: dict[str, dict[str, str]]) -> BreakerState:
    """The site's breaker from each group's tags.

    Groups can disagree after a write failed half-way, or a hand edit: the readable state
    that changed last wins (OPEN on a tie), and our next write makes them agree again.
    """
    readable, problems = [], []
    for group in sorted(by_group):
        decoded = _decode(site, by_group[group])
        if isinstance(decoded, str):
            problems.append(f"{group}: {decoded}")
        elif decoded is not None:
            readable.append(decoded)
    if readable:
        return max(readable, key=lambda s: (s.since, s.is_open, s.failures))
    if problems:
        return replace(CLOSED, reason=one_line("; ".join(problems)))
    return CLOSED


# --- the store --------------------------------------------------------------------------------

class BreakerStoreError(HelperError):
    """Auto Scaling did not read or write a breaker tag."""


class BreakerStore:
    """The breaker tags, through the three Auto Scaling calls the breaker needs."""

    def __init__(self, client) -> None:
        self._client = translated(client)

    def read(self, site: str, groups: list[str]) -> BreakerState:
        if not groups:
            return CLOSED
        try:
            by_group = read_group_tags(self._client, groups, tag_keys(site))
        except AwsError as exc:
            raise BreakerStoreError(f"read breaker of {site}: {explain(exc)}") from exc
        return merge(site, by_group)

    def write(self, site: str, groups: list[str], state: BreakerState) -> None:
        tags = [(group, key, value) for group in sorted(set(groups)) for key, value in encode_tags(site, state).items()]
        try:
            write_group_tags(self._client, tags)
        except AwsError as exc:
            raise BreakerStoreError(f"create_or_update_tags breaker of {site}: {explain(exc)}") from exc

    def clear(self, site: str, groups: list[str]) -> None:
        try:
            delete_group_tags(self._client, [(group, key) for group in sorted(set(groups)) for key in tag_keys(site)])
        except AwsError as exc:
            raise BreakerStoreError(f"delete_tags breaker of {site}: {explain(exc)}") from exc


def with_parked(state: BreakerState, waiting) -> BreakerState:
    """The state with its held actions: the site's groups' Pending:Wait instances (Waiting)."""
    return replace(state, held=tuple(sorted((w.group, w.instance_id) for w in waiting)))
