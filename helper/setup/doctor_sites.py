"""doctor's site checks: each site resolves to instances, and its rolling deploy can finish
inside the Jenkinsfile's timeout.

A target group's deregistration delay is 300 s unless someone lowered it, and a rollout waits it
out per batch when requests are in flight: eight batches of a site behind such a group can take
longer than the hour the Jenkinsfile gives a build, and Jenkins then aborts the deploy half-way
(its post aborts the rollout, and the site is half on each revision). The estimate uses the
rollout's own plan and wait bounds (helper/deploys/rollout_plan.py), so the two never disagree.
"""

from __future__ import annotations

from helper.aws.access import AccessKey
from helper.aws.clients import AwsClients
from helper.deploys.load_balancers import LoadBalancerError, LoadBalancers
from helper.deploys.rollout_plan import Host, plan, wait_bounds_s, worst_case_s
from helper.errors import HelperError
from helper.setup.findings import FAIL, OK, WARN, Finding

# The shipped Jenkinsfile's `options { timeout(time: 60, unit: 'MINUTES') }` (a test reads the
# Jenkinsfile and holds this to it).
JENKINSFILE_TIMEOUT_S = 3600


def site_results(settings) -> list:
    """Every site resolved once, as the inventory does: read by check_sites and check_rollouts."""
    from helper.inventory import collect
    from helper.settings import Outputs, Settings

    return collect.collect(Settings(config=settings.config, outputs=Outputs(), endpoint_url=settings.endpoint_url))


def check_sites(results) -> list[Finding]:
    found = []
    for r in results:
        if r.error:
            found.append(Finding(FAIL, f"site {r.site}", f"does not resolve: {r.error}",
                                 "check the site's source name, region and credentials"))
        elif not r.inventory.hosts:
            found.append(Finding(WARN, f"site {r.site}", "has no instance in service (a full deploy would do nothing)"))
        else:
            found.append(Finding(OK, f"site {r.site}", f"resolves to {len(r.inventory.hosts)} instance(s) in service"))
    return found


def check_rollouts(settings, results, timeout_s: float = JENKINSFILE_TIMEOUT_S) -> list[Finding]:
    """One finding per site with a rollout: section that resolved (`results`: the inventory's)."""
    config = settings.config
    found = []
    for result in results:
        site = next((s for s in config.sites if s.name == result.site), None)
        if site is None or site.rollout is None or result.error or not result.inventory.hosts:
            continue
        try:
            clients = AwsClients(AccessKey.for_site(site, settings.endpoint_url, config.credentials, config.profile))
            lbs = LoadBalancers(clients.elbv2, clients.elb)
            ids = sorted({h.instance.instance_id for h in result.inventory.hosts})
            members = lbs.memberships(ids)
            timings = lbs.timing(members)
            unhealthy = lbs.unhealthy(members)
            zones = {h.instance.instance_id: h.instance.availability_zone or "" for h in result.inventory.hosts}
            the_plan = plan(site.name, [Host(i, zones[i], i not in unhealthy) for i in ids], site.rollout)
        except (LoadBalancerError, HelperError) as exc:
            found.append(Finding(WARN, f"rollout {site.name}", f"could not be estimated: {exc}",
                                 f"run: rollout plan -c {config.path} --site {site.name}"))
            continue
        drain_s, healthy_s = wait_bounds_s([t.drain_s for t in timings], [t.health_check for t in timings])
        estimate_s = worst_case_s(the_plan, site.rollout, drain_s, healthy_s)
        batches = len(the_plan.batches)
        if estimate_s <= timeout_s:
            found.append(Finding(OK, f"rollout {site.name}", f"{batches} batch(es), waits at most "
                                 f"{estimate_s / 60:.0f} min, within the Jenkinsfile's {timeout_s / 60:.0f} min"))
            continue
        try:
            delays = ", ".join(_delays(lbs, members)) or "none"
        except LoadBalancerError as exc:
            delays = f"unreadable ({exc})"
        found.append(Finding(
            WARN, f"rollout {site.name}",
            f"{batches} batch(es) may wait {estimate_s / 60:.0f} min (drain up to {min(drain_s, site.rollout.drain_timeout_s):g} s"
            f" and healthy up to {min(healthy_s, site.rollout.healthy_timeout_s):g} s a batch; deregistration delays: "
            f"{delays}), plus {batches} x the deploy command's own time: longer than the Jenkinsfile's "
            f"{timeout_s / 60:.0f} min timeout, which would abort the deploy half-way",
            "lower the target groups' deregistration delay (aws elbv2 modify-target-group-attributes --target-group-arn "
            "ARN --attributes Key=deregistration_delay.timeout_seconds,Value=30; a classic ELB's: aws elb "
            "modify-load-balancer-attributes, ConnectionDraining Timeout), raise rollout.batch or lower "
            "rollout.drain_timeout_s, or raise the Jenkinsfile's timeout(time: ..., unit: 'MINUTES') (doctor "
            f"assumes the shipped {timeout_s / 60:.0f} min)"))
    return found


def _name(kind: str, target: str) -> str:
    """A target group by its name (arn:...:targetgroup/NAME/id), a classic ELB by its own."""
    return f"target group {target.split('/')[1]}" if kind == "tg" and target.count("/") >= 2 else f"classic ELB {target}"


def _delays(lbs: LoadBalancers, members) -> list[str]:
    """Each load balancer of the site with its deregistration delay, by name: one timing() per
    load balancer, since a Timing does not say whose it is (only read for a warning)."""
    found = []
    for kind, target in sorted({(m.kind, m.target) for m in members}):
        drain_s = max((t.drain_s for t in lbs.timing([m for m in members if m.target == target])), default=0.0)
        found.append(f"{_name(kind, target)} {drain_s:g} s")
    return found
