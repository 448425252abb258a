"""Hold a site's fleet still during a full deploy: suspend the processes that remove hosts.

A scale-in, a health replacement, an AZ rebalance or an instance refresh that removes a host
in the middle of a full deploy fails it. `hold` suspends those processes on each of the
site's Auto Scaling groups (never Launch: scale-out stays allowed, and its new instances are
gated as before); `release` resumes them. Only what this tool suspended is resumed: a process
an operator suspended by hand stays suspended. What we suspended, who holds and until when
live in a tag on the group, where every replica and a person in the console can see it:

    aws-deploy-helper:hold = v1;until=2026-11-27T19:53:55Z;p=Terminate,AZRebalance;by=https://ci/job/web/12/

`p` lists only the processes this hold suspended (DescribeAutoScalingGroups' SuspendedProcesses
says which were already suspended). A build killed without its `post` must not leave the group
frozen: the hold expires at `until`, and the consumer's reconcile pass calls `release_expired`.

One tag per group, not per site: suspended processes belong to the group.

A second holder is refused, with one line naming the current holder and expiry, unless the
current hold has expired (then it is taken over, with its processes). Stacking would need a
list of holders in 256 characters, and "the last one out resumes" breaks the moment one holder
is killed; the Jenkinsfile's disableConcurrentBuilds means a second holder is another job or
a person, who should be told. The same holder holding again extends the hold.

Fail-safe for a tag we cannot read (forged, truncated, hand-edited): no hold of ours. Nothing is
resumed because of it, `hold` overwrites it (what was suspended under it counts as an
operator's and stays suspended), and `release_expired` leaves it alone with a warning. A tag
claiming Launch or a name outside AWS's fixed set is unreadable: we never suspend those, so we
never resume them. A well-formed forged tag can still make us resume the processes it lists;
restrict who may write this key with an `aws:TagKeys` condition.

Decisions are pure functions (`plan_hold`, `plan_release`, `is_expired`); `FleetHold` is the
only code that talks to AWS, through an Auto Scaling client passed in.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from helper import PROG
from helper.aws.errors import AwsError, explain, translated
from helper.aws.group_tags import MAX_TAG_VALUE, delete_group_tags, write_group_tags
from helper.aws.names import AUTOSCALING_NAMES_PER_CALL
from helper.aws.processes import DEFAULT_PROCESSES, DEFAULT_TTL_S, HOLDABLE, MAX_TTL_S, check_processes, ordered
from helper.deploys.hold_claim import CLAIM_PREFIX, claim_key, claim_value, rivals
from helper.errors import HelperError
from helper.text import one_line

log = logging.getLogger(__name__)

TAG_KEY = f"{PROG}:hold"
FORMAT_VERSION = "v1"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_PREFIX_MAX = len(f"{FORMAT_VERSION};until=2026-01-01T00:00:00Z;p={','.join(HOLDABLE)};by=")
# The holder is cut to a fixed length whatever else the tag holds, so the text a release
# compares with is cut the same way: 101 characters, enough for a Jenkins build URL.
HOLDER_MAX_CHARS = MAX_TAG_VALUE - _PREFIX_MAX
# A holder longer than that keeps its first characters and a digest of the whole, so two long
# build URLs that share their first 101 characters stay two holders (issue 19 item 17).
HOLDER_DIGEST_CHARS = 16
# An `until` further ahead than the longest hold we ever write (plus this much clock skew
# between the writer and us) was not written by us: a forged tag that would block every full
# deploy forever is read as no hold of ours (issue 19 item 16).
CLOCK_SKEW_S = 300
# Two holders whose claims crossed both withdraw and try again after a random wait of up to
# CLAIM_RETRY_MAX_S, so one of them holds (a crossing takes the few ms between a write and its
# read-back; the odds of crossing again fall with each try).
CLAIM_ATTEMPTS = 4
CLAIM_RETRY_MAX_S = 0.5
GROUPS_PER_DESCRIBE = AUTOSCALING_NAMES_PER_CALL


class HoldError(HelperError):
    """Auto Scaling did not hold or release a group, or a group is held by someone else."""


@dataclass(frozen=True)
class HoldRecord:
    """What one group's tag says: who holds, until when, what this tool suspended."""

    holder: str
    until: str  # UTC, TIME_FORMAT
    processes: tuple[str, ...]  # in PROCESSES order


@dataclass(frozen=True)
class Unreadable:
    why: str  # one line, no input echoed


@dataclass(frozen=True)
class GroupView:
    """One group as DescribeAutoScalingGroups shows it: suspended processes and our tag."""

    name: str
    suspended: frozenset[str]
    tag: str | None  # None: no hold tag
    claims: dict = field(default_factory=dict, compare=False)  # claim tag key -> holder (hold_claim.py)


