"""A fleet hold's record and decisions, pure: the group tag's format, who holds until when, what
to suspend and what to resume (helper/deploys/fleet_hold.py reads and writes them on AWS).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from helper import PROG
from helper.aws.group_tags import MAX_TAG_VALUE
from helper.aws.processes import HOLDABLE, MAX_TTL_S, ordered
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
