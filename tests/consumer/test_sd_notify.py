"""The consumer speaks systemd's notify protocol (issue 23): the test plays systemd's side, a
datagram socket at NOTIFY_SOCKET, against the notifier and against a real `consume` process whose
AWS traffic passes a proxy the test can hang, so the receive loop stalls as on a dead network."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from helper.consumer.sd_notify import Notifier

WATCHDOG_USEC = 1_000_000  # systemd's WatchdogSec=1: pings every half of it
QUIET_WINDOW_S = 3.0  # three whole WatchdogSec without a ping: systemd would have killed it twice


class Systemd:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path if not path.startswith("@") else "\0" + path[1:])

    def next(self, timeout_s: float) -> str | None:
        self.sock.settimeout(timeout_s)
        try:
            return self.sock.recv(4096).decode()
        except TimeoutError:
            return None

    def until(self, wanted: str, timeout_s: float = 30.0) -> list[str]:
        """Every message up to the first that starts with `wanted`; fails at the deadline."""
        seen, deadline = [], time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self.next(max(0.01, deadline - time.monotonic()))
            if message is not None:
                seen.append(message)
                if message.startswith(wanted):
                    return seen
        raise AssertionError(f"no {wanted} within {timeout_s:g} s; got {seen}")

    def close(self) -> None:
        self.sock.close()


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def systemd(tmp_path):
    listener = Systemd(str(tmp_path / "notify"))
    yield listener
    listener.close()


def test_ready_once_then_watchdog_at_half_the_interval_then_stopping(systemd):
    clock = FakeClock()
    notifier = Notifier({"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}, clock)
    notifier.progress()
    assert systemd.next(1) == "READY=1\nSTATUS=receiving"
    clock.now_s = 0.4
    notifier.progress()
    assert systemd.next(0.2) is None, "a loop coming round faster than half the interval pings no more often"
    clock.now_s = 0.6
    notifier.progress()
    assert systemd.next(1) == "WATCHDOG=1"
    notifier.stopping()
    assert systemd.next(1).startswith("STOPPING=1\n")


def test_an_abstract_socket_and_another_processes_watchdog(tmp_path):
    name = f"@adh-notify-test-{os.getpid()}"
    listener = Systemd(name)
    try:
        clock = FakeClock()
        notifier = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, clock)
        notifier.progress()
        assert listener.next(1).startswith("READY=1")
        clock.now_s = 5.0
        notifier.progress()  # the watchdog is pid 1's, not ours: no pings
        assert listener.next(0.2) is None
    finally:
        listener.close()


def test_no_socket_does_nothing_and_a_gone_systemd_is_logged_once(tmp_path, caplog):
    assert not Notifier({}).send("READY=1")
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens"), "WATCHDOG_USEC": "2"})
    notifier.progress()
    notifier.stopping()
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if "sd_notify_failed" in r.message)) == 1


class HangingProxy:
    """TCP to moto on loopback; hang() stops passing bytes (a dead network), resume() drops the
    stuck connections so the client reconnects."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.hanging = threading.Event()
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.hanging.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def hang(self) -> None:
        self.hanging.set()

    def resume(self) -> None:
        self.hanging.clear()
        with self.lock:
            stuck, self.connections = self.connections, []
        for s in stuck:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.resume()


def test_a_stalled_receive_loop_stops_the_watchdog_pings(world, systemd):
    port = int(world.url.rsplit(":", 1)[1])
    proxy = HangingProxy(port)
    env = {**world.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}", "NOTIFY_SOCKET": systemd.path,
           "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    consumer = subprocess.Popen([sys.executable, "-m", "helper", "consume", "-c", str(world.config_path)],
                                env=env, stderr=subprocess.PIPE, text=True)
    try:
        systemd.until("READY=1")
        systemd.until("WATCHDOG=1")
        systemd.until("WATCHDOG=1")  # the loop comes round (receive_wait_s 1) and pings each time

        proxy.hang()
        systemd.next(1.5)  # at most one more ping: from a receive already past the proxy
        quiet = [m for m in iter(lambda: systemd.next(QUIET_WINDOW_S), None)]
        assert quiet == [], f"pinged while its receive was stuck: {quiet}"
        assert consumer.poll() is None, "the process lives on: only the watchdog can tell it hangs"

        proxy.resume()
        systemd.until("WATCHDOG=1", timeout_s=30)  # reconnected: pings again
        consumer.send_signal(signal.SIGTERM)
        systemd.until("STOPPING=1", timeout_s=30)
        _, err = consumer.communicate(timeout=60)
    finally:
        consumer.kill()
        proxy.close()
    assert consumer.returncode == 0, err[-2000:]
