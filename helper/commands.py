"""What each command does, once its flags are read: small functions that load their flow when
they run, so a command imports only what it uses (`revision get` loads no AWS SDK:
tests/test_edges.py). helper/cli.py reads the flags and is the one error boundary.
"""

from __future__ import annotations

import gc
import logging
import sys

from helper import PROG
from helper.errors import EXIT_FAILED, ConfigError, HelperError


def run_inventory(args) -> int:
    # A one-shot run that builds ~100,000 short-lived objects (botocore's models and a
    # 1,000-instance response): the cyclic collector's passes over them cost a sixth of
    # the run's CPU, and whatever cycles remain are freed when the process exits.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _inventory(args)
    finally:
        if was_enabled:  # main() called in-process (tests) gets its collector back
            gc.enable()


def _inventory(args) -> int:
    from helper.inventory import collect, outputs
    from helper.settings import Settings

    settings = Settings.from_args(args)
    results = collect.collect(settings)
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"{PROG}: site {r.site}: {r.error}", file=sys.stderr)
    if failed and not settings.keep_going:
        print(f"{PROG}: {len(failed)} site(s) failed; no file was changed", file=sys.stderr)
        return EXIT_FAILED
    good = [r.inventory for r in results if r.inventory is not None]
    planned = outputs.plan(settings.outputs, good)
    changed = outputs.apply(planned, settings.dry_run, sys.stdout)
    sys.stdout.write(outputs.stdout_text(settings.outputs, good))
    verb = "would change" if settings.dry_run else "changed"
    logging.getLogger(PROG).info(
        "event=inventory_done sites=%d hosts=%d files=%d %s=%d",
        len(good), sum(len(s.hosts) for s in good), len(planned), verb.replace(" ", "_"), len(changed),
    )
    return EXIT_FAILED if failed else 0


def run_revision(args) -> int:
    from datetime import datetime, timezone

    from helper.deploys import revision
    from helper.settings import load_config, site_named

    if args.action == "check":
        print(revision.validate(args.revision or ""))
        return 0
    if not args.config or not args.site:
        raise ConfigError(f"revision {args.action} needs -c CONFIG and --site SITE")
    config = load_config(args.config)
    site = site_named(config, args.site)

    def revision_dir() -> str:
        if not config.paths.revision_dir:
            raise ConfigError(f"{config.path}: path.revision_dir is not set")
        return config.paths.revision_dir

    def recorded() -> str:
        found = revision.read(revision_dir(), site.name)
        if found is None:
            raise HelperError(f"site {site.name}: no revision recorded yet in {revision_dir()}")
        return found

    if args.action == "get":
        print(recorded())
    elif args.action == "resolve":
        print(revision.resolve(args.revision, args.scale_up, recorded))
    elif args.action == "history":
        current = revision.read(revision_dir(), site.name)
        for entry in reversed(revision.history(revision_dir(), site.name)):
            print(entry.line())
        if current is None:
            print(f"site {site.name}: no revision recorded yet", file=sys.stderr)
    elif args.action == "previous":  # the Jenkinsfile's ROLLBACK: where `rollback` would go
        entries = revision.history(revision_dir(), site.name)
        print(revision.rollback_target(entries, revision.read(revision_dir(), site.name), args.revision or None))
    else:
        where = revision_dir()
        if not args.revision:
            raise ConfigError("revision set needs --revision")
        revision.record_with_history(where, site.name, args.revision, datetime.now(timezone.utc),
                                     rollback_from=args.rollback_from or None)
    return 0


def run_consume(args) -> int:
    import signal
    import threading

    from helper.consumer.loop import Consumer
    from helper.consumer.metrics import MetricsServer
    from helper.consumer.sd_notify import Notifier
    from helper.settings import ConsumerSettings

    settings = ConsumerSettings.from_args(args)
    consumer = Consumer.from_settings(settings)
    consumer.notifier = Notifier()  # systemd's notify socket, when the unit is Type=notify
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    lc = settings.lifecycle
    server = None
    if lc.metrics_port is not None:
        server = MetricsServer(consumer.metrics, lc.metrics_host, lc.metrics_port, lc.stall_after_s).start()
        logging.getLogger(PROG).info("event=metrics_listening host=%s port=%d", lc.metrics_host, server.port)
    logging.getLogger(PROG).info("event=consumer_started queue=%s once=%s", lc.queue_url, settings.once)
    try:
        consumer.run(stop, once=settings.once)
    finally:
        if server is not None:
            server.stop()
    logging.getLogger(PROG).info("event=consumer_stopped")
    return 0


def run_hooks(args) -> int:
    from helper.settings import SetupSettings
    from helper.setup import hooks_apply

    settings = SetupSettings.from_args(args)
    api = hooks_apply.SetupApi.from_settings(settings)
    for line in hooks_apply.run(args.hooks_action, settings, api, force=getattr(args, "force", False)):
        print(line)
    return 0


def run_iam_policy(args) -> int:
    from helper.settings import load_config
    from helper.setup import iam_policy

    config = load_config(args.config) if args.config else None
    sys.stdout.write(iam_policy.render(config, args.principal))
    return 0