@dataclass(frozen=True)
class HoldPlan:
    group: str
    suspend: tuple[str, ...]  # to suspend now
    already: tuple[str, ...]  # wanted, but suspended by someone else: left alone
    record: HoldRecord  # the tag to write (before suspending)
    extended: bool = False  # the same holder held it already
    took_over: str = ""  # the holder of the expired hold this one replaces


@dataclass(frozen=True)
class ReleasePlan:
    group: str
    resume: tuple[str, ...]
    kept: tuple[str, ...]  # still suspended, not ours
    record: HoldRecord | None  # None: no tag, or an unreadable one
    delete_tag: bool


# --- pure ------------------------------------------------------------------------------------

def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


def _time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)


def holder_text(holder: str) -> str:
    """The holder as the tag keeps it: printable, one line, at most HOLDER_MAX_CHARS.

    A longer holder keeps its start (readable in the console) and a digest of all of it: cut
    plainly, two builds whose URLs differ only after the cut would be one holder, and either
    could extend or release the other's hold. The same text always gives the same result, so
    `release --holder` compares equal.
    """
    text = one_line(holder).strip()
    if len(text) <= HOLDER_MAX_CHARS:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HOLDER_DIGEST_CHARS]
    return f"{text[:HOLDER_MAX_CHARS - HOLDER_DIGEST_CHARS - 1]}~{digest}"


def encode(record: HoldRecord) -> str:
    value = f"{FORMAT_VERSION};until={record.until};p={','.join(record.processes)};by={holder_text(record.holder)}"
    assert len(value) <= MAX_TAG_VALUE, value  # guaranteed by HOLDER_MAX_CHARS
    return value


def decode(value: str, now: datetime | None = None) -> HoldRecord | Unreadable:
    """A tag value as a record, or why it is none; never raises.

    With `now`, an `until` beyond the longest hold we write is unreadable too: no hold of ours.
    """
    if len(value) > MAX_TAG_VALUE:
        return Unreadable(f"{len(value)} characters, more than {MAX_TAG_VALUE}")
    parts = value.split(";", 3)  # the holder comes last and may hold ';'
    if len(parts) != 4 or parts[0] != FORMAT_VERSION:
        return Unreadable("unknown format version or missing field")
    until, procs, holder = parts[1], parts[2], parts[3]
    if not (until.startswith("until=") and procs.startswith("p=") and holder.startswith("by=")):
        return Unreadable("fields out of order or misnamed")
    until, procs, holder = until[6:], procs[2:], holder[3:]
    if not TIME_RE.fullmatch(until):
        return Unreadable("until is not a UTC time")
    try:
        until_at = _time(until)
    except ValueError:
        return Unreadable("until is not a UTC time")
    if now is not None and until_at > now + timedelta(seconds=MAX_TTL_S + CLOCK_SKEW_S):
        return Unreadable(f"until is more than {MAX_TTL_S} s ahead, longer than any hold we write")
    names = procs.split(",") if procs else []
    if any(n not in HOLDABLE for n in names) or len(set(names)) != len(names):
        return Unreadable("a process we never suspend, or one named twice")
    if not holder or holder != holder_text(holder):
        return Unreadable("holder is empty or not one printable line")
    return HoldRecord(holder, until, ordered(names))


def is_expired(record: HoldRecord, now: datetime) -> bool:
    return now >= _time(record.until)


def plan_hold(view: GroupView, wanted: tuple[str, ...], holder: str, ttl_s: float,
              now: datetime) -> HoldPlan:
    """What holding `view` for `holder` does; HoldError when someone else holds it."""
    holder = holder_text(holder)
    if not holder:
        raise HoldError("a hold needs a holder (a build URL, user@host)")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise HoldError(f"hold time {ttl_s:g} s is outside 1..{MAX_TTL_S} s")
    current = decode(view.tag, now) if view.tag is not None else None
    if isinstance(current, Unreadable):
        log.warning("event=hold_tag_unreadable group=%s why=%r action=overwrite", view.name, current.why)
        current = None
    until = _stamp(now + timedelta(seconds=ttl_s))
    inherited: tuple[str, ...] = ()
    if current is not None:
        if current.holder != holder and not is_expired(current, now):
            raise HoldError(f"{view.name} is held by {current.holder} until {current.until}; "
                            "wait, or `fleet release` it if that build is gone")
        # Ours still, whoever held it: a hand-resumed one is no longer suspended, so not ours.
        inherited = tuple(p for p in current.processes if p in view.suspended)
        if current.holder == holder:
            until = max(until, current.until)  # holding again never shortens a hold
    suspend = tuple(p for p in wanted if p not in view.suspended)
    already = tuple(p for p in wanted if p in view.suspended and p not in inherited)
    record = HoldRecord(holder, until, ordered(inherited + suspend))
    extended = current is not None and current.holder == holder
    took_over = current.holder if current is not None and not extended else ""
    return HoldPlan(view.name, suspend, already, record, extended, took_over)


