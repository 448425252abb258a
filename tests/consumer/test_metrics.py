"""/metrics and /healthz on a real loopback port, with a clock the test moves by hand."""

from __future__ import annotations

import socket

import pytest
import requests

from helper.consumer.metrics import Metrics, MetricsServer

STALL_AFTER_S = 120.0


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def metrics(clock):
    return Metrics(clock)


@pytest.fixture
def server(metrics):
    running = MetricsServer(metrics, "127.0.0.1", 0, stall_after_s=STALL_AFTER_S).start()
    yield running
    running.stop()


def get(server: MetricsServer, path: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{server.port}{path}", timeout=5)


def test_metrics_serves_prometheus_text_with_the_counters(server, metrics):
    metrics.received.inc(3)
    metrics.skipped.labels("test").inc()
    reply = get(server, "/metrics")
    assert reply.status_code == 200
    # Both text versions are ones Prometheus 3 negotiates; a blank or other type fails its scrape.
    assert reply.headers["Content-Type"].split(";")[:2] in (["text/plain", " version=0.0.4"],
                                                           ["text/plain", " version=1.0.0"])
    assert "# TYPE adh_messages_received" in reply.text
    assert "adh_messages_received_total 3.0" in reply.text
    assert 'adh_messages_skipped_total{reason="test"} 1.0' in reply.text
    assert "adh_notification_to_completion_seconds_bucket" in reply.text


def test_each_consumer_counts_on_its_own_registry(server, metrics, clock):
    Metrics(clock).received.inc(5)
    assert "adh_messages_received_total 0.0" in get(server, "/metrics").text


def test_healthz_fails_once_the_receive_loop_stalls_and_recovers_after_a_poll(server, metrics, clock):
    assert (get(server, "/healthz").status_code, get(server, "/healthz").text) == (200, "ok\n")
    clock.now += STALL_AFTER_S
    assert get(server, "/healthz").status_code == 200, "exactly stall_after_s is still healthy"
    clock.now += 1
    reply = get(server, "/healthz")
    assert reply.status_code == 503 and reply.text == "receive loop stalled for 121 s\n"
    metrics.polled()
    assert get(server, "/healthz").status_code == 200
    clock.now += STALL_AFTER_S / 2
    assert get(server, "/healthz").status_code == 200


def test_other_paths_are_not_found(server):
    for path in ["/", "/metric", "/metrics/", "/healthz/x", "/favicon.ico"]:
        assert get(server, path).status_code == 404, path


def test_server_listens_on_loopback_only(server):
    # Linux routes all of 127/8 to lo, but a socket bound to 127.0.0.1 accepts no other address.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", server.port), timeout=5)


def test_stopped_server_frees_its_port(metrics):
    stopped = MetricsServer(metrics, "127.0.0.1", 0, stall_after_s=STALL_AFTER_S).start()
    stopped.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", stopped.port), timeout=5)


def test_latency_counts_from_the_notification_time_when_it_has_one():
    from datetime import datetime, timedelta, timezone

    from helper.consumer.action import LAUNCHING, LifecycleAction
    from helper.consumer.inflight import Tracked

    wall_now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
    metrics = Metrics(clock=lambda: 100.0, wall=lambda: wall_now)
    notified = LifecycleAction("g", "i-0123456789abcdef0", LAUNCHING, token="t" * 36,
                               notified_at=wall_now - timedelta(seconds=42))
    metrics.observe_latency(Tracked(notified, received_at=99.0))  # 42 s: from AWS's Time, not our receipt
    reconciled = LifecycleAction("g", "i-0123456789abcdef1", LAUNCHING)
    metrics.observe_latency(Tracked(reconciled, received_at=93.0))  # 7 s: from discovery
    count = metrics.registry.get_sample_value("adh_notification_to_completion_seconds_count")
    total = metrics.registry.get_sample_value("adh_notification_to_completion_seconds_sum")
    assert (count, total) == (2.0, 49.0)


# --- bounded labels and connections (issue 9, items 23 and 25) -----------------------------------------


def test_ten_thousand_odd_group_names_keep_metrics_serving_and_its_page_small(server, metrics):
    """Group names come from messages anyone allowed to send to the queue writes: they go to
    the log, never into a label, so neither memory nor the page grows with them."""
    from helper.config.lifecycle import LifecycleConfig
    from helper.consumer.action import LAUNCHING, LifecycleAction
    from helper.consumer.loop import Consumer

    config = LifecycleConfig(queue_url="https://sqs/123456789012/hooks", region="us-east-1", jenkins=None, groups={})
    consumer = Consumer(config, queue=None, autoscaling=None, jobs=None, metrics=metrics)
    names = ["\udce9 lone surrogate", 'quote" level=error', "new\nline"] + [f"odd-{n:05d}-{'x' * 40}"
                                                                             for n in range(10_000)]
    for n, name in enumerate(names):
        consumer.accept(LifecycleAction(name, f"i-{n:017x}", LAUNCHING, token=f"t-{n}"), None)
    reply = get(server, "/metrics")
    assert reply.status_code == 200
    assert len(reply.content) < 20_000, "the page must not grow with the names"
    assert metrics.registry.get_sample_value("adh_unknown_group_total") == len(names)
    assert get(server, "/metrics").status_code == 200, "and keeps serving"


IDLE_TIMEOUT_S = 0.3
MAX_CONNECTIONS = 4


@pytest.fixture
def guarded(metrics):
    running = MetricsServer(metrics, "127.0.0.1", 0, stall_after_s=STALL_AFTER_S,
                            request_timeout_s=IDLE_TIMEOUT_S, max_connections=MAX_CONNECTIONS).start()
    yield running
    running.stop()


def server_threads() -> int:
    """Threads handling a connection (by name: a session's moto server has threads too)."""
    import threading

    from helper.consumer.metrics import HANDLER_THREAD_NAME

    return sum(1 for t in threading.enumerate() if t.name == HANDLER_THREAD_NAME and t.is_alive())


def test_idle_connections_neither_pile_up_threads_nor_stop_a_scrape(guarded):
    from tests.polling import wait_for

    idle = [socket.create_connection(("127.0.0.1", guarded.port), timeout=5) for _ in range(4 * MAX_CONNECTIONS)]
    try:
        peak = wait_for(lambda: server_threads() >= MAX_CONNECTIONS and server_threads(), what="handler slots taken")
        reply = requests.get(f"http://127.0.0.1:{guarded.port}/metrics", timeout=10)
        assert reply.status_code == 200 and "adh_messages_received_total" in reply.text
        assert max(peak, server_threads()) <= MAX_CONNECTIONS, "handlers are capped"
    finally:
        for conn in idle:
            conn.close()


def test_server_closes_an_idle_connection_after_its_timeout(guarded):
    from tests.polling import wait_for

    conn = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
    try:
        conn.sendall(b"GET /metr")  # half a request, then silence
        assert conn.recv(1024) == b"", "the server hangs up (recv would time out after 5 s otherwise)"
    finally:
        conn.close()
    wait_for(lambda: server_threads() == 0, what="the handler thread to end", timeout_s=5)


def test_default_server_bounds_its_handlers_and_their_wait():
    from helper.consumer.metrics import MAX_CONNECTIONS as DEFAULT_MAX
    from helper.consumer.metrics import REQUEST_TIMEOUT_S

    assert 1 <= DEFAULT_MAX <= 64 and 0 < REQUEST_TIMEOUT_S <= 30


def test_clients_trickling_inside_the_read_timeout_cannot_hold_the_server(guarded):
    """Issue 19 item 13: eight clients sending a byte just inside the read timeout blocked /metrics and /healthz."""
    import threading
    import time

    from tests.polling import wait_for

    stop, closed = threading.Event(), []

    def trickle() -> None:
        conn = socket.create_connection(("127.0.0.1", guarded.port), timeout=5)
        try:
            for byte in b"GET /metrics HTTP/1.0\r\nX-Slow: " + b"a" * 1000:
                if stop.is_set():
                    return
                conn.sendall(bytes([byte]))
                time.sleep(IDLE_TIMEOUT_S / 3)  # the client's own pace, inside the server's read timeout
        except OSError:
            closed.append(True)  # the server hung up on it
        finally:
            conn.close()

    slow = [threading.Thread(target=trickle, daemon=True) for _ in range(2 * MAX_CONNECTIONS)]
    for t in slow:
        t.start()
    try:
        wait_for(lambda: server_threads() >= MAX_CONNECTIONS, what="the slow clients hold every slot")
        started = time.monotonic()
        reply = requests.get(f"http://127.0.0.1:{guarded.port}/healthz", timeout=10)
        assert reply.status_code == 200
        assert time.monotonic() - started < 10 * IDLE_TIMEOUT_S, "answered within a few request deadlines"
        wait_for(lambda: len(closed) >= MAX_CONNECTIONS, what="slow clients hung up at their deadline", timeout_s=10)
    finally:
        stop.set()


@pytest.mark.parametrize("host, port, message", [
    ("no-such-host.invalid", 0, "cannot listen"),
    ("127.0.0.1", None, "cannot listen: Address already in use"),
])
def test_a_bad_metrics_address_is_one_line_not_a_traceback(metrics, host, port, message):
    """Issue 24: a bad lifecycle.metrics_host, or a metrics_port in use, crashed `consume`."""
    from helper.errors import HelperError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(HelperError, match=message) as caught:
            MetricsServer(metrics, host, taken.getsockname()[1] if port is None else port, stall_after_s=STALL_AFTER_S)
    assert str(caught.value).startswith("lifecycle.metrics_host/metrics_port ")


def test_every_metric_the_consumer_exports_is_named_in_its_docs_and_no_other():
    """Issue 24: the docs named metrics without their _total and missed two."""
    import re
    from pathlib import Path

    from helper.breaker.alerts import counters_on
    from helper.breaker.sites import BreakerMetrics
    from helper.consumer.metrics import Metrics

    metrics = Metrics()
    BreakerMetrics(metrics.registry, ["web"])
    counters_on(metrics.registry)
    # As a scrape names them: a counter with _total (prometheus-client keeps the family's name without it).
    exported = {f.name + "_total" if f.type == "counter" else f.name for f in metrics.registry.collect()}
    docs = (Path(__file__).resolve().parents[2] / "docs" / "consumer.md").read_text()
    documented = set(re.findall(r"`(adh_[a-z_]+)(?:\{[a-z,]*\})?`", docs))
    assert exported - documented == set(), "exported but not documented"
    assert documented - exported == set(), "documented but not exported"


def test_eight_silent_half_requests_neither_delay_healthz_nor_stay_open(metrics):
    """Issue 19 item 13 (second pass): with the default number of handlers, eight sockets that send
    half a request and nothing more took every handler, and /healthz waited a read timeout behind
    them. It answers at once now, and each of them is hung up on at its deadline."""
    import time

    request_timeout_s = 1.0
    running = MetricsServer(metrics, "127.0.0.1", 0, stall_after_s=STALL_AFTER_S,
                            request_timeout_s=request_timeout_s).start()
    slow = [socket.create_connection(("127.0.0.1", running.port), timeout=10) for _ in range(8)]
    try:
        for conn in slow:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x")  # and nothing more
        started = time.monotonic()
        reply = requests.get(f"http://127.0.0.1:{running.port}/healthz", timeout=10)
        assert reply.status_code == 200 and reply.text == "ok\n"
        assert time.monotonic() - started < 0.8 * request_timeout_s, "answered without waiting behind them"
        for conn in slow:  # recv would time out after 10 s if the server kept the socket open
            assert conn.recv(1024) == b"", "hung up on"
        assert time.monotonic() - started < 10
    finally:
        for conn in slow:
            conn.close()
        running.stop()