def run_doctor(args) -> int:
    from helper.settings import SetupSettings
    from helper.setup import doctor
    from helper.setup.findings import FAIL, Finding
    from helper.setup.hooks_apply import SetupApi

    try:
        settings = SetupSettings.from_args(args)
    except ConfigError as exc:  # a finding like any other, not a usage error
        print(Finding(FAIL, "config", str(exc), "fix the file and run doctor again").line())
        return EXIT_FAILED
    api = SetupApi.from_settings(settings)
    lines, broken = doctor.report(doctor.diagnose(settings, api))
    print("\n".join(lines))
    return EXIT_FAILED if broken else 0


def run_fleet(args) -> int:
    from helper.aws.clients import AccessKey, AwsClients
    from helper.deploys import fleet_hold
    from helper.settings import FleetSettings

    settings = FleetSettings.from_args(args)
    if not settings.groups:  # a site behind a load balancer or tags: nothing Auto Scaling could remove
        print(f"{settings.site.name}: no Auto Scaling group, nothing to {args.fleet_action}")
        return 0
    key = AccessKey.for_site(settings.site, settings.endpoint_url, settings.config.credentials,
                             settings.config.profile)
    client = AwsClients(key).autoscaling
    if args.fleet_action == "hold":
        for plan in fleet_hold.hold(client, settings.site.name, list(settings.groups), settings.processes,
                              settings.holder, settings.ttl_s):
            print(fleet_hold.hold_line(plan))
    else:
        for outcome in fleet_hold.release(client, settings.site.name, list(settings.groups), settings.holder):
            print(outcome if isinstance(outcome, str) else fleet_hold.release_line(outcome))
    return 0


def run_breaker(args) -> int:
    from helper.aws.clients import AccessKey, AwsClients
    from helper.breaker.alerts import Alerts, AlertTargets
    from helper.breaker.state import BreakerStore
    from helper.consumer.autoscaling import AutoScaling
    from helper.settings import SetupSettings
    from helper.setup import breaker_cmd

    settings = SetupSettings.from_args(args)
    lc = settings.config.lifecycle
    if lc is None:
        raise ConfigError(f"{settings.config.path}: no lifecycle: section, so no breaker")
    breaker_cmd.sites_of(lc, args.site)  # an unknown site is a usage error before any call
    clients = AwsClients(AccessKey(region=lc.region, endpoint_url=settings.endpoint_url,
                                   credentials=settings.config.credentials, profile=settings.config.profile))
    store, autoscaling = BreakerStore(clients.autoscaling), AutoScaling(clients.autoscaling)
    if args.breaker_action == "status":
        found = breaker_cmd.read(store, autoscaling, lc, args.site)
        sys.stdout.write(breaker_cmd.as_json(found) if args.json else breaker_cmd.table(found))
        return 0
    targets = AlertTargets(lc.alerts.sns_topic_arn, lc.alerts.webhook_url)
    alerts = Alerts(targets, sns=clients.client("sns") if targets.sns_topic_arn else None)
    try:
        print(breaker_cmd.reset_site(store, autoscaling, lc, args.site, alerts))
    finally:
        alerts.close(10.0)
    return 0


def run_status(args) -> int:
    import json

    from helper.aws.clients import AccessKey, AwsClients
    from helper.breaker.state import BreakerStore
    from helper.consumer.autoscaling import AutoScaling
    from helper.settings import SetupSettings
    from helper.setup import breaker_cmd, status, status_read

    settings = SetupSettings.from_args(args)
    config, lc = settings.config, settings.config.lifecycle
    if args.site is not None and args.site not in {s.name for s in config.sites}:
        raise ConfigError(f"--site {args.site}: no such site in {config.path} (sites: "
                          f"{', '.join(s.name for s in config.sites)})")
    breakers = lambda site: None  # noqa: E731 (no lifecycle section: no breaker)
    if lc is not None:
        clients = AwsClients(AccessKey(region=lc.region, endpoint_url=settings.endpoint_url,
                                       credentials=config.credentials, profile=config.profile))
        store, autoscaling = BreakerStore(clients.autoscaling), AutoScaling(clients.autoscaling)

        def breakers(site: str) -> dict | None:
            if site not in lc.routed_sites:
                return None
            (found,) = breaker_cmd.read(store, autoscaling, lc, site)
            s = found.state
            return {"state": s.state.value, "revision": s.revision, "failures": s.failures,
                    "since": s.since if s.is_open else None, "held": len(s.held)}
    found = status_read.read(settings, args.site, breakers)
    if args.json:
        print(json.dumps(status.as_json(found), indent=2))
    else:
        print("\n".join(status.lines(found)))
    return 1 if any(s.attention() for s in found) else 0


def run_rollout(args) -> int:
    from helper.setup import rollout_cmd

    return rollout_cmd.run(args)


def run_rollback(args) -> int:
    from helper.setup import rollout_cmd

    return rollout_cmd.rollback(args)
