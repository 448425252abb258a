"""The inventory run: discover every site, select, name. No files are touched here.

Sites that share an account and region are handled by one worker with one set of
clients, and their instances are described together (one DescribeInstances per 1,000
instances, however many sites share them). Different accounts or regions run in
parallel.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from helper.aws.clients import AccessKey, AwsClients
from helper.aws.errors import AwsError, explain
from helper.config.document import SiteConfig
from helper.errors import DiscoveryError
from helper.inventory.discover import INVENTORY_MODELS, Discovered, auto_scaling_group, describe_instances, discover
from helper.inventory.model import SiteInventory
from helper.inventory.naming import drop_clashing_tag_aliases, name_hosts
from helper.inventory.selection import Selection, select
from helper.settings import Settings

log = logging.getLogger(__name__)

ClientFactory = Callable[[AccessKey], AwsClients]


def inventory_clients(key: AccessKey) -> AwsClients:
    """Clients on models cut down to what discovery uses (INVENTORY_MODELS)."""
    return AwsClients(key, models_used=INVENTORY_MODELS)


@dataclass(frozen=True)
class _Run:
    """What every worker needs to know about this run besides its own sites."""

    selection: Selection
    # Site -> the lifecycle groups a scale-up build's named instances may still wait in.
    launching_groups: dict[str, tuple[str, ...]]
    # Every configured site's name: no host's tag role may take a site's Ansible group.
    site_names: tuple[str, ...]


@dataclass(frozen=True)
class SiteResult:
    site: str
    inventory: SiteInventory | None = None
    error: str | None = None



def _with_launching(clients: AwsClients, found: Discovered, selection: Selection,
                    groups: tuple[str, ...]) -> Discovered:
    """Add named instances that are still launching in the site's lifecycle groups.

    A scale-up build names instances held in Pending:Wait: a load balancer does not list
    them until their action completes, but the group the consumer routed them from does.
    """
    missing = selection.instance_ids - {m.instance_id for m in found.memberships}
    extra: list = []
    for group in groups if missing else ():
        extra.extend(m for m in auto_scaling_group(clients, group).memberships if m.instance_id in missing)
    if not extra:
        return found
    return Discovered(found.memberships + tuple(extra), found.instances)


def _collect_group(clients: AwsClients, sites: list[SiteConfig], run: _Run) -> list[SiteResult]:
    found: dict[str, Discovered] = {}
    results: dict[str, SiteResult] = {}
    selection = run.selection
    for site in sites:
        try:
            found[site.name] = discover(clients, site)
            if selection.instance_ids and run.launching_groups.get(site.name):
                found[site.name] = _with_launching(clients, found[site.name], selection,
                                                   run.launching_groups[site.name])
        except (DiscoveryError, AwsError) as exc:
            # "not found" alone sent a newcomer looking in the wrong region (issue 24): name it.
            error = explain(exc)
            results[site.name] = SiteResult(site.name, error=f"{error} in region {site.region}"
                                            if error.endswith("not found") else error)
    known = {i: inst for d in found.values() for i, inst in d.instances.items()}
    to_describe = {m.instance_id for d in found.values() for m in d.memberships} - known.keys()
    try:
        known.update(describe_instances(clients, to_describe))
    except AwsError as exc:
        reason = f"describing instances: {explain(exc)}"
        return [results.get(s.name) or SiteResult(s.name, error=reason) for s in sites]
    for site in sites:
        if site.name in results:
            continue
        try:
            chosen = select(found[site.name].memberships, known, selection, site.filters)
            inventory = name_hosts(site, chosen, clients.key.profile, run.site_names)
            results[site.name] = SiteResult(site.name, inventory=inventory)
        except DiscoveryError as exc:
            results[site.name] = SiteResult(site.name, error=str(exc))
    return [results[s.name] for s in sites]


def _guarded(factory: ClientFactory, key: AccessKey, sites: list[SiteConfig], run: _Run):
    try:
        return _collect_group(factory(key), sites, run)
    except AwsError as exc:  # e.g. assuming the role failed
        return [SiteResult(s.name, error=explain(exc)) for s in sites]


def _unique_tag_aliases(results: list[SiteResult]) -> list[SiteResult]:
    named = drop_clashing_tag_aliases(r.inventory for r in results if r.inventory is not None)
    by_site = {inventory.site: inventory for inventory in named}
    return [SiteResult(r.site, inventory=by_site[r.site]) if r.inventory is not None else r for r in results]


def collect(settings: Settings, factory: ClientFactory = inventory_clients) -> list[SiteResult]:
    """One result per selected site, in config order; failures carry a one-line reason."""
    groups: dict[AccessKey, list[SiteConfig]] = {}
    for site in settings.sites:
        key = AccessKey.for_site(site, settings.endpoint_url, settings.config.credentials, settings.config.profile)
        groups.setdefault(key, []).append(site)
    run = _Run(settings.selection, settings.launching_groups or {},
               tuple(site.name for site in settings.config.sites))
    if len(groups) == 1:  # one account and region: no thread to wait on
        ((key, sites),) = groups.items()
        by_site = {r.site: r for r in _guarded(factory, key, sites, run)}
    else:
        workers = max(1, min(settings.max_workers, len(groups)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="discover") as pool:
            futures = [pool.submit(_guarded, factory, key, sites, run)
                       for key, sites in groups.items()]
            by_site = {r.site: r for f in futures for r in f.result()}
    results = _unique_tag_aliases([by_site[s.name] for s in settings.sites])
    for r in results:
        if r.inventory is not None:
            log.info("event=site_discovered site=%s hosts=%d", r.site, len(r.inventory.hosts))
    return results
