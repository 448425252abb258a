"""Prometheus metrics and /healthz for the consumer, on a loopback port.

prometheus-client does the exposition format and the metric types; we only add a
/healthz that fails when the receive loop has stalled. Each Consumer gets its own
registry, so tests (and two consumers in one process) never share counters.

Label values come only from the code (a reason's first word, an operation, a result, an
exception class), never from a message: whoever can send to the queue could otherwise grow
the registry without bound, and one undecodable name would break every scrape. Names from
outside go to the log, where helper/logfmt.py quotes them.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from helper.consumer.autoscaling import REJECT_REASONS
from helper.errors import HelperError

# From a quick deploy (tens of seconds) to a hook's 2-hour heartbeat ceiling.
LATENCY_BUCKETS_S = (5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
# A scrape or a health probe sends its request as soon as it connects; a connection silent
# this long is idle or hostile, and its handler thread is freed (Prometheus's own scrape
# timeout is 10 s, and a loopback request takes milliseconds).
REQUEST_TIMEOUT_S = 5.0
# Handlers at once. Prometheus scrapes a target one request at a time and a health probe adds
# one, but a slow client holds its handler until the whole-request deadline (2 x REQUEST_TIMEOUT_S):
# with 8, eight slow clients left a probe waiting up to 10 s behind them (issue 19 item 13), so
# there is room for 24 more; a thread that waits on a socket costs little. Further connections
# wait, unaccepted, until a handler is free, so idle connections cost no thread.
MAX_CONNECTIONS = 32
# Connections the kernel holds for us while every handler is busy. Past the backlog Linux drops
# the SYN and the client retries only after a second or more, which would fail a scrape.
LISTEN_BACKLOG = 128
HANDLER_THREAD_NAME = "metrics-handler"


class Metrics:
    def __init__(self, clock=time.monotonic, wall=lambda: datetime.now(timezone.utc)) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("adh_messages_received", "SQS messages received", registry=r)
        self.deleted = Counter("adh_messages_deleted", "SQS messages deleted", registry=r)
        self.skipped = Counter("adh_messages_skipped", "Messages acknowledged with nothing to do", ["reason"], registry=r)
        self.malformed = Counter("adh_messages_malformed", "Messages left for the dead-letter queue", registry=r)
        self.dead_lettered = Counter(
            "adh_messages_dead_lettered", "Malformed messages on their last receive before redrive", registry=r)
        # No group label: the name is the sender's choice (it is logged instead).
        self.unknown_group = Counter("adh_unknown_group", "Actions for groups not in the config", registry=r)
        self.handle_errors = Counter("adh_message_errors", "Messages whose handling failed (a bug: left for redrive)",
                                     registry=r)
        self.builds_queued = Counter("adh_builds_queued", "Jenkins builds queued", registry=r)
        self.builds_adopted = Counter("adh_builds_adopted", "Existing builds adopted instead of queueing", registry=r)
        self.completed = Counter("adh_actions_completed", "Lifecycle actions completed", ["result"], registry=r)
        # At 0 from the start: Prometheus's increase() cannot see a series' first value, so an
        # ABANDON counter born at 1 would never fire ADHBuildsFailing (tests/test_operator_view.py).
        for result in ("CONTINUE", "ABANDON"):
            self.completed.labels(result)
        self.actions_gone = Counter("adh_actions_gone", "Actions AWS no longer knew (timed out, instance gone)", registry=r)
        self.heartbeats = Counter("adh_heartbeats", "Lifecycle heartbeats recorded", registry=r)
        self.heartbeat_errors = Counter("adh_heartbeat_errors", "Failed heartbeats", ["kind"], registry=r)
        self.aws_errors = Counter("adh_aws_errors", "Failed AWS calls", ["operation"], registry=r)
        self.jenkins_errors = Counter("adh_jenkins_errors", "Jenkins calls that got no useful answer", registry=r)
        self.in_flight = Gauge("adh_actions_in_flight", "Lifecycle actions being worked on", registry=r)
        self.latency = Histogram(
            "adh_notification_to_completion_seconds", "From notification (or discovery) to completion",
            buckets=LATENCY_BUCKETS_S, registry=r)
        # The checks of helper/consumer/claims.py and the Jenkins wait of helper/consumer/deployment.py.
        self.rejected = Counter("adh_messages_rejected", "Messages that did not check out with Auto Scaling, "
                                "dead-lettered (or left for redrive)", ["reason"], registry=r)
        for reason in REJECT_REASONS:  # a fixed set, shown at 0 from the start
            self.rejected.labels(reason)
        self.job_missing = Counter("adh_jenkins_job_missing", "Jenkins answers that the configured job does not "
                                   "exist", registry=r)
        # helper/deploys/fleet_hold.py: fleet holds whose `until` passed (a build killed without its post).
        self.hold_expired_releases = Counter("adh_fleet_hold_expired_releases", "Expired fleet holds the "
                                             "consumer released", registry=r)
        # helper/consumer/rollout_expiry.py: hosts a dead rollout left out, put back after its record expired.
        self.rollout_expired_restores = Counter("adh_rollout_expired_restores", "Hosts of expired rollout "
                                                "records the consumer put back", registry=r)
        # When the receive loop last came round (wall clock): Prometheus alerts on its age
        # (contrib/prometheus/, ADHConsumerStalled), as /healthz answers 503 on it.
        self.last_poll = Gauge("adh_receive_loop_last_poll_timestamp_seconds",
                               "When a receive from the queue last came back (Unix time)", registry=r)
        self._clock = clock
        self._wall = wall
        self._last_poll = clock()
        self.last_poll.set(wall().timestamp())

    def observe_latency(self, tracked) -> None:
        """From the notification's own Time when it has one; else from when we got it."""
        notified = tracked.action.notified_at
        if notified is not None:
            seconds = (self._wall() - notified).total_seconds()
        else:  # found by reconciliation, or an EventBridge event without a time
            seconds = self._clock() - tracked.received_at
        self.latency.observe(max(0.0, seconds))

    def polled(self) -> None:
        self._last_poll = self._clock()
        self.last_poll.set(self._wall().timestamp())

    def stalled_for_s(self) -> float:
        return self._clock() - self._last_poll


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, but at most `max_connections` of them: the accept loop waits
    for a free slot, so connections beyond the cap stay in the listen queue, not in memory.

    Each connection also has a whole-request deadline: the handler's socket timeout bounds one
    read, and a client sending a byte just inside it held its slot for good, so eight of them
    blocked /metrics and /healthz (issue 19 item 13). At the deadline the socket is shut down,
    the handler's read fails, and the slot is free again.
    """

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: Callable, max_connections: int,
                 deadline_s: float) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._deadline_s = deadline_s
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        self._slots.acquire()  # bounded wait: every held slot times out after the handler's timeout
        try:
            # Daemon: a connection being handled never holds up the consumer's exit.
            threading.Thread(target=self.process_request_thread, args=(request, client_address),
                             name=HANDLER_THREAD_NAME, daemon=True).start()
        except BaseException:  # the thread never started, so it cannot give the slot back
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        cutoff = threading.Timer(self._deadline_s, _hang_up, args=(request,))
        cutoff.daemon = True
        try:
            cutoff.start()
            super().process_request_thread(request, client_address)
        finally:
            cutoff.cancel()
            self._slots.release()


    def handle_error(self, request, client_address) -> None:
        """A client that hung up, or that we hung up on at its deadline, is not worth a traceback
        on stderr (socketserver's default); anything else still gets one."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # closed already: the request ended just now
        pass


class MetricsServer:
    """GET /metrics (Prometheus text) and GET /healthz (200, or 503 when stalled)."""

    def __init__(self, metrics: Metrics, host: str, port: int, stall_after_s: float,
                 request_timeout_s: float = REQUEST_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            # The socket timeout for every read and write: an idle or trickling client is dropped
            # (http.server answers nothing and closes) instead of holding its thread forever.
            timeout = request_timeout_s

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path == "/metrics":
                    body, status, kind = generate_latest(metrics.registry), 200, CONTENT_TYPE_LATEST
                elif self.path == "/healthz":
                    stalled = metrics.stalled_for_s()
                    ok = stalled <= owner.stall_after_s
                    body = (b"ok\n" if ok else f"receive loop stalled for {stalled:.0f} s\n".encode())
                    status, kind = (200 if ok else 503), "text/plain"
                else:
                    body, status, kind = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # scrapes are not events
                pass

        self.stall_after_s = stall_after_s
        # The whole request gets twice one read's timeout: a scrape is one short request.
        try:
            self._server = BoundedHTTPServer((host, port), Handler, max_connections, deadline_s=2 * request_timeout_s)
        except (OSError, OverflowError, UnicodeError) as exc:  # gaierror is an OSError
            # A name that does not resolve or a port in use crashed `consume` with a traceback (issue 24).
            raise HelperError(f"lifecycle.metrics_host/metrics_port {host}:{port}: cannot listen: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        self.port = self._server.server_address[1]
        # A short poll interval so stop() returns promptly (the default is half a second).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
