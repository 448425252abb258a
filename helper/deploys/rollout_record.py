"""What a rollout took out of its load balancers, kept where every replica and a person can see it.

Tags on each instance taken out, written BEFORE it is deregistered and removed only after it is
back and healthy, so a rollout killed at any point leaves a record of every host it took out:

    aws-deploy-helper:rollout   = v1;site=web;state=out;until=2026-12-05T10:00:00Z;by=https://ci/job/web/7/
    aws-deploy-helper:rollout:1 = tg|arn:aws:elasticloadbalancing:...:targetgroup/web/0123|8080
    aws-deploy-helper:rollout:2 = elb|web-classic|

`state=failed` marks a host whose deploy failed: `rollout abort` and the expiry leave it out (a
person decides); every other recorded host is put back where the record says, and only there.
A record past its `until` is expired: `rollout status` says so and `rollout abort` restores it.
The tag values are read as untrusted text: a record that does not parse is reported, not acted on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from helper import PROG
from helper.aws.errors import AwsError, translated
from helper.aws.names import EC2_RESOURCES_PER_CALL, chunks
from helper.deploys.fleet_hold import holder_text
from helper.deploys.load_balancers import Membership

KEY = f"{PROG}:rollout"
MEMBER_PREFIX = f"{KEY}:"
FORMAT_VERSION = "v1"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
STATES = ("out", "failed")
MAX_MEMBERSHIPS = 40  # EC2 allows 50 tags an instance; leave the owner's own room


class RecordError(Exception):
    """The record could not be read or written."""


@dataclass(frozen=True)
class Record:
    instance_id: str
    site: str
    state: str  # "out" or "failed"
    until: str
    holder: str
    memberships: tuple[Membership, ...]

    def expired(self, now: datetime) -> bool:
        return now >= datetime.strptime(self.until, TIME_FORMAT).replace(tzinfo=timezone.utc)


def stamp(now: datetime, ttl_s: float) -> str:
    return (now + timedelta(seconds=ttl_s)).astimezone(timezone.utc).strftime(TIME_FORMAT)


def encode_head(site: str, state: str, until: str, holder: str) -> str:
    # At most 115 characters before the holder (a 63-character site) and 101 of holder: never cut,
    # so `rollout abort --holder` compares the holder as written.
    return f"{FORMAT_VERSION};site={site};state={state};until={until};by={holder_text(holder)}"


def decode(instance_id: str, tags: dict[str, str]) -> Record | str:
    """The record in one instance's tags, or why it cannot be read."""
    head = tags.get(KEY, "")
    parts = head.split(";", 4)
    if len(parts) != 5 or parts[0] != FORMAT_VERSION:
        return f"{instance_id}: unreadable rollout tag"
    fields = dict(p.partition("=")[::2] for p in parts[1:])
    if fields.get("state") not in STATES or not TIME_RE.fullmatch(fields.get("until", "")):
        return f"{instance_id}: unreadable rollout tag"
    members = []
    for key, value in sorted(tags.items()):
        if key.startswith(MEMBER_PREFIX):
            member = Membership.decode(instance_id, value)
            if member is None:
                return f"{instance_id}: unreadable membership tag {key}"
            members.append(member)
    return Record(instance_id, fields.get("site", ""), fields["state"], fields["until"], fields.get("by", ""),
                  tuple(members))


class RolloutRecords:
    """The EC2 side: write, mark, read and clear the records."""

    def __init__(self, ec2) -> None:
        self._ec2 = translated(ec2)

    def take_out(self, site: str, holder: str, until: str, memberships: list[Membership]) -> None:
        """One record per host; hosts whose records read the same are tagged in one call (a batch
        of hosts behind the same load balancers costs one CreateTags, not one per host)."""
        by_instance: dict[str, list[Membership]] = {}
        for m in memberships:
            by_instance.setdefault(m.instance_id, []).append(m)
        same: dict[tuple[tuple[str, str], ...], list[str]] = {}
        for instance_id, members in sorted(by_instance.items()):
            if len(members) > MAX_MEMBERSHIPS:
                raise RecordError(f"{instance_id} is in {len(members)} load balancers; at most {MAX_MEMBERSHIPS}")
            tags = ((KEY, encode_head(site, "out", until, holder)),)
            tags += tuple((f"{MEMBER_PREFIX}{n}", m.encode()) for n, m in enumerate(members, 1))
            same.setdefault(tags, []).append(instance_id)
        for tags, instance_ids in same.items():
            for chunk in chunks(instance_ids, EC2_RESOURCES_PER_CALL):
                self._call("create_tags", Resources=chunk, Tags=[{"Key": k, "Value": v} for k, v in tags])

    def mark_failed(self, record: Record) -> None:
        head = encode_head(record.site, "failed", record.until, record.holder)
        self._call("create_tags", Resources=[record.instance_id], Tags=[{"Key": KEY, "Value": head}])

    def clear(self, instance_ids: list[str]) -> None:
        """Delete the records of these hosts: one DeleteTags per EC2_RESOURCES_PER_CALL hosts, naming
        every key a record can have, unread (a key without a value deletes the tag whatever its value;
        a key a host lacks is a no-op), so a batch costs no DescribeTags to end."""
        keys = [{"Key": KEY}] + [{"Key": f"{MEMBER_PREFIX}{n}"} for n in range(1, MAX_MEMBERSHIPS + 1)]
        for chunk in chunks(sorted(instance_ids), EC2_RESOURCES_PER_CALL):
            self._call("delete_tags", Resources=chunk, Tags=keys)

    def read(self, site: str | None = None) -> tuple[list[Record], list[str]]:
        """(records of the site, or of every site; problems with unreadable ones)."""
        try:
            pages = self._ec2.get_paginator("describe_tags").paginate(
                Filters=[{"Name": "resource-type", "Values": ["instance"]}, {"Name": "key", "Values": [KEY]}])
            ids = sorted({t["ResourceId"] for page in pages for t in page["Tags"]})
        except AwsError as exc:
            raise RecordError(f"read rollout records: {exc}") from exc
        records, problems = [], []
        for instance_id, tags in sorted(self._tags_of(ids).items()):
            found = decode(instance_id, tags)
            if isinstance(found, str):
                problems.append(found)
            elif site is None or found.site == site:
                records.append(found)
        return records, problems

    def _tags_of(self, instance_ids: list[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        try:
            for chunk in chunks(instance_ids, EC2_RESOURCES_PER_CALL):
                for page in self._ec2.get_paginator("describe_tags").paginate(
                        Filters=[{"Name": "resource-id", "Values": chunk}]):
                    for t in page["Tags"]:
                        out.setdefault(t["ResourceId"], {})[t["Key"]] = t.get("Value", "")
        except AwsError as exc:
            raise RecordError(f"read rollout records: {exc}") from exc
        return out

    def _call(self, name: str, **kwargs) -> None:
        try:
            getattr(self._ec2, name)(**kwargs)
        except AwsError as exc:
            raise RecordError(f"{name} for the rollout record: {exc}") from exc
