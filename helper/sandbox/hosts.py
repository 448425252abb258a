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

import ctypes
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from helper.sandbox import host_locks

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

_network_count = 0
_network_count_lock = threading.Lock()
_cidrs_held_here: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
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


def _run(argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kwargs)
    except subprocess.CalledProcessError as error:
        raise HostError(f"`{' '.join(argv)}` failed ({error.returncode}): {error.stderr.strip()}") from None


def _ip(*args: str, netns: str | None = None) -> str:
    return _run(["ip", *(("-n", netns) if netns else ()), *args]).stdout


def _ifname(name: str) -> str:
    if len(name) > IFNAMSIZ:
        raise HostError(f"interface name {name!r} is longer than the kernel's {IFNAMSIZ} characters")
    return name


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


def _wait(predicate: Callable[[], object], what: str, timeout_s: float, detail: Callable[[], str] = str):
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise HostError(f"timed out after {timeout_s} s waiting for {what}{detail()}")
        tick.wait(POLL_INTERVAL_S)


def _keygen(path: Path, comment: str) -> None:
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _pub(key: Path) -> Path:
    return key.with_name(key.name + ".pub")  # not with_suffix: host keys are numbered `key.1`, `key.2`


def _socket_in(netns: str | None, family: int = socket.AF_INET) -> socket.socket:
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


def _accepts(ip: str, netns: str | None) -> bool:
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    with _socket_in(netns, family) as probe:
        probe.settimeout(CONNECT_PROBE_S)
        return probe.connect_ex((ip, SSH_PORT)) == 0


def _netns_pids(netns: str) -> list[int]:
    return [int(pid) for pid in _ip("netns", "pids", netns).split()]


def _kill_all_in(netns: str) -> None:
    """End every process in the namespace: sshd's per-connection children leave its process group."""
    def gone() -> bool:
        pids = _netns_pids(netns)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not pids
    _wait(gone, f"the processes in {netns} to end", STOP_TIMEOUT_S)


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