def plan_release(view: GroupView, holder: str | None = None) -> ReleasePlan | str:
    """What releasing `view` does, or why it is left alone (another holder's hold).

    `holder` None: release whoever holds (an operator); else only that holder's hold.
    """
    if view.tag is None:
        return ReleasePlan(view.name, (), ordered(view.suspended), None, False)
    record = decode(view.tag)
    if isinstance(record, Unreadable):
        log.warning("event=hold_tag_unreadable group=%s why=%r action=resume_nothing", view.name, record.why)
        if holder is not None:
            return f"{view.name}: unreadable hold tag ({record.why}); left alone"
        return ReleasePlan(view.name, (), ordered(view.suspended), None, True)
    if holder is not None and record.holder != holder_text(holder):
        return f"{view.name}: held by {record.holder} until {record.until}; not released"
    resume = tuple(p for p in record.processes if p in view.suspended)
    kept = tuple(p for p in ordered(view.suspended) if p not in resume)
    return ReleasePlan(view.name, resume, kept, record, True)


def hold_line(plan: HoldPlan) -> str:
    verb = "hold extended" if plan.extended else "held"
    line = f"{plan.group}: {verb} by {plan.record.holder} until {plan.record.until}"
    if plan.took_over:
        line += f" (took over the expired hold of {plan.took_over})"
    line += f"; suspended {','.join(plan.suspend)}" if plan.suspend else "; nothing new to suspend"
    if plan.already:
        line += f"; already suspended, not ours: {','.join(plan.already)}"
    return line


def release_line(plan: ReleasePlan) -> str:
    if not plan.delete_tag:
        return f"{plan.group}: not held"
    line = f"{plan.group}: released"
    if plan.record is None:
        line += " (unreadable hold tag removed)"
    line += f"; resumed {','.join(plan.resume)}" if plan.resume else "; nothing to resume"
    if plan.kept:
        line += f"; still suspended, not ours: {','.join(plan.kept)}"
    return line


# --- the seam over Auto Scaling --------------------------------------------------------------

class FleetHold:
    """Holds and releases, through the five Auto Scaling calls they need."""

    def __init__(self, client) -> None:
        self._client = translated(client)

    def _call(self, what: str, operation, *args, **kwargs):
        """A client operation (by name) or a helper/aws/group_tags.py writer, its failure a HoldError."""
        try:
            if callable(operation):
                return operation(self._client, *args)
            return getattr(self._client, operation)(**kwargs)
        except AwsError as exc:
            raise HoldError(f"{what}: {explain(exc)}") from exc

    def describe(self, groups: list[str]) -> dict[str, GroupView]:
        """The groups that exist; a missing name is simply absent."""
        names, views = sorted(set(groups)), {}
        for start in range(0, len(names), GROUPS_PER_DESCRIBE):
            chunk = names[start:start + GROUPS_PER_DESCRIBE]
            try:
                pages = self._client.get_paginator("describe_auto_scaling_groups").paginate(
                    AutoScalingGroupNames=chunk)
                for page in pages:
                    for group in page["AutoScalingGroups"]:
                        tag = next((t.get("Value", "") for t in group.get("Tags", []) if t.get("Key") == TAG_KEY),
                                   None)
                        suspended = frozenset(p["ProcessName"] for p in group.get("SuspendedProcesses", []))
                        claims = {t["Key"]: t.get("Value", "") for t in group.get("Tags", [])
                                  if str(t.get("Key", "")).startswith(CLAIM_PREFIX)}
                        views[group["AutoScalingGroupName"]] = GroupView(group["AutoScalingGroupName"],
                                                                         suspended, tag, claims)
            except AwsError as exc:
                raise HoldError(f"describe {', '.join(chunk)}: {explain(exc)}") from exc
        return views

    def suspend(self, group: str, processes: tuple[str, ...]) -> None:
        if processes:  # never empty: an empty list suspends every process
            self._call(f"suspend {','.join(processes)} on {group}", "suspend_processes",
                       AutoScalingGroupName=group, ScalingProcesses=list(processes))

    def resume(self, group: str, processes: tuple[str, ...]) -> None:
        if processes:  # never empty: an empty list resumes every process, an operator's too
            self._call(f"resume {','.join(processes)} on {group}", "resume_processes",
                       AutoScalingGroupName=group, ScalingProcesses=list(processes))

    def write_tag(self, group: str, record: HoldRecord) -> None:
        self._call(f"tag {group}", write_group_tags, [(group, TAG_KEY, encode(record))])

    def delete_tag(self, group: str, key: str = TAG_KEY) -> None:
        self._call(f"untag {group}", delete_group_tags, [(group, key)])

    def write_claim(self, group: str, holder: str, now: datetime) -> None:
        self._call(f"claim {group}", write_group_tags, [(group, claim_key(holder), claim_value(holder_text(holder), now))])


