"""A real SSH host (hosts.py) for every instance moto runs, made and removed as instances come and go.

A thread polls DescribeInstances in each region it is given and adds a host at each new pending
or running instance's private IP; the host of an instance that is gone (shutting down,
terminated) is stopped. Used by `sandbox serve --hosts` and by the tests' real deploys
(tests/realdeploy.py). close() stops the thread; the HostNetwork removes the hosts.
"""

from __future__ import annotations

import logging
import shutil
import threading
from typing import Callable

from helper.sandbox.hosts import HostError, HostNetwork, SshHost

log = logging.getLogger(__name__)

# A poll of in-process moto takes milliseconds; a new instance's host is up well before anything
# connects to it (a scale-up waits for the consumer's batch window and Jenkins' quiet period).
POLL_INTERVAL_S = 0.05
CLOSE_TIMEOUT_S = 30.0  # one poll may be starting an sshd (hosts.START_TIMEOUT_S) when close() comes
LIVE_STATES = ("pending", "running")


class FleetHosts:
    """A host per live instance of `ec2_clients` (one boto3 EC2 client per region)."""

    def __init__(self, network: HostNetwork, *ec2_clients, poll_interval_s: float = POLL_INTERVAL_S,
                 on_boot: Callable[[SshHost], None] | None = None) -> None:
        self.network, self.ec2_clients = network, ec2_clients
        # Runs on each host whose sshd came up, as an image's init starts its services (the web app).
        self.on_boot = on_boot
        self.poll_interval_s = poll_interval_s
        self._hosts: dict[str, SshHost] = {}
        self._gone: set[str] = set()  # instances no longer pending or running: their sshd is stopped
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.errors: list[str] = []
        self.sync()
        self._thread = threading.Thread(target=self._poll, name="fleet-hosts", daemon=True)
        self._thread.start()

    def host(self, instance_id: str) -> SshHost:
        with self._lock:
            return self._hosts[instance_id]

    def booted(self, instance_id: str) -> SshHost | None:
        """The instance's host once its sshd is up, else None."""
        with self._lock:
            host = self._hosts.get(instance_id)
        return host if host is not None and host.running else None

    def boots(self, instance_id: str) -> bool:
        """Whether the new instance's sshd comes up; a subclass can make a boot fail."""
        return True

    def sync(self) -> None:
        live = {}
        for ec2 in self.ec2_clients:
            for page in ec2.get_paginator("describe_instances").paginate(
                    Filters=[{"Name": "instance-state-name", "Values": list(LIVE_STATES)}]):
                for reservation in page["Reservations"]:
                    for instance in reservation["Instances"]:
                        live[instance["InstanceId"]] = instance["PrivateIpAddress"]
        booted = []
        with self._lock:
            for instance_id, host in self._hosts.items():
                if instance_id not in live and instance_id not in self._gone:
                    self._gone.add(instance_id)
                    host.stop()
                    log.info("event=host_stopped instance=%s ip=%s", instance_id, host.ip)
            for instance_id, ip in live.items():
                if instance_id not in self._hosts:
                    self._hosts[instance_id] = self._boot(ip, self.boots(instance_id))
                    booted.append(self._hosts[instance_id])
                    log.info("event=host_made instance=%s ip=%s", instance_id, ip)
        for host in booted:  # outside the lock: booted() answers while a service starts
            if self.on_boot is not None and host.running:
                self.on_boot(host)

    def _boot(self, ip: str, start: bool) -> SshHost:
        retired = [host for instance_id, host in self._hosts.items() if host.ip == ip and instance_id in self._gone]
        if not retired:
            return self.network.add_host(ip, start=start)
        # A recycled address: the namespace stays, the machine is new (empty disk, new host key).
        (host,) = retired
        shutil.rmtree(host.deploy_dir)
        host.deploy_dir.mkdir()
        host.restart(new_host_key=True) if start else host.stop()
        return host

    def close(self) -> None:
        """Stop watching; a poll that failed is raised here (a thread's exception is otherwise lost)."""
        self._stop.set()
        self._thread.join(timeout=CLOSE_TIMEOUT_S)
        if self.errors:
            raise HostError("watching the fleet's instances failed: " + "; ".join(self.errors))

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.sync()
            except Exception as error:  # the thread's boundary: reported by close(), and logged now
                log.error("event=fleet_hosts_failed error=%r", error)
                self.errors.append(repr(error))
                return
