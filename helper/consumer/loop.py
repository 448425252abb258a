"""The lifecycle consumer: receive -> parse -> route -> batch -> deploy -> complete -> delete.

One loop like rq's Worker.work(): a stop flag set by SIGTERM/SIGINT, narrow excepts, a
back-off after receive errors, and teardown in `finally`. Deployments run in threads
(helper/consumer/deployment.py); this loop only feeds them. What it does every reconcile interval
(find launches no message told us about, expire fleet holds, read the breakers) is its own object,
helper/consumer/maintenance.py.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from functools import partial

from helper.breaker.sites import SiteBreakers
from helper.config.lifecycle import LifecycleConfig
from helper.consumer import sd_notify
from helper.consumer.action import TERMINATING, LifecycleAction, Malformed, Skip, parse
from helper.consumer.autoscaling import AutoScaling
from helper.consumer.backoff import backoff_s
from helper.consumer.batcher import Batcher
from helper.consumer.context import Context
from helper.consumer.deployment import Deployment
from helper.consumer.inflight import Admission, InFlight, Tracked
from helper.consumer.jenkins_client import JenkinsJobs
from helper.consumer.maintenance import Maintenance
from helper.consumer.messages import Messages
from helper.consumer.metrics import Metrics
from helper.consumer.parked import ParkedLaunches
from helper.consumer.plan import BatchKey, Handover, Parked, Plan
from helper.consumer.rollout_expiry import ExpiredRollouts
from helper.consumer.sqs import Message, Queue, QueueError

log = logging.getLogger(__name__)

# Deployments waiting on Jenkins at once. Each is a thread that mostly sleeps; the
# batch size keeps a burst of 200 launches near ten of them.
MAX_DEPLOYMENTS = 64
# `consume --once` gives up after this many failed receives in a row (about 5 s of back-off):
# a queue that does not exist, or no permission, is not going to heal within a cron run.
ONCE_RECEIVE_ATTEMPTS = 5


class Consumer:
    def __init__(self, config: LifecycleConfig, queue: Queue, autoscaling: AutoScaling, jobs: JenkinsJobs,
                 metrics: Metrics | None = None, clock=time.monotonic, breakers: SiteBreakers | None = None,
                 hold_groups: tuple[str, ...] = (), rollouts: ExpiredRollouts | None = None) -> None:
        self.config = config
        # Every group a fleet hold can cover in our region (sites' asg: groups too), not only the
        # routed ones: a killed build's hold on a site's own group must expire as well (issue 19 item 6).
        self.hold_groups = tuple(sorted(set(hold_groups) | set(config.groups)))
        self.queue = queue
        self.autoscaling = autoscaling
        self.jobs = jobs
        self.clock = clock
        self.metrics = metrics or Metrics(clock)
        # systemd's READY/WATCHDOG/STOPPING (sd_notify.py); run_consume gives the real one.
        self.notifier = sd_notify.DISABLED
        self.inflight = InFlight(clock)
        self.metrics.in_flight.set_function(lambda: len(self.inflight))
        self.batcher: Batcher[BatchKey, Tracked] = Batcher(config.batch_window_s, config.batch_max_instances)
        self.messages = Messages(queue, self.metrics)
        # Set after the grace period on shutdown: deployments release their actions.
        self.release = threading.Event()
        self.context = Context(config, self.messages, autoscaling, jobs, self.metrics, clock, self.release, breakers)
        self.breakers = breakers
        self.parked = ParkedLaunches(self.context, breakers, self.inflight.finish) if breakers else None
        self._pool = ThreadPoolExecutor(max_workers=MAX_DEPLOYMENTS, thread_name_prefix="deploy")
        self._futures: set[Future] = set()
        self._futures_lock = threading.Lock()
        self.maintenance = Maintenance(config.groups, self.hold_groups, autoscaling, self.inflight, self.metrics,
                                       breakers, self.parked, self.accept, rollouts)
        self._max_receive: int | None = None

    @classmethod
    def from_settings(cls, settings) -> "Consumer":
        """Real clients for the queue's region, the endpoint in the settings, and Jenkins."""
        from botocore.config import Config as BotoConfig

        from helper.aws.clients import CONSUMER_BOTO_CONFIG, AccessKey, AwsClients
        from helper.deploys.load_balancers import LoadBalancers
        from helper.deploys.rollout_record import RolloutRecords

        lc = settings.lifecycle
        key = AccessKey(region=lc.region, endpoint_url=settings.endpoint_url,
                        credentials=settings.config.credentials, profile=settings.config.profile)
        # One connection per deployment thread and the receive loop: with botocore's 10, a burst opened a new TCP
        # (and TLS) connection per heartbeat and logged "Connection pool is full" (bench/lifecycle.py).
        pooled = CONSUMER_BOTO_CONFIG.merge(BotoConfig(max_pool_connections=MAX_DEPLOYMENTS + 1))
        clients = AwsClients(key, boto_config=pooled)
        jobs = JenkinsJobs.connect(lc.jenkins.url, settings.jenkins_user, settings.jenkins_token,
                                   lc.jenkins.timeout_s, connections=MAX_DEPLOYMENTS + 1)
        metrics = Metrics()
        breakers = SiteBreakers.from_clients(
            lc, clients.autoscaling, metrics.registry, settings.config.paths.revision_dir,
            sns_client=clients.client("sns") if lc.alerts.sns_topic_arn else None, config_path=settings.config.path)
        autoscaling = AutoScaling(clients.autoscaling)
        rollouts = ExpiredRollouts(RolloutRecords(clients.client("ec2")),
                                   LoadBalancers(clients.client("elbv2"), clients.client("elb")), autoscaling,
                                   {site: lc.groups_of(site) for site in lc.routed_sites})
        return cls(lc, Queue(clients.client("sqs"), lc.queue_url), autoscaling, jobs, metrics=metrics,
                   breakers=breakers, hold_groups=settings.config.hold_groups(region=lc.region), rollouts=rollouts)

    # --- receive -> parse -> route -------------------------------------------------

    def handle(self, message: Message) -> None:
        self.metrics.received.inc()
        parsed = parse(message.body)
        if isinstance(parsed, Skip):
            log.info("event=message_skipped message=%s reason=%r", message.message_id, parsed.reason)
            self.metrics.skipped.labels(parsed.reason.split()[0]).inc()
            self.messages.delete(message)
        elif isinstance(parsed, Malformed):
            # Left alone: the queue's redrive policy moves it to the dead-letter queue.
            if self.messages.log_once(message, logging.WARNING, "event=message_malformed message=%s reason=%r",
                              message.message_id, parsed.reason):
                self.metrics.malformed.inc()
            if self._max_receive is not None and message.receive_count >= self._max_receive:
                self.metrics.dead_lettered.inc()
        else:
            self.accept(parsed, message)

    def handle_one(self, message: Message) -> None:
        """`handle`, as the receive loop's per-message error boundary.

        The one place besides the CLI that catches Exception, for the same reason: a message is
        input from outside, and a bug its content finds must cost that message (left on the queue,
        so redrive dead-letters it), never the loop or the messages received with it (issue 19
        item 2: a lone surrogate crashed the loop on every redelivery).
        """
        try:
            self.handle(message)
        except Exception as exc:  # noqa: BLE001 - the per-message boundary, see above
            self.metrics.handle_errors.inc()
            if self.messages.log_once(message, logging.ERROR, "event=message_failed message=%s error=%s",
                                      message.message_id, type(exc).__name__):
                log.debug("event=message_failed_detail message=%s", message.message_id, exc_info=True)

    def accept(self, action: LifecycleAction, message: Message | None) -> None:
        route = self.config.groups.get(action.group)
        if route is None:
            # Not ours to complete: another consumer may own this group, and if none
            # does the message ends in the dead-letter queue where someone will see it.
            if message is None or self.messages.log_once(
                    message, logging.WARNING, "event=unknown_group group=%s action=%s message=%s",
                    action.group, action.reference(), message.message_id):
                self.metrics.unknown_group.inc()
            return
        admitted, tracked = self.inflight.admit(action, message)
        if admitted is Admission.DONE:
            log.info("event=duplicate_of_completed action=%s", action.reference())
            if message is not None:
                self.messages.delete(message)
            return
        if admitted is Admission.DUPLICATE:
            log.debug("event=duplicate_attached action=%s", action.reference())
            return
        warm = action.launching and action.into_warm_pool
        job = route.terminate_job if action.transition == TERMINATING else route.job
        key = BatchKey(route.site, action.transition, job, warm)
        self.batcher.add(key, tracked, self.clock())
        log.debug("event=action_accepted action=%s site=%s source=%s", action.reference(), route.site,
                 "message" if message else "reconcile")

    # --- batch -> deploy ------------------------------------------------------------

    def _plan(self, key: BatchKey, tracked: list[Tracked]) -> Plan:
        if key.transition == TERMINATING:
            return Plan(key.site, key.job, tuple(tracked), terminating=True)  # job None: CONTINUE at once
        if key.warm and self.config.warm_pool == "continue":
            # Into the warm pool: it is stopped there; we deploy when it leaves the pool.
            return Plan(key.site, None, tuple(tracked))
        return Plan(key.site, key.job, tuple(tracked))

    def _submit(self, plan: Plan) -> None:
        deployment = Deployment(self.context, plan)
        future = self._pool.submit(deployment.run)
        with self._futures_lock:
            self._futures.add(future)
        future.add_done_callback(partial(self._deployment_done, deployment))

    def _deployment_done(self, deployment: Deployment, future: Future) -> None:
        """Start what a deployment handed over, or forget the actions it settled.

        The handed-over plans are submitted before the finished future leaves the set, so
        teardown never sees an empty set while work is still being passed on.
        """
        try:
            exc = future.exception()
            if exc is not None:
                log.error("event=deployment_crashed error=%r", f"{type(exc).__name__}: {exc}")
                # Its actions were released: forget them, so their next delivery starts afresh.
                for tracked in deployment.plan.tracked:
                    self.inflight.finish(tracked, completed=tracked.gone)
                return
            ended = future.result()
            if isinstance(ended, Parked):
                self.parked.add(ended.plan)  # stays in flight: the loop heartbeats it until the breaker closes
            elif isinstance(ended, Handover):
                for plan in ended.plans:
                    self._submit(plan)
            else:
                for tracked, completed in ended.actions:
                    self.inflight.finish(tracked, completed)
        finally:
            with self._futures_lock:
                self._futures.discard(future)

    def start_due(self, batches) -> None:
        for key, tracked in batches:
            self._submit(self._plan(key, tracked))

    # --- periodic maintenance (helper/consumer/maintenance.py) -----------------------

    def reconcile(self, passes_needed: int = 2) -> None:
        self.maintenance.run(passes_needed)

    # --- the loop ---------------------------------------------------------------------

    def _receive_wait_s(self, now: float, next_reconcile: float, once: bool) -> float:
        wait = float(self.config.receive_wait_s)
        to_batch = self.batcher.seconds_to_next(now)
        if to_batch is not None:
            wait = min(wait, to_batch)
        wait = min(wait, max(0.0, next_reconcile - now))
        if self.parked is not None:
            # Parked actions are heartbeaten from this loop, and a running deployment may end held
            # at any moment: poll no longer than a deployment's own wait loop would.
            with self._futures_lock:
                busy = bool(self._futures)
            if busy or len(self.parked):
                wait = min(wait, self.config.poll_interval_s)
        return min(wait, 1.0) if once else wait

    def run(self, stop: threading.Event, once: bool = False) -> None:
        try:
            redrive = self.queue.read_redrive()  # once: where rejected messages go
            self._max_receive = redrive.max_receive_count if redrive else None
        except QueueError as exc:
            log.warning("event=queue_attributes_failed error=%r", str(exc))
        next_reconcile = self.clock() if not once else math.inf
        errors = 0
        try:
            while not stop.is_set():
                now = self.clock()
                if now >= next_reconcile:
                    self.reconcile()
                    next_reconcile = now + self.config.reconcile_interval_s
                wait_s = self._receive_wait_s(now, next_reconcile, once)
                try:
                    # SQS waits whole seconds; the fraction is waited below if nothing came.
                    messages = self.queue.receive(math.floor(wait_s), self.config.visibility_timeout_s)
                    errors = 0
                    self.metrics.polled()
                    self.notifier.progress()
                except QueueError as exc:
                    errors += 1
                    self.metrics.aws_errors.labels("ReceiveMessage").inc()
                    log.warning("event=receive_failed attempt=%d error=%r", errors, str(exc))
                    if once and errors >= ONCE_RECEIVE_ATTEMPTS:
                        # A cron job must end: `--once` gives up, in one line, after a bounded time (issue 24).
                        raise QueueError(f"gave up after {errors} failed receives: {exc}") from None
                    stop.wait(backoff_s(errors))
                    continue
                for message in messages:
                    self.handle_one(message)
                if not messages and wait_s % 1:
                    stop.wait(wait_s % 1)
                self.start_due(self.batcher.due(self.clock()))
                if self.parked is not None:
                    for plan in self.parked.tend(self.clock()):
                        self._submit(plan)
                if once and not messages and not len(self.batcher):
                    self.reconcile(passes_needed=1)
                    self.start_due(self.batcher.drain())
                    break
        finally:
            self.teardown(stop)

    def teardown(self, stop: threading.Event) -> None:
        stopping = stop.is_set()
        self.notifier.stopping()
        if self.parked is not None:  # no build is coming for them from this consumer
            self.parked.release_all()
        for key, tracked in self.batcher.drain():
            if stopping:  # not started: let the next consumer have them now
                for t in tracked:
                    self.messages.release(t.take_messages())
                    self.inflight.finish(t, completed=False)
            else:
                self.start_due([(key, tracked)])
        deadline = self.clock() + (self.config.grace_period_s if stopping else math.inf)
        while True:
            with self._futures_lock:
                pending = list(self._futures)
            if not pending:
                break
            if self.clock() >= deadline and not self.release.is_set():
                log.info("event=grace_period_over releasing=%d", len(pending))
                self.release.set()
            wait_futures(pending, timeout=0.05)
        self._pool.shutdown(wait=True)
        if self.parked is not None:  # deployments that ended held while we waited for them
            self.parked.release_all()
        if self.breakers is not None:
            self.breakers.close()

