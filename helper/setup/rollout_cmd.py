"""`rollout run | plan | status | abort`: the command line's side of helper/deploys/rollout.py.

The site's hosts come from the inventory (the hosts in service now, as a full deploy sees them);
each batch gets its own inventory files, written by the inventory's own outputs, so the deploy
command reaches exactly the batch: SSH_CONFIG, KNOWN_HOSTS, CAP_CONFIG, ANSIBLE_INVENTORY and
DEPLOY_JSON name them, REVISION and ROLLOUT_BATCH say what and which. The command and the verify
command get argv lists (never a shell string) and the environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from argparse import Namespace
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from helper import PROG
from helper.aws.access import AccessKey
from helper.aws.clients import AwsClients, ModelUse
from helper.aws.processes import MAX_TTL_S
from helper.deploys import fleet_hold
from helper.deploys import revision as revisions
from helper.deploys.load_balancers import LoadBalancers
from helper.deploys.rollout import Rollout, abort
from helper.deploys.rollout_plan import Batch, Host, plan, wait_bounds_s
from helper.deploys.rollout_record import RolloutRecords
from helper.errors import EXIT_FAILED, ConfigError, HelperError
from helper.files.write import write_atomic
from helper.inventory import collect, outputs
from helper.inventory.discover import INVENTORY_MODELS
from helper.inventory.model import SiteInventory
from helper.settings import Settings, load_config, site_named

EXIT_NEEDS_A_PERSON = 1


def _inventory_args(args: Namespace, out: Path | None = None) -> Namespace:
    """The flags `inventory` would get: one site, its files into `out`."""
    return Namespace(
        config=args.config, endpoint_url=args.endpoint_url, site=[args.site],
        instance_ids=None, include_out_of_service=False,
        ssh_config=str(out / "ssh_config") if out else None, ssh_config_block=False,
        known_hosts=(args.known_hosts or str(out / "known_hosts")) if out else None,
        cap_config=str(out / "cap.yml") if out else None,
        ansible_inventory=str(out / "inventory.yml") if out else None, json=str(out / "hosts.json") if out else None,
        list=False, keep_going=False, dry_run=False)


# What a rollout calls besides discovery (helper/deploys/load_balancers.py, rollout_record.py,
# fleet_hold.py): its clients are discovery's, on models cut down to both, so a rollout parses
# EC2's 16 MB model once, cut, instead of twice (bench/rollout.py: ~0.5 s of a 13 s rollout). An
# operation left out here still runs, on the full model, with a warning (errors.Translated).
ROLLOUT_MODELS = {
    service: ModelUse(INVENTORY_MODELS[service].operations | frozenset(more), INVENTORY_MODELS[service].shapes_read)
    for service, more in (
        ("ec2", {"CreateTags", "DescribeTags", "DeleteTags"}),
        ("elbv2", {"RegisterTargets", "DeregisterTargets", "DescribeTargetGroupAttributes"}),
        ("elb", {"RegisterInstancesWithLoadBalancer", "DeregisterInstancesFromLoadBalancer",
                 "DescribeLoadBalancerAttributes"}),
        ("autoscaling", {"SuspendProcesses", "ResumeProcesses", "CreateOrUpdateTags", "DeleteTags", "DescribeTags"}),
    )
}


def _site_inventory(args: Namespace) -> tuple[Settings, SiteInventory, AwsClients | None]:
    """The site's hosts in service now, found once before anything changes: a deregistered host
    is no longer in its target group, so a batch's files cannot be found afresh later. Also the
    clients discovery made (ROLLOUT_MODELS), for the rollout to go on with."""
    settings = Settings.from_args(_inventory_args(args))
    made: list[AwsClients] = []

    def clients_for(key: AccessKey) -> AwsClients:
        made.append(AwsClients(key, models_used=ROLLOUT_MODELS))
        return made[-1]

    (result,) = collect.collect(settings, clients_for)
    if result.error:
        raise HelperError(f"site {args.site}: {result.error}")
    return settings, result.inventory, (made[0] if len(made) == 1 else None)


def _write_batch(args: Namespace, inventory: SiteInventory, instance_ids: tuple[str, ...], out: Path) -> None:
    """The inventory's own outputs for only these hosts (known_hosts keeps the others' keys)."""
    settings = Settings.from_args(_inventory_args(args, out))
    batch = replace(inventory, hosts=tuple(h for h in inventory.hosts if h.instance.instance_id in instance_ids))
    out.mkdir(parents=True, exist_ok=True)
    outputs.apply(outputs.plan(replace(settings.outputs, prune_known_hosts=False), [batch]), False, sys.stderr)


@contextmanager
def _fleet_held(autoscaling, site: str, groups: tuple[str, ...], holder: str, ttl_s: float):
    """The rollout under the fleet hold, so no scale-in or health replacement takes a drained host
    away. A hold this holder has already (the Jenkinsfile's Hold fleet stage) stays the holder's to
    release; one the rollout took, it releases, whatever happened. A killed rollout's hold expires
    after ttl_s and the consumer releases it. Another holder's hold refuses the rollout before it
    changes anything (another full deploy is rolling the site)."""
    if not groups:
        yield
        return
    plans = fleet_hold.hold(autoscaling, site, list(groups), holder=holder, ttl_s=min(ttl_s, MAX_TTL_S))
    try:
        yield
    finally:
        if not any(p.extended for p in plans):
            fleet_hold.release(autoscaling, site, list(groups), holder)


def _holder(args: Namespace) -> str:
    return args.holder or os.environ.get("BUILD_URL") or \
        f"{os.environ.get('USER') or os.environ.get('LOGNAME') or 'unknown'}@{socket.gethostname()}"


def run(args: Namespace) -> int:
    if args.rollout_action == "plan" and args.configured:  # the Jenkinsfile's question, from the file alone
        print("true" if site_named(load_config(args.config), args.site).rollout else "false")
        return 0
    settings, inventory, clients = _site_inventory(args)
    site = site_named(settings.config, args.site)
    clients = clients or AwsClients(AccessKey.for_site(site, settings.endpoint_url, settings.config.credentials,
                                                       settings.config.profile), models_used=ROLLOUT_MODELS)
    lbs, records = LoadBalancers(clients.elbv2, clients.elb), RolloutRecords(clients.client("ec2"))
    if args.rollout_action == "status":
        return _status(records, args.site)
    if args.rollout_action == "abort":
        serving = {m.target for m in lbs.memberships(sorted({h.instance.instance_id for h in inventory.hosts}))}
        restored, left = abort(records, lbs, args.site, holder=args.holder, serving=serving)
        print(f"{args.site}: {len(restored)} host(s) put back ({' '.join(restored) or '-'}); "
              f"{len(left)} failed host(s) left out ({' '.join(left) or '-'})")
        return 0
    config = site.rollout
    if config is None:
        raise ConfigError(f"{settings.config.path}: site {args.site} has no rollout: section (docs/rollout.md)")
    ids = sorted({h.instance.instance_id for h in inventory.hosts})
    members = lbs.memberships(ids)
    unhealthy = lbs.unhealthy(members)
    zones = {h.instance.instance_id: h.instance.availability_zone or "" for h in inventory.hosts}
    hosts = [Host(i, zones[i], i not in unhealthy) for i in ids]
    the_plan = plan(args.site, hosts, config)
    timings = lbs.timing(members)
    drain_s, healthy_s = wait_bounds_s([t.drain_s for t in timings], [t.health_check for t in timings])
    lines = the_plan.lines() + [f"  each batch: drain up to {min(drain_s, config.drain_timeout_s):.0f} s, healthy "
                                f"within {min(healthy_s, config.healthy_timeout_s):.0f} s; "
                                f"{len(members)} registration(s) in {len({m.target for m in members})} load balancer(s)"]
    if args.rollout_action == "plan" or args.dry_run:
        print("\n".join(lines + ([f"  {m.instance_id} in {m.kind} {m.target}{':' + str(m.port) if m.port else ''}"
                                  for m in members] if args.dry_run else [])))
        return 0
    if not args.revision:
        raise ConfigError("rollout run needs --revision")
    revisions.validate(args.revision)
    if not args.deploy_command:
        raise ConfigError("rollout run needs the deploy command after `--`")
    previous = args.previous or (revisions.read(settings.config.paths.revision_dir, args.site)
                                 if settings.config.paths.revision_dir else None)
    print("\n".join(lines), flush=True)
    out_dir = Path(args.out_dir).absolute()

    def run_batch(batch: Batch, revision: str) -> tuple[bool, str]:
        batch_dir = out_dir / f"batch-{batch.number}"
        _write_batch(args, inventory, batch.instance_ids, batch_dir)
        known_hosts = args.known_hosts or str(batch_dir / "known_hosts")
        env = {**os.environ, "SSH_CONFIG": str(batch_dir / "ssh_config"), "KNOWN_HOSTS": known_hosts,
               "CAP_CONFIG": str(batch_dir / "cap.yml"), "ANSIBLE_INVENTORY": str(batch_dir / "inventory.yml"),
               "DEPLOY_JSON": str(batch_dir / "hosts.json"), "REVISION": revision, "ROLLOUT_BATCH": str(batch.number)}
        print(f"{PROG}: batch {batch.number}: {' '.join(batch.instance_ids)}", file=sys.stderr, flush=True)
        for what, argv in (("deploy", list(args.deploy_command)), ("verify", list(config.verify))):
            if not argv:
                continue
            try:
                status = subprocess.run(argv, env=env, check=False).returncode
            except OSError as exc:
                return False, f"{what} command could not start: {exc.strerror}"
            if status != 0:
                return False, f"{what} command exited with status {status}"
        return True, ""

    holder = _holder(args)
    groups = settings.config.hold_groups(args.site, region=site.region)
    with _fleet_held(clients.autoscaling, args.site, groups, holder, config.ttl_s):
        report = Rollout(the_plan, config, lbs, records, run_batch, holder).run(args.revision, previous)
    print("\n".join(report.lines()))
    if args.report:
        write_atomic(args.report, json.dumps(report.as_json(), indent=2) + "\n")
    return 0 if report.succeeded else EXIT_FAILED


def _status(records: RolloutRecords, site: str) -> int:
    from datetime import datetime, timezone

    found, problems = records.read(site)
    now = datetime.now(timezone.utc)
    for record in found:
        where = ", ".join(f"{m.kind} {m.target}{':' + str(m.port) if m.port else ''}" for m in record.memberships) or "-"
        print(f"{record.instance_id} {record.state} by {record.holder} until {record.until}"
              f"{' (EXPIRED: rollout abort puts it back)' if record.expired(now) and record.state == 'out' else ''}"
              f" from {where}")
    for problem in problems:
        print(f"unreadable: {problem}")
    if not found and not problems:
        print(f"{site}: no host taken out by a rollout")
    return EXIT_NEEDS_A_PERSON if found or problems else 0


def rollback(args: Namespace) -> int:
    """`rollback`: a rollout of the revision the site ran before, recorded (with where it came
    from, so a second rollback goes further back) only when every host runs it."""
    from datetime import datetime, timezone

    config = load_config(args.config)
    site_named(config, args.site)
    where = config.paths.revision_dir
    if not where:
        raise ConfigError(f"{config.path}: path.revision_dir is not set: a rollback reads the site's history there")
    current = revisions.read(where, args.site)
    target = revisions.rollback_target(revisions.history(where, args.site), current, args.to)
    print(f"{args.site}: rolling back from {current or '(no record)'} to {target}", flush=True)
    rolled = Namespace(**vars(args), rollout_action="run", revision=target, previous=current, configured=False)
    status = run(rolled)
    if status == 0 and not args.dry_run:
        revisions.record_with_history(where, args.site, target, datetime.now(timezone.utc),
                                      rollback_from=current if current != target else None)
    return status
