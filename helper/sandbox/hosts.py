"""Real SSH hosts: one network namespace per instance, each running Debian's sshd.

The tests (tests/sandbox/test_sshhosts.py, tests/realdeploy.py) and `sandbox up --hosts` make their hosts
here. A `HostNetwork` puts a Linux bridge in the root namespace that carries the gateway address of
a CIDR (by default moto's default-VPC range), so the private IP moto gives an instance is reachable
from the runner as it is. `add_host(ip)` makes a namespace holding that IP, joined to the
bridge by a veth pair, with `/usr/sbin/sshd` running inside it and inside a mount namespace of its
own: a private directory is bind-mounted over the deploy root (`/srv`), so hosts never share
deploy files. `add_bastion()` makes a host that is also the only way into a second, inner subnet.
A network given an `ipv6_cidr` as well carries that prefix's gateway on the same bridge, and
`add_host(ip, ipv6=...)` gives the host that IPv6 address too, with sshd listening on both.

Nothing here contacts anything but these namespaces: each CIDR is checked against the runner's
routes before it is used, and an inner subnet gets an `unreachable` route in the root namespace
so a direct attempt fails at once instead of leaving by the default route. An IPv6 prefix must
also be a unique-local or documentation one (fc00::/7, 2001:db8::/32): routing a global prefix
(moto hands out Amazon's real 2400:6500::/32) to the bridge would take it from the whole runner.

Everything a network makes is recorded on an undo stack as it is made; `close()` unwinds it, also
after a failure half-way through, and a second `close()` does nothing. Every name it makes carries
the network's tag, so `remove_leftovers(tag, workdir)` can remove what a killed process left.
Needs root, `ip` (iproute2), `unshare` and Debian's `openssh-server`; `available()` says why not.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from helper.sandbox import host_locks
from helper.sandbox import netns as ns
from helper.sandbox.netns import (  # noqa: F401 (HostError, available: importers take them from here)
    DEFAULT_CIDR,
    DEFAULT_DEPLOY_ROOT,
    LOCAL_IPV6_PREFIXES,
    LOCK_TIMEOUT_S,
    HostError,
    available,
)
from helper.sandbox.sshd_host import SshHost, keygen, pub  # noqa: F401 (SshHost: importers take it from here)

_network_count = 0
_network_count_lock = threading.Lock()
_cidrs_held_here: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
@dataclass
class _Subnet:
    """A CIDR with its gateway: the runner's bridge, or a bastion's inner bridge; IPv4 or IPv6."""
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    bridge: str
    netns: str | None  # the namespace holding the bridge; None is the runner's
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address = field(init=False)
    used: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.cidr.num_addresses < 4:
            raise HostError(f"{self.cidr} is too small for a gateway and hosts")
        # The last usable address (IPv6 has no broadcast address): moto never hands it out in
        # IPv4, and in IPv6 picks at random among 2**64, so it would have to hit this one.
        self.gateway = self.cidr[-1] if self.cidr.version == 6 else self.cidr.broadcast_address - 1

    def claim(self, ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise HostError(f"{ip!r} is not an IP address") from None
        reserved = (self.cidr.network_address,) + ((self.cidr.broadcast_address,) if self.cidr.version == 4 else ())
        if address.version != self.cidr.version or address not in self.cidr or address in reserved:
            raise HostError(f"{ip} is not a host address of {self.cidr}")
        if address == self.gateway or address in self.used:
            raise HostError(f"{ip} is already taken on {self.cidr}")
        self.used.add(address)
        return address


def _local_ipv6_network(cidr: str) -> ipaddress.IPv6Network:
    try:
        network = ipaddress.IPv6Network(cidr)
    except ValueError as error:
        raise HostError(f"{cidr!r} is not an IPv6 prefix: {error}") from None
    if not any(network.subnet_of(local) for local in LOCAL_IPV6_PREFIXES):
        raise HostError(f"{cidr} is not unique-local (fc00::/7) or documentation (2001:db8::/32); "
                        "routing it to test hosts would take it from the whole runner")
    return network


def new_tag() -> str:
    """A tag for the next network: pid + counter, unique among live processes and networks, short
    enough for IFNAMSIZ. Take it before making the network to record it first (see remove_leftovers)."""
    global _network_count
    with _network_count_lock:
        _network_count += 1
        return ns.base36(os.getpid()) + ns.base36(_network_count)


def _names(tag: str) -> tuple[str, str]:
    """(the bridge's name, the prefix of every namespace) of the network tagged `tag`."""
    return f"adhb{tag}", f"adh{tag}-"


def remove_leftovers(tag: str, workdir: Path | None = None) -> list[str]:
    """Remove what the network tagged `tag` made, from its names alone: for a process that was
    killed before its close() ran. Every process in its namespaces ends (sshd and its sessions),
    the namespaces go (and with them the veth pairs, whose host ends live inside), then the bridge
    and `workdir`. Returns what was removed, one entry each; nothing left is an empty list."""
    bridge, prefix = _names(tag)
    removed = []
    for line in ns.ip("netns", "list").splitlines():
        netns = line.split()[0] if line.split() else ""
        if netns.startswith(prefix):
            ns.kill_all_in(netns)
            ns.ip("netns", "del", netns)
            removed.append(f"namespace {netns}")
    links = json.loads(ns.ip("-j", "link", "show") or "[]")
    for link in links:  # a veth whose namespace went goes with it; one left attached goes here
        if link.get("master") == bridge and ns.delete_link(link["ifname"]):
            removed.append(f"link {link['ifname']}")
    if any(link["ifname"] == bridge for link in links) and ns.delete_link(bridge):
        removed.append(f"bridge {bridge}")
    if workdir is not None and workdir.exists():
        shutil.rmtree(workdir, ignore_errors=True)
        removed.append(str(workdir))
    return removed


class HostNetwork:
    """A bridge on the runner for `cidr` plus the hosts on it; `close()` removes all of it.

    `tag` (from new_tag) names everything made; `workdir`, a directory that must not exist yet,
    holds the keys, configs and deploy roots (default: a new temp directory). `ipv6_cidr`, a
    unique-local or documentation prefix, puts IPv6 on the same bridge for `add_host(ipv6=)`."""

    def __init__(self, cidr: str = DEFAULT_CIDR, *, deploy_root: str = DEFAULT_DEPLOY_ROOT,
                 tag: str | None = None, workdir: Path | None = None, ipv6_cidr: str | None = None) -> None:
        self.tag = tag or new_tag()
        self.deploy_root = deploy_root
        self.hosts: list[SshHost] = []
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._host_count = 0
        self._bastion_subnets: dict[str, _Subnet] = {}
        self.subnet6: _Subnet | None = None
        try:
            if workdir is None:
                self.workdir = Path(tempfile.mkdtemp(prefix=f"adh-hosts-{self.tag}-"))
            else:
                workdir.mkdir(mode=0o700)
                self.workdir = workdir
            self._push(f"remove {self.workdir}", lambda: shutil.rmtree(self.workdir, ignore_errors=True))
            self.subnet = _Subnet(ipaddress.IPv4Network(cidr), ns.ifname(_names(self.tag)[0]), None)
            self._claim_cidr(self.subnet.cidr)
            self.deploy_key = self.workdir / "deploy_key"
            keygen(self.deploy_key, f"deploy-{self.tag}")
            self.authorized_keys = self.workdir / "authorized_keys"
            shutil.copyfile(pub(self.deploy_key), self.authorized_keys)
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
            bridge = self.subnet.bridge
            ns.ip("link", "add", bridge, "type", "bridge")
            self._push(f"delete bridge {bridge}", lambda: ns.ip("link", "del", bridge))
            ns.ip("addr", "add", f"{self.subnet.gateway}/{self.subnet.cidr.prefixlen}", "dev", bridge)
            if ipv6_cidr is not None:
                self.subnet6 = _Subnet(_local_ipv6_network(ipv6_cidr), bridge, None)
                self._claim_cidr(self.subnet6.cidr)
                # nodad: usable at once, not after a second of duplicate detection. Deleting the
                # bridge takes the address and its route with it.
                ns.ip("-6", "addr", "add", f"{self.subnet6.gateway}/{self.subnet6.cidr.prefixlen}", "dev", bridge,
                    "nodad")
            ns.ip("link", "set", bridge, "up")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> HostNetwork:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def gateway(self) -> str:
        return str(self.subnet.gateway)

    def add_host(self, ip: str, name: str | None = None, *, behind: SshHost | None = None,
                 start: bool = True, ipv6: str | None = None) -> SshHost:
        """A host at `ip` on the runner's subnet, or on `behind`'s inner subnet; sshd is up unless start=False.
        With `ipv6` (runner's subnet only) the host has that address of the network's ipv6_cidr too."""
        subnet = self.subnet if behind is None else self._bastion_subnets.get(behind.name)
        if subnet is None:
            raise HostError(f"{behind!r} is not a bastion of this network")
        if ipv6 is not None and (self.subnet6 is None or behind is not None):
            raise HostError(f"no IPv6 subnet for {ipv6}: give the network an ipv6_cidr (inner subnets have none)")
        host = self._make_host(subnet, ip, name, ipv6=ipv6)
        host._probe_netns = None if behind is None else behind.netns
        if start:
            host.start()
        return host

    def add_bastion(self, ip: str, inner_cidr: str, name: str = "bastion") -> SshHost:
        """A host at `ip` that holds the bridge of `inner_cidr`: the runner reaches hosts added with
        `behind=` only through it (ProxyJump). The runner's route to `inner_cidr` is `unreachable`."""
        bastion = self._make_host(self.subnet, ip, name, bastion=True)
        inner = _Subnet(ipaddress.IPv4Network(inner_cidr), "inner0", bastion.netns)
        self._claim_cidr(inner.cidr)
        ns.ip("route", "add", "unreachable", str(inner.cidr))
        self._push(f"delete the route to {inner.cidr}", lambda: ns.ip("route", "del", "unreachable", str(inner.cidr)))
        ns.ip("link", "add", inner.bridge, "type", "bridge", netns=bastion.netns)
        ns.ip("addr", "add", f"{inner.gateway}/{inner.cidr.prefixlen}", "dev", inner.bridge, netns=bastion.netns)
        ns.ip("link", "set", inner.bridge, "up", netns=bastion.netns)
        self._bastion_subnets[bastion.name] = inner
        bastion.start()
        return bastion

    def close(self) -> None:
        """Remove sshd processes, namespaces, veths, routes, the bridge and temp files; safe to repeat."""
        problems = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as error:  # keep unwinding: one stuck step must not strand the rest
                problems.append(f"{what}: {error}")
        if problems:
            raise HostError("hosts not fully removed:\n" + "\n".join(problems))

    def _push(self, what: str, undo: Callable[[], None]) -> None:
        self._undo.append((what, undo))

    def _make_host(self, subnet: _Subnet, ip: str, name: str | None, bastion: bool = False,
                   ipv6: str | None = None) -> SshHost:
        index = ns.base36(self._host_count + 1)
        name = name or f"h{index}"
        if any(host.name == name for host in self.hosts):
            raise HostError(f"a host named {name!r} exists already")
        address = subnet.claim(ip)
        address6 = self.subnet6.claim(ipv6) if ipv6 is not None else None
        self._host_count += 1
        netns = _names(self.tag)[1] + name
        ns.ip("netns", "add", netns)
        self._push(f"delete namespace {netns}", lambda: (ns.kill_all_in(netns), ns.ip("netns", "del", netns)))
        # The host's end is created inside its namespace, so `eth0` never clashes with the runner's.
        outside = ns.ifname(f"adh{self.tag}h{index}")
        ns.ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", netns, netns=subnet.netns)
        self._push(f"delete veth {outside}", lambda: ns.ip("link", "del", outside, netns=subnet.netns))
        ns.ip("link", "set", outside, "master", subnet.bridge, "up", netns=subnet.netns)
        ns.ip("addr", "add", f"{address}/{subnet.cidr.prefixlen}", "dev", "eth0", netns=netns)
        ns.ip("link", "set", "eth0", "up", netns=netns)
        ns.ip("link", "set", "lo", "up", netns=netns)
        ns.ip("route", "add", "default", "via", str(subnet.gateway), netns=netns)
        if address6 is not None:  # after `up`: the prefix route that makes the gateway on-link needs it
            ns.ip("-6", "addr", "add", f"{address6}/{self.subnet6.cidr.prefixlen}", "dev", "eth0", "nodad", netns=netns)
            ns.ip("-6", "route", "add", "default", "via", str(self.subnet6.gateway), netns=netns)
        host = SshHost(self, name, str(address), netns, self.workdir / name, bastion=bastion,
                       ipv6=None if address6 is None else str(address6))
        self._push(f"stop sshd of {name}", host.stop)
        self.hosts.append(host)
        return host

    def _claim_cidr(self, cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
        """Hold the CIDR for this network: wait for another network on it, refuse a real route."""
        if cidr in _cidrs_held_here:  # waiting on our own lock would only time out
            raise HostError(f"another HostNetwork in this process holds {cidr}; close it first")
        _cidrs_held_here.add(cidr)
        self._push(f"release {cidr}", lambda: _cidrs_held_here.discard(cidr))
        lock_path = f"adh-sshhosts-{str(cidr.network_address).replace(':', '_')}-{cidr.prefixlen}.lock"
        try:
            lock = os.fdopen(host_locks.open_lock(lock_path), "a")
        except OSError as error:
            raise HostError(f"cannot take the lock {lock_path}: {error}") from None
        self._push(f"release {lock_path}", lock.close)  # closing the file releases the flock

        def acquired() -> bool:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        ns.wait(acquired, f"{lock_path} (another HostNetwork on {cidr}, maybe in this process)", LOCK_TIMEOUT_S)
        for route in json.loads(ns.ip(f"-{cidr.version}", "-j", "route", "show")):
            if route["dst"] == "default":
                continue
            if ipaddress.ip_network(route["dst"], strict=False).overlaps(cidr):
                raise HostError(f"the runner already routes {route['dst']} ({route.get('dev') or route.get('type')}),"
                                f" which overlaps {cidr}; a network left over from a killed run? see `ip route`")
