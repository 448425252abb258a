"""One real SSH host of the sandbox: a network namespace with an IP, its own sshd, host key and
deploy root (made by helper/sandbox/hosts.py's HostNetwork)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol

from helper.sandbox import children
from helper.sandbox import netns as ns
from helper.sandbox.netns import SSH_PORT, SSHD, START_TIMEOUT_S, STOP_TIMEOUT_S, HostError


def keygen(path: Path, comment: str) -> None:
    ns.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def pub(key: Path) -> Path:
    return key.with_name(key.name + ".pub")  # not with_suffix: host keys are numbered `key.1`, `key.2`


class Network(Protocol):
    """What a host reads of its network (helper/sandbox/hosts.py's HostNetwork)."""

    deploy_root: str
    authorized_keys: Path


class SshHost:
    """One host: a network namespace with an IP, its own sshd, host key and deploy root."""

    def __init__(self, network: Network, name: str, ip: str, netns: str, workdir: Path,
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
        return pub(self._served_key).read_text().strip()

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
            return all(ns.accepts(ip, self._probe_netns) for ip in self.addresses)
        ns.wait(up, f"sshd for {self.name} at {' and '.join(self.addresses)} port {SSH_PORT}",
              START_TIMEOUT_S, self._log_tail)

    def stop(self) -> None:
        """Stop sshd and every process in the host's namespace (open sessions too); the port is closed."""
        if self._sshd is not None:
            children.end(self._sshd, STOP_TIMEOUT_S)
            self._sshd = None
        ns.kill_all_in(self.netns)

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
        keygen(path, f"{self.name}-{self._key_generation}")
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
