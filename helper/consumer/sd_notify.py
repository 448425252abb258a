"""systemd's notify protocol, spoken by the consumer, so systemd can tell a hung consumer from a
working one (Type=notify, WatchdogSec= in contrib/systemd/).

The protocol is a datagram of `NAME=value` lines to the unix socket $NOTIFY_SOCKET (a leading `@`
means the abstract namespace), so it needs no dependency:

    READY=1      the first receive from the queue came back: the consumer is receiving
    WATCHDOG=1   sent from the receive loop only, after a receive came back, at most every half
                 of $WATCHDOG_USEC: a loop that stops coming round stops the pings, and systemd
                 kills and restarts the service after WatchdogSec
    STOPPING=1   a stop began (SIGTERM): deploys get their grace period, then actions go back

Without $NOTIFY_SOCKET (not under systemd, or Type=simple) every call does nothing. $WATCHDOG_PID,
when set, must be this process (systemd sets it for the main process only). A send that fails is
logged once and never stops the consumer: losing the watchdog must not lose a deploy.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        pid = environ.get("WATCHDOG_PID", "")
        usec = environ.get("WATCHDOG_USEC", "")
        ours = not pid or pid == str(os.getpid())
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and ours else None
        self._clock = clock
        self._ready = False
        self._last_ping: float | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, state: str) -> bool:
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(state.encode(), self._address)
            return True
        except OSError as error:
            if not self._failed:  # once: a full socket or a gone systemd must not flood the log
                log.warning("event=sd_notify_failed state=%s error=%r", state.split("=")[0], str(error))
            self._failed = True
            return False

    def progress(self) -> None:
        """The receive loop came round: READY the first time, then WATCHDOG at its pace."""
        now = self._clock()
        if not self._ready:
            self._ready = True
            self.send("READY=1\nSTATUS=receiving")
            self._last_ping = now
            return
        if self.watchdog_interval_s is not None and \
                (self._last_ping is None or now - self._last_ping >= self.watchdog_interval_s):
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1\nSTATUS=stopping: finishing deploys, then handing actions back")


DISABLED = Notifier({})
