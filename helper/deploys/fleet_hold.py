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

Decisions are pure functions (`plan_hold`, `plan_release`, `is_expired`, in hold_record.py); `FleetHold` is the
only code that talks to AWS, through an Auto Scaling client passed in.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import datetime, timezone

from helper.aws.errors import AwsError, explain, translated
from helper.aws.group_tags import delete_group_tags, write_group_tags
from helper.aws.names import AUTOSCALING_NAMES_PER_CALL
from helper.aws.processes import DEFAULT_PROCESSES, DEFAULT_TTL_S, check_processes
from helper.deploys.hold_claim import CLAIM_PREFIX, claim_key, claim_value, rivals
from helper.deploys.hold_record import (  # noqa: F401 (importers take the record's names from here too)
    HOLDER_MAX_CHARS,
    MAX_TAG_VALUE,
    TAG_KEY,
    GroupView,
    HoldError,
    HoldPlan,
    HoldRecord,
    ReleasePlan,
    Unreadable,
    decode,
    encode,
    hold_line,
    holder_text,
    is_expired,
    plan_hold,
    plan_release,
    release_line,
)

log = logging.getLogger(__name__)

# Two holders whose claims crossed both withdraw and try again after a random wait of up to
# CLAIM_RETRY_MAX_S, so one of them holds (a crossing takes the few ms between a write and its
# read-back; the odds of crossing again fall with each try).
CLAIM_ATTEMPTS = 4
CLAIM_RETRY_MAX_S = 0.5
GROUPS_PER_DESCRIBE = AUTOSCALING_NAMES_PER_CALL

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