# --- what the CLI and the consumer call ------------------------------------------------------

def hold(client, site: str, groups: list[str], processes=DEFAULT_PROCESSES, holder: str = "",
         ttl_s: float = DEFAULT_TTL_S, now: datetime | None = None) -> list[HoldPlan]:
    """Hold every group of `site`, or none: all are checked before any is changed.

    The tag is written before the processes are suspended, so a crash in between leaves a
    record (resuming a process that is not suspended does nothing), never a suspension
    nobody will resume.
    """
    try:
        wanted = check_processes(processes)
    except ValueError as exc:
        raise HoldError(f"hold {site}: {exc}") from None
    now = now or datetime.now(timezone.utc)
    seam = FleetHold(client)
    names = sorted(set(groups))
    views = seam.describe(names)
    missing = sorted(set(names) - set(views))
    if missing:
        raise HoldError(f"hold {site}: no Auto Scaling group named {', '.join(missing)}")
    for attempt in range(1, CLAIM_ATTEMPTS + 1):
        for g in names:  # refused before any claim when someone holds already (named in the error)
            plan_hold(views[g], wanted, holder, ttl_s, now)
        for g in names:
            seam.write_claim(g, holder, datetime.now(timezone.utc))
        try:
            views = seam.describe(names)  # read back: every claim, and a hold written meanwhile
            wall = datetime.now(timezone.utc)
            others = sorted({h for g in names for h in rivals(views[g].claims, holder, wall)})
            if not others:
                plans = [plan_hold(views[g], wanted, holder, ttl_s, now) for g in names]
                for plan in plans:
                    seam.write_tag(plan.group, plan.record)
                    seam.suspend(plan.group, plan.suspend)
                    log.info("event=fleet_held site=%s group=%s holder=%r until=%s suspended=%s", site, plan.group,
                             plan.record.holder, plan.record.until, ",".join(plan.suspend))
                return plans
        finally:
            for g in names:  # won or lost, the claim has done its work
                seam.delete_tag(g, claim_key(holder))
        # Two holders that saw each other's claims both stand back: after a jittered wait one of
        # them goes first and holds, and the other is then refused by the hold itself (naming it).
        if attempt < CLAIM_ATTEMPTS:
            threading.Event().wait(random.uniform(0, CLAIM_RETRY_MAX_S))
            views = seam.describe(names)
    raise HoldError(f"hold {site}: {', '.join(others)} is taking a hold on the same groups right now; "
                    "try again once it is done")


def _release(seam: FleetHold, plan: ReleasePlan) -> None:
    """Resume, then untag: a crash in between leaves a tag whose processes are resumed already."""
    seam.resume(plan.group, plan.resume)
    if plan.delete_tag:
        seam.delete_tag(plan.group)


def release(client, site: str, groups: list[str], holder: str | None = None) -> list[ReleasePlan | str]:
    """Release `site`'s groups: a plan per group released (or not held), a line per group left alone."""
    seam = FleetHold(client)
    views = seam.describe(groups)
    outcomes: list[ReleasePlan | str] = []
    for group in sorted(set(groups)):
        if group not in views:
            outcomes.append(ReleasePlan(group, (), (), None, False))  # gone: nothing to do
            continue
        plan = plan_release(views[group], holder)
        if isinstance(plan, ReleasePlan):
            _release(seam, plan)
            if plan.delete_tag:
                log.info("event=fleet_released site=%s group=%s resumed=%s", site, group, ",".join(plan.resume))
        outcomes.append(plan)
    return outcomes


def release_expired(client, groups: list[str], now: datetime | None = None) -> list[ReleasePlan]:
    """For the consumer's reconcile pass: release each hold whose `until` has passed."""
    now = now or datetime.now(timezone.utc)
    seam = FleetHold(client)
    released = []
    for group, view in sorted(seam.describe(groups).items()):
        record = decode(view.tag, now) if view.tag is not None else None
        if isinstance(record, Unreadable):
            log.warning("event=hold_tag_unreadable group=%s why=%r action=leave", group, record.why)
            continue
        if record is None or not is_expired(record, now):
            continue
        plan = plan_release(view)
        assert isinstance(plan, ReleasePlan)  # no holder given: never refused
        _release(seam, plan)
        log.warning("event=fleet_hold_expired group=%s holder=%r until=%s resumed=%s", group, record.holder,
                    record.until, ",".join(plan.resume))
        released.append(plan)
    return released
