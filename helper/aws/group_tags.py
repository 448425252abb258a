"""The one format of the tags this tool keeps on Auto Scaling groups, and the one writer of them.

The breaker (helper/breaker/state.py) and the fleet hold (helper/deploys/fleet_hold.py) both keep
their state as group tags; a tag of ours is the group's own, never propagated to the instances it
launches, and at most 256 characters (AWS's limit on a tag value). No botocore here: the client is
the caller's (translated, so a failure is an AwsError the caller names in its own words).
"""

from __future__ import annotations

from collections.abc import Iterable

GROUP_RESOURCE = "auto-scaling-group"
MAX_TAG_VALUE = 256
# CreateOrUpdateTags / DeleteTags: kept well under AWS's limit of tags a call.
TAGS_PER_CALL = 20


def group_tag(group: str, key: str, value: str | None = None) -> dict:
    """One tag of ours on a group; without a value, the form DeleteTags takes."""
    tag = {"ResourceId": group, "ResourceType": GROUP_RESOURCE, "Key": key}
    if value is not None:
        tag |= {"Value": value, "PropagateAtLaunch": False}  # the group's, never its instances'
    return tag


def write_group_tags(client, tags: Iterable[tuple[str, str, str]]) -> None:
    """Create or update (group, key, value) tags, TAGS_PER_CALL a call."""
    _each(client.create_or_update_tags, [group_tag(g, k, v) for g, k, v in tags])


def delete_group_tags(client, tags: Iterable[tuple[str, str]]) -> None:
    """Delete (group, key) tags, TAGS_PER_CALL a call."""
    _each(client.delete_tags, [group_tag(g, k) for g, k in tags])


def read_group_tags(client, groups: Iterable[str], keys: Iterable[str]) -> dict[str, dict[str, str]]:
    """group -> {key: value} of these keys on these groups (DescribeTags, every page)."""
    wanted = sorted(set(groups))
    found: dict[str, dict[str, str]] = {g: {} for g in wanted}
    filters = [{"Name": GROUP_RESOURCE, "Values": wanted}, {"Name": "key", "Values": list(keys)}]
    for page in client.get_paginator("describe_tags").paginate(Filters=filters):
        for tag in page["Tags"]:
            if tag.get("ResourceId") in found:
                found[tag["ResourceId"]][tag["Key"]] = tag.get("Value", "")
    return found


def _each(call, tags: list[dict]) -> None:
    for start in range(0, len(tags), TAGS_PER_CALL):
        call(Tags=tags[start:start + TAGS_PER_CALL])
