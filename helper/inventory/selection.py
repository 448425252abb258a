"""Choose which of a site's instances the deploy step should reach. Pure functions."""

from __future__ import annotations

from helper.config.document import SiteFilters
from helper.errors import DiscoveryError
from helper.inventory.model import LIVE_STATES, Instance, Membership
from helper.settings import Selection


def _has_any(instance: Instance, wanted: tuple[tuple[str, tuple[str, ...]], ...]) -> list[bool]:
    tags = dict(instance.tags)
    return [tags.get(key) in values for key, values in wanted]


def kept_by(filters: SiteFilters, instance: Instance) -> bool:
    """True when the site's filters keep this instance: in a listed zone (if any), with every
    wanted tag (any of its values), with no excluded tag value, and not excluded by id."""
    if filters.availability_zones and instance.availability_zone not in filters.availability_zones:
        return False
    if instance.instance_id in filters.exclude_instance_ids:
        return False
    return all(_has_any(instance, filters.tags)) and not any(_has_any(instance, filters.exclude_tags))


def select(
    memberships: tuple[Membership, ...],
    instances: dict[str, Instance],
    selection: Selection,
    filters: SiteFilters = SiteFilters(),  # noqa: B008 (frozen: one shared default is safe)
) -> list[tuple[Instance, Membership]]:
    """The (instance, membership) pairs to deploy to, sorted by instance id.

    Always left out: instances EC2 reports stopped or terminated (a load balancer can
    still list them for a while). Left out unless asked for: instances the source does
    not call in service (Pending:Wait, unhealthy, draining, still starting), and those the
    site's filters leave out. A chosen instance that EC2 described with an unusable address
    fails the site.

    Instances named in the selection ignore the filters: the consumer names the instances
    Auto Scaling holds for this site, and leaving one out would let it take traffic
    without the deploy.
    """
    by_id = {m.instance_id: m for m in memberships}
    if selection.instance_ids:
        missing = sorted(selection.instance_ids - by_id.keys())
        if missing:
            raise DiscoveryError(f"instance(s) {', '.join(missing)} are not part of the site")
        chosen = [by_id[i] for i in selection.instance_ids]
    elif selection.include_out_of_service:
        chosen = list(memberships)
    else:
        chosen = [m for m in memberships if m.in_service]
    wanted_states = LIVE_STATES if (selection.include_out_of_service or selection.instance_ids) else ("running",)
    picked = []
    for member in chosen:
        instance = instances.get(member.instance_id)
        if instance is None or instance.state not in wanted_states:
            continue
        if selection.instance_ids or kept_by(filters, instance):
            picked.append((instance, member))
    for instance, _ in picked:
        if instance.problem:
            raise DiscoveryError(f"instance {instance.instance_id}: {instance.problem}")
    if selection.instance_ids and len(picked) != len(selection.instance_ids):
        gone = sorted(selection.instance_ids - {inst.instance_id for inst, _ in picked})
        raise DiscoveryError(f"instance(s) {', '.join(gone)} are not running")
    return sorted(picked, key=lambda pair: pair[0].instance_id)
