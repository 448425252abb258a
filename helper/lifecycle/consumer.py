"""The lifecycle consumer: receive -> parse -> route -> batch -> deploy -> complete -> delete.

One loop like rq's Worker.work(): a stop flag set by SIGTERM/SIGINT, narrow excepts, a
back-off after receive errors, and teardown in `finally`. Deployments run in threads
(helper/lifecycle/deployment.py); this loop only feeds them. Reconciliation finds instances waiting in
Pending:Wait that no message told us about.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures

from prometheus_client import Counter

from helper.lifecycle.action import TERMINATING, LifecycleAction, Malformed, Skip, parse
from helper.lifecycle.autoscaling import REJECT_REASONS, AutoScaling, AutoScalingError, Throttled, reconciled_action
from helper.lifecycle.batcher import Batcher
from helper.lifecycle.deployment import Deployment, Plan, backoff_s
from helper.lifecycle.inflight import InFlight, Tracked
from helper.lifecycle.jenkins_client import Found, JenkinsJobs, serves
from helper.config.lifecycle import LifecycleConfig
from helper.lifecycle.metrics import Metrics
from helper.lifecycle.sqs import Message, Queue, QueueError

log = logging.getLogger(__name__)

# Deployments waiting on Jenkins at once. Each is a thread that mostly sleeps; the
# batch size keeps a burst of 200 launches near ten of them.
MAX_DEPLOYMENTS = 64
# Remember this many message ids we already logged as malformed or unroutable, so each
# is logged once however often SQS redelivers it before redrive.
LOGGED_IDS_MAX = 10_000


class Consumer:
    def __init__(self, config: LifecycleConfig, queue: Queue, autoscaling: AutoScaling, jobs: JenkinsJobs,
                 metrics: Metrics | None = None, clock=time.monotonic) -> None:
        self.config = config
        self.queue = queue
        self.autoscaling = autoscaling
        self.jobs = jobs
        self.clock = clock
        self.metrics = metrics or Metrics(clock)
        self.inflight = InFlight(clock)
        self.metrics.in_flight.set_function(lambda: len(self.inflight))
        self.batcher: Batcher[Tracked] = Batcher(config.batch_window_s, config.batch_max_instances)
        # Set after the grace period on shutdown: deployments release their actions.
        self.release = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=MAX_DEPLOYMENTS, thread_name_prefix="deploy")
        self._futures: set[Future] = set()
        self._futures_lock = threading.Lock()
        self._logged: OrderedDict[str, None] = OrderedDict()
        self._logged_lock = threading.Lock()  # deployments reject messages from their threads
        self._waiting_seen: dict[tuple[str, str], float] = {}
        self._max_receive: int | None = None
        # On the Metrics registry, beside its counters (helper/lifecycle/metrics.py is shared with the
        # inventory side; these two belong to the checks made here and in helper/lifecycle/deployment.py).
        self.rejected = Counter("adh_messages_rejected", "Messages that did not check out with Auto Scaling, "
                                "dead-lettered (or left for redrive)", ["reason"], registry=self.metrics.registry)
        for reason in REJECT_REASONS:  # a fixed set, shown at 0 from the start
            self.rejected.labels(reason)
        self.job_missing = Counter("adh_jenkins_job_missing", "Jenkins answers that the configured job does not "
                                   "exist", registry=self.metrics.registry)

    @classmethod
    def from_settings(cls, settings) -> "Consumer":
        """Real clients for the queue's region, the endpoint in the settings, and Jenkins."""
        from helper.aws.clients import CONSUMER_BOTO_CONFIG, AccessKey, AwsClients

        lc = settings.lifecycle
        key = AccessKey(region=lc.region, endpoint_url=settings.endpoint_url,
                        credentials=settings.config.credentials, profile=settings.config.profile)
        clients = AwsClients(key, boto_config=CONSUMER_BOTO_CONFIG)
        jobs = JenkinsJobs.connect(lc.jenkins.url, settings.jenkins_user, settings.jenkins_token,
                                   lc.jenkins.timeout_s)
        return cls(lc, Queue(clients.client("sqs"), lc.queue_url), AutoScaling(clients.autoscaling), jobs)

    # --- receive -> parse -> route -------------------------------------------------

    def _log_once(self, message: Message, level: int, text: str, *args) -> bool:
        with self._logged_lock:
            if message.message_id in self._logged:
                return False
            self._logged[message.message_id] = None
            while len(self._logged) > LOGGED_IDS_MAX:
                self._logged.popitem(last=False)
        log.log(level, text, *args)
        return True

    def reject(self, message: Message, action: LifecycleAction, reason: str) -> None:
        """A message that did not check out with Auto Scaling: never a build, never silently deleted.

        Moved to the dead-letter queue now, where someone will see it; without one it is
        left for redrive (and checked again, but logged and counted once).
        """
        try:
            moved = self.queue.dead_letter(message)
        except QueueError as exc:
            moved = False
            self.metrics.aws_errors.labels("SendMessage").inc()
            log.warning("event=dead_letter_failed message=%s error=%r", message.message_id, str(exc))
        if self._log_once(message, logging.WARNING, "event=message_rejected message=%s action=%s reason=%s "
                          "dead_lettered=%s", message.message_id, action.reference(), reason, moved):
            self.rejected.labels(reason).inc()

    def handle(self, message: Message) -> None:
        self.metrics.received.inc()
        parsed = parse(message.body)
        if isinstance(parsed, Skip):
            log.info("event=message_skipped message=%s reason=%r", message.message_id, parsed.reason)
            self.metrics.skipped.labels(parsed.reason.split()[0]).inc()
            self._delete(message)
        elif isinstance(parsed, Malformed):
            # Left alone: the queue's redrive policy moves it to the dead-letter queue.
            if self._log_once(message, logging.WARNING, "event=message_malformed message=%s reason=%r",
                              message.message_id, parsed.reason):
                self.metrics.malformed.inc()
            if self._max_receive is not None and message.receive_count >= self._max_receive:
                self.metrics.dead_lettered.inc()
        else:
            self.accept(parsed, message)

    def accept(self, action: LifecycleAction, message: Message | None) -> None:
        route = self.config.groups.get(action.group)
        if route is None:
            # Not ours to complete: another consumer may own this group, and if none
            # does the message ends in the dead-letter queue where someone will see it.
            if message is None or self._log_once(
                    message, logging.WARNING, "event=unknown_group group=%s action=%s message=%s",
                    action.group, action.reference(), message.message_id):
                self.metrics.unknown_group.inc()
            return
        status, tracked = self.inflight.admit(action, message)
        if status == "done":
            log.info("event=duplicate_of_completed action=%s", action.reference())
            if message is not None:
                self._delete(message)
            return
        if status == "duplicate":
            log.info("event=duplicate_attached action=%s", action.reference())
            return
        warm = action.launching and action.into_warm_pool
        job = route.terminate_job if action.transition == TERMINATING else route.job
        key = (route.site, action.transition, job, warm)
        self.batcher.add(key, tracked, self.clock())
        log.info("event=action_accepted action=%s site=%s source=%s", action.reference(), route.site,
                 "message" if message else "reconcile")

    def _delete(self, message: Message) -> None:
        try:
            self.queue.delete(message)
            self.metrics.deleted.inc()
        except QueueError as exc:
            self.metrics.aws_errors.labels("DeleteMessage").inc()
            log.warning("event=delete_failed message=%s error=%r", message.message_id, str(exc))

    # --- batch -> deploy ------------------------------------------------------------

    def _plan(self, key, tracked: list[Tracked]) -> Plan:
        site, transition, job, warm = key
        if transition == TERMINATING:
            return Plan(site, job, tracked, terminating=True)  # job None: CONTINUE at once
        if warm and self.config.warm_pool == "continue":
            # Into the warm pool: it is stopped there; we deploy when it leaves the pool.
            return Plan(site, None, tracked)
        return Plan(site, job, tracked)

    def _submit(self, deployment: Deployment) -> None:
        future = self._pool.submit(deployment.run)
        with self._futures_lock:
            self._futures.add(future)
        future.add_done_callback(self._deployment_done)

    def _deployment_done(self, future: Future) -> None:
        with self._futures_lock:
            self._futures.discard(future)
        if not future.cancelled() and future.exception() is not None:
            exc = future.exception()
            log.error("event=deployment_crashed error=%r", f"{type(exc).__name__}: {exc}")

    def start_due(self, batches) -> None:
        for key, tracked in batches:
            self._submit(Deployment(self, self._plan(key, tracked)))

    def split(self, deployment: Deployment, found: list[Found]) -> None:
        """Hand actions that existing builds already serve to deployments that follow them."""
        def rank(f: Found):  # in progress first, lowest queue id; then the newest finished
            in_progress = f.build_number is None or f.building
            return (0, f.queue_id or 0) if in_progress else (1, -(f.build_number or 0))

        keep, adopted = [], {}
        for tracked in deployment.plan.tracked:
            serving = sorted((f for f in found if serves(f, tracked.action)), key=rank)
            if serving:
                adopted.setdefault(serving[0], []).append(tracked)
            else:
                keep.append(tracked)
        deployment.plan.tracked = keep
        for build, tracked in adopted.items():
            self.metrics.builds_adopted.inc()
            log.info("event=build_adopted site=%s queue_id=%s build=%s actions=%d",
                     deployment.plan.site, build.queue_id, build.build_number, len(tracked))
            plan = Plan(deployment.plan.site, deployment.plan.job, tracked, adopt=build,
                        terminating=deployment.plan.terminating, checked=True)
            self._submit(Deployment(self, plan))

    def finished(self, tracked: Tracked, completed: bool) -> None:
        self.inflight.finish(tracked, completed)

    # --- reconcile --------------------------------------------------------------------

    def reconcile(self, passes_needed: int = 2) -> None:
        """Deploy instances waiting in Pending:Wait that no message brought us.

        An instance must be seen waiting, and not in flight, on two passes in a row: a
        notification still in the queue (or with another replica) gets that long to
        claim it first.
        """
        try:
            waiting = self.autoscaling.waiting_instances(sorted(self.config.groups))
        except (Throttled, AutoScalingError) as exc:
            self.metrics.aws_errors.labels("DescribeAutoScalingGroups").inc()
            log.warning("event=reconcile_failed error=%r", str(exc))
            return
        seen: dict[tuple[str, str], float] = {}
        for w in waiting:
            key = (w.group, w.instance_id)
            if self.inflight.covers(w.group, w.instance_id, reconciled_action(w).transition):
                continue
            seen[key] = self._waiting_seen.get(key, 0) + 1
            if seen[key] >= passes_needed:
                log.warning("event=reconciled group=%s instance=%s state=%s", w.group, w.instance_id, w.state)
                self.accept(reconciled_action(w), None)
                del seen[key]
        self._waiting_seen = seen

    # --- the loop ---------------------------------------------------------------------

    def _receive_wait_s(self, now: float, next_reconcile: float, once: bool) -> float:
        wait = float(self.config.receive_wait_s)
        to_batch = self.batcher.seconds_to_next(now)
        if to_batch is not None:
            wait = min(wait, to_batch)
        wait = min(wait, max(0.0, next_reconcile - now))
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
                except QueueError as exc:
                    errors += 1
                    self.metrics.aws_errors.labels("ReceiveMessage").inc()
                    log.warning("event=receive_failed attempt=%d error=%r", errors, str(exc))
                    stop.wait(backoff_s(errors))
                    continue
                for message in messages:
                    self.handle(message)
                if not messages and wait_s % 1:
                    stop.wait(wait_s % 1)
                self.start_due(self.batcher.due(self.clock()))
                if once and not messages and not len(self.batcher):
                    self.reconcile(passes_needed=1)
                    self.start_due(self.batcher.drain())
                    break
        finally:
            self.teardown(stop)

    def teardown(self, stop: threading.Event) -> None:
        stopping = stop.is_set()
        for key, tracked in self.batcher.drain():
            if stopping:  # not started: let the next consumer have them now
                for t in tracked:
                    for message in t.take_messages():
                        try:
                            self.queue.set_visibility(message, 0)
                        except QueueError as exc:
                            log.warning("event=release_failed message=%s error=%r", message.message_id, str(exc))
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