class SshHost:
    """One host: a network namespace with an IP, its own sshd, host key and deploy root."""

    def __init__(self, network: HostNetwork, name: str, ip: str, netns: str, workdir: Path,
                 *, bastion: bool = False, ipv6: str | None = None) -> None:
        self.network, self.name, self.ip, self.netns = network, name, ip, netns
        self.ipv6 = ipv6  # a second address sshd listens on, or None
        self.workdir = workdir
        self.deploy_dir = workdir / "deploy-root"  # the runner's view of this host's deploy root
        self.deploy_dir.mkdir(parents=True)
        self.config_path = workdir / "sshd_config"
        self.log_path = workdir / "sshd.log"
        self._bastion = bastion
        self._key_generation = 0
        self._own_key = self._new_host_key()
        self._served_key = self._own_key
        self._sshd: subprocess.Popen | None = None
        # The vantage point that checks sshd is up: the runner, or the bastion for an inner host.
        self._probe_netns: str | None = None

    def __repr__(self) -> str:
        return f"SshHost({self.name!r}, {self.ip!r}{f', {self.ipv6!r}' if self.ipv6 else ''})"

    @property
    def host_key_pub(self) -> str:
        """The public host key line sshd serves now ("ssh-ed25519 AAAA... comment")."""
        return _pub(self._served_key).read_text().strip()

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address sshd listens on: the IPv4 one, then the IPv6 one if the host has it."""
        return (self.ip,) + ((self.ipv6,) if self.ipv6 else ())

    @property
    def running(self) -> bool:
        return self._sshd is not None and self._sshd.poll() is None

    def start(self) -> None:
        """Start sshd (no-op when running) and return once its port accepts connections."""
        if self.running:
            return
        self._write_config()
        with open(self.log_path, "ab") as log:
            self._sshd = subprocess.Popen(self._in_host([SSHD, "-D", "-e", "-f", str(self.config_path)]),
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)

        def up() -> bool:
            if self._sshd.poll() is not None:
                raise HostError(f"sshd for {self.name} ({self.ip}) exited with {self._sshd.returncode}"
                                f"{self._log_tail()}")
            return all(_accepts(ip, self._probe_netns) for ip in self.addresses)
        _wait(up, f"sshd for {self.name} at {' and '.join(self.addresses)} port {SSH_PORT}",
              START_TIMEOUT_S, self._log_tail)

    def stop(self) -> None:
        """Stop sshd and every process in the host's namespace (open sessions too); the port is closed."""
        if self._sshd is not None:
            self._sshd.terminate()
            try:
                self._sshd.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._sshd.kill()
                self._sshd.wait()
            self._sshd = None
        _kill_all_in(self.netns)

    def restart(self, new_host_key: bool = True) -> None:
        """Stop and start at the same IP, with a new host key (or its own again, ending `impersonate`)."""
        self.stop()
        if new_host_key:
            self._own_key = self._new_host_key()
        self._served_key = self._own_key
        self.start()

    def impersonate(self, other: SshHost) -> None:
        """Serve `other`'s host key from this host's address, as a machine taking over an address would."""
        self.stop()
        self._served_key = other._served_key
        self.start()

    def read(self, path: str) -> str:
        """A file's text as the host sees it, also while sshd is stopped: under the deploy root from
        the host's own directory, following links the host's way (Capistrano's `current` points at
        an absolute path under the deploy root); elsewhere the host shares the runner's files."""
        return self._runner_path(path).read_text()

    def run(self, cmd: Sequence[str] | str, check: bool = True, timeout_s: float = 30.0,
            ) -> subprocess.CompletedProcess[str]:
        """Run a command in the host's namespaces (network and deploy root); a string goes to `sh -c`."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        result = subprocess.run(self._in_host(argv), capture_output=True, text=True, timeout=timeout_s)
        if check and result.returncode != 0:
            raise HostError(f"{argv} on {self.name} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def _in_host(self, argv: list[str]) -> list[str]:
        # `unshare` gives the command a mount namespace of its own, private so the bind mount never
        # reaches the runner; if the mount fails, the command does not run at all.
        root = self.network.deploy_root
        return ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", 'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh",
                str(self.deploy_dir), root, *argv]

    def _new_host_key(self) -> Path:
        self._key_generation += 1
        path = self.workdir / f"ssh_host_ed25519_key.{self._key_generation}"
        _keygen(path, f"{self.name}-{self._key_generation}")
        return path

    def _write_config(self) -> None:
        # sshd reads ListenAddress once per line; an IPv6 address needs its brackets before `:port`.
        listen = "".join(f"ListenAddress {f'[{ip}]' if ':' in ip else ip}:{SSH_PORT}\n" for ip in self.addresses)
        options = {
            "HostKey": str(self._served_key),
            "PidFile": str(self.workdir / "sshd.pid"),
            "AuthorizedKeysFile": str(self.network.authorized_keys),
            "PermitRootLogin": "prohibit-password",  # hosts need root to be made, so the deploy user is root
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "UsePAM": "no",
            "StrictModes": "no",  # the keys live in temp dirs whose modes sshd would otherwise judge
            # No AcceptEnv line: the client's environment (LANG, LC_*) never reaches the host.
            "AllowTcpForwarding": "yes" if self._bastion else "no",  # ProxyJump works only via the bastion
            "X11Forwarding": "no",
            "PrintMotd": "no",
            "UseDNS": "no",
            "LogLevel": "VERBOSE",
            "Subsystem": "sftp internal-sftp",
        }
        self.config_path.write_text(listen + "".join(f"{key} {value}\n" for key, value in options.items()))

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-20:]
        except FileNotFoundError:
            return "; no sshd log"
        return f"; sshd log {self.log_path}:\n" + "\n".join(lines)

    def _runner_path(self, path: str) -> Path:
        host_path = PurePosixPath(path)
        if not host_path.is_absolute():
            raise HostError(f"{path!r}: give the host's absolute path")
        pending, resolved, hops = list(host_path.parts[1:]), PurePosixPath("/"), 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                resolved = resolved.parent
                continue
            if part == ".":
                continue
            candidate = resolved / part
            if self._on_runner(candidate).is_symlink():
                hops += 1
                if hops > 40:  # the kernel's own limit on links in one lookup (ELOOP)
                    raise HostError(f"{path}: too many levels of symbolic links")
                target = PurePosixPath(os.readlink(self._on_runner(candidate)))
                pending = list((resolved / target).parts[1:]) + pending
                resolved = PurePosixPath("/")
                continue
            resolved = candidate
        return self._on_runner(resolved)

    def _on_runner(self, host_path: PurePosixPath) -> Path:
        root = PurePosixPath(self.network.deploy_root)
        if host_path == root or root in host_path.parents:
            return self.deploy_dir / host_path.relative_to(root)
        return Path(host_path)


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
        return _base36(os.getpid()) + _base36(_network_count)


def _names(tag: str) -> tuple[str, str]:
    """(the bridge's name, the prefix of every namespace) of the network tagged `tag`."""
    return f"adhb{tag}", f"adh{tag}-"


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def _delete_link(name: str) -> bool:
    """Delete a link on the runner; False when it was gone by then.

    The kernel destroys a deleted namespace, and the veth pair with it, in the background: a veth
    listed just after `ip netns del` can vanish before its own delete runs (a clean CI run saw
    "Cannot find device", and the bridge was left behind with its route)."""
    try:
        _ip("link", "del", name)
        return True
    except HostError:
        if _link_exists(name):
            raise
        return False


def remove_leftovers(tag: str, workdir: Path | None = None) -> list[str]:
    """Remove what the network tagged `tag` made, from its names alone: for a process that was
    killed before its close() ran. Every process in its namespaces ends (sshd and its sessions),
    the namespaces go (and with them the veth pairs, whose host ends live inside), then the bridge
    and `workdir`. Returns what was removed, one entry each; nothing left is an empty list."""
    bridge, prefix = _names(tag)
    removed = []
    for line in _ip("netns", "list").splitlines():
        netns = line.split()[0] if line.split() else ""
        if netns.startswith(prefix):
            _kill_all_in(netns)
            _ip("netns", "del", netns)
            removed.append(f"namespace {netns}")
    links = json.loads(_ip("-j", "link", "show") or "[]")
    for link in links:  # a veth whose namespace went goes with it; one left attached goes here
        if link.get("master") == bridge and _delete_link(link["ifname"]):
            removed.append(f"link {link['ifname']}")
    if any(link["ifname"] == bridge for link in links) and _delete_link(bridge):
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
            self.subnet = _Subnet(ipaddress.IPv4Network(cidr), _ifname(_names(self.tag)[0]), None)
            self._claim_cidr(self.subnet.cidr)
            self.deploy_key = self.workdir / "deploy_key"
            _keygen(self.deploy_key, f"deploy-{self.tag}")
            self.authorized_keys = self.workdir / "authorized_keys"
            shutil.copyfile(_pub(self.deploy_key), self.authorized_keys)
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
            bridge = self.subnet.bridge
            _ip("link", "add", bridge, "type", "bridge")
            self._push(f"delete bridge {bridge}", lambda: _ip("link", "del", bridge))
            _ip("addr", "add", f"{self.subnet.gateway}/{self.subnet.cidr.prefixlen}", "dev", bridge)
            if ipv6_cidr is not None:
                self.subnet6 = _Subnet(_local_ipv6_network(ipv6_cidr), bridge, None)
                self._claim_cidr(self.subnet6.cidr)
                # nodad: usable at once, not after a second of duplicate detection. Deleting the
                # bridge takes the address and its route with it.
                _ip("-6", "addr", "add", f"{self.subnet6.gateway}/{self.subnet6.cidr.prefixlen}", "dev", bridge,
                    "nodad")
            _ip("link", "set", bridge, "up")
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
        _ip("route", "add", "unreachable", str(inner.cidr))
        self._push(f"delete the route to {inner.cidr}", lambda: _ip("route", "del", "unreachable", str(inner.cidr)))
        _ip("link", "add", inner.bridge, "type", "bridge", netns=bastion.netns)
        _ip("addr", "add", f"{inner.gateway}/{inner.cidr.prefixlen}", "dev", inner.bridge, netns=bastion.netns)
        _ip("link", "set", inner.bridge, "up", netns=bastion.netns)
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
        index = _base36(self._host_count + 1)
        name = name or f"h{index}"
        if any(host.name == name for host in self.hosts):
            raise HostError(f"a host named {name!r} exists already")
        address = subnet.claim(ip)
        address6 = self.subnet6.claim(ipv6) if ipv6 is not None else None
        self._host_count += 1
        netns = _names(self.tag)[1] + name
        _ip("netns", "add", netns)
        self._push(f"delete namespace {netns}", lambda: (_kill_all_in(netns), _ip("netns", "del", netns)))
        # The host's end is created inside its namespace, so `eth0` never clashes with the runner's.
        outside = _ifname(f"adh{self.tag}h{index}")
        _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", netns, netns=subnet.netns)
        self._push(f"delete veth {outside}", lambda: _ip("link", "del", outside, netns=subnet.netns))
        _ip("link", "set", outside, "master", subnet.bridge, "up", netns=subnet.netns)
        _ip("addr", "add", f"{address}/{subnet.cidr.prefixlen}", "dev", "eth0", netns=netns)
        _ip("link", "set", "eth0", "up", netns=netns)
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("route", "add", "default", "via", str(subnet.gateway), netns=netns)
        if address6 is not None:  # after `up`: the prefix route that makes the gateway on-link needs it
            _ip("-6", "addr", "add", f"{address6}/{self.subnet6.cidr.prefixlen}", "dev", "eth0", "nodad", netns=netns)
            _ip("-6", "route", "add", "default", "via", str(self.subnet6.gateway), netns=netns)
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
        _wait(acquired, f"{lock_path} (another HostNetwork on {cidr}, maybe in this process)", LOCK_TIMEOUT_S)
        for route in json.loads(_ip(f"-{cidr.version}", "-j", "route", "show")):
            if route["dst"] == "default":
                continue
            if ipaddress.ip_network(route["dst"], strict=False).overlaps(cidr):
                raise HostError(f"the runner already routes {route['dst']} ({route.get('dev') or route.get('type')}),"
                                f" which overlaps {cidr}; a network left over from a killed run? see `ip route`")
