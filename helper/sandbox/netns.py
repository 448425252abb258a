"""The plumbing under the sandbox's real hosts: `ip`, network namespaces, veth links, waiting.

helper/sandbox/hosts.py builds networks of hosts from these; helper/sandbox/sshd_host.py runs
each host's sshd. Everything here runs a program with an argv list and raises HostError, in
one line, when it fails.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

SSHD = "/usr/sbin/sshd"  # absolute: sshd re-executes itself per connection and refuses a relative path
# moto's default VPC; its default subnets are /20s from the bottom, so the top address is never an instance's.
DEFAULT_CIDR = "172.31.0.0/16"
DEFAULT_DEPLOY_ROOT = "/srv"  # exists on Debian and is empty, so a bind mount over it hides nothing
SSH_PORT = 22
# sshd is up in ~50 ms; the margin is for a loaded CI machine. Reached only when something is wrong.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# Two networks with one CIDR cannot share the root namespace's routing table; a second one waits this long.
LOCK_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.02
CONNECT_PROBE_S = 0.2
IFNAMSIZ = 15  # the kernel's interface-name limit, without the terminating NUL
CLONE_NEWNET = 0x40000000  # from <sched.h>; Python's os.setns arrives only in 3.12

# Prefixes no network outside the runner uses (RFC 4193 unique-local, RFC 3849 documentation).
LOCAL_IPV6_PREFIXES = (ipaddress.IPv6Network("fc00::/7"), ipaddress.IPv6Network("2001:db8::/32"))


class HostError(RuntimeError):
    """Hosts could not be made or removed; the message says which command failed and why."""


def available() -> str | None:
    """Why real hosts cannot be made here (for pytest.skip, or a refused --hosts), or None when they can."""
    if os.geteuid() != 0:
        return "real SSH hosts need root (network namespaces, bind mounts)"
    for tool in ("ip", "unshare", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (iproute2, util-linux, openssh-client)"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is missing: apt-get install openssh-server"
    probe = f"adhprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def run(argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kwargs)
    except subprocess.CalledProcessError as error:
        raise HostError(f"`{' '.join(argv)}` failed ({error.returncode}): {error.stderr.strip()}") from None


def ip(*args: str, netns: str | None = None) -> str:
    return run(["ip", *(("-n", netns) if netns else ()), *args]).stdout


def ifname(name: str) -> str:
    if len(name) > IFNAMSIZ:
        raise HostError(f"interface name {name!r} is longer than the kernel's {IFNAMSIZ} characters")
    return name


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


def wait(predicate: Callable[[], object], what: str, timeout_s: float, detail: Callable[[], str] = str):
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise HostError(f"timed out after {timeout_s} s waiting for {what}{detail()}")
        tick.wait(POLL_INTERVAL_S)


def socket_in(netns: str | None, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket in `netns` (None: the runner's). A socket stays in the namespace it was made in,
    so only a short-lived thread switches namespace; the calling process itself never moves."""
    if netns is None:
        return socket.socket(family, socket.SOCK_STREAM)
    made: dict[str, object] = {}

    def make() -> None:
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {netns}")
            made["socket"] = socket.socket(family, socket.SOCK_STREAM)
        except OSError as error:
            made["error"] = error
        finally:
            os.close(fd)

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if "error" in made:
        raise HostError(f"cannot open a socket in {netns}: {made['error']}")
    return made["socket"]  # type: ignore[return-value]


def accepts(ip: str, netns: str | None) -> bool:
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    with socket_in(netns, family) as probe:
        probe.settimeout(CONNECT_PROBE_S)
        return probe.connect_ex((ip, SSH_PORT)) == 0


def netns_pids(netns: str) -> list[int]:
    return [int(pid) for pid in ip("netns", "pids", netns).split()]


def kill_all_in(netns: str) -> None:
    """End every process in the namespace: sshd's per-connection children leave its process group."""
    def gone() -> bool:
        pids = netns_pids(netns)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not pids
    wait(gone, f"the processes in {netns} to end", STOP_TIMEOUT_S)


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def delete_link(name: str) -> bool:
    """Delete a link on the runner; False when it was gone by then.

    The kernel destroys a deleted namespace, and the veth pair with it, in the background: a veth
    listed just after `ip netns del` can vanish before its own delete runs (a clean CI run saw
    "Cannot find device", and the bridge was left behind with its route)."""
    try:
        ip("link", "del", name)
        return True
    except HostError:
        if link_exists(name):
            raise
        return False
