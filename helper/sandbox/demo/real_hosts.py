"""`sandbox up --hosts`: every demo instance a real SSH host (helper/sandbox/hosts.py).

The serve process makes a HostNetwork on moto's default-VPC range, and a FleetHosts watcher gives
each running instance of both demo regions a host (and stops a terminated one's). Before anything
is made, the network's tag, workdir and the serve process's pid go into `hosts.json` in the state
directory (and HAProxy's pid, once it runs); the file goes only once the network is removed. So `sandbox down` can remove what a
killed serve process left (namespaces, veths, the bridge, sshd, the keys) from that record alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path

from helper.errors import ConfigError, HelperError
from helper.files.write import write_atomic
from helper.sandbox import hosts
from helper.sandbox.aws import fleet
from helper.sandbox.demo import load_balancer, records
from helper.sandbox.fleet_hosts import FleetHosts

log = logging.getLogger(__name__)

RECORD_FILE = "hosts.json"
WORKDIR = "ssh-hosts"  # keys, sshd configs and each host's deploy root, under the state directory
# Hosts are made as root (network namespaces), so the deploy user they accept is root.
DEPLOY_USER = "root"
RECORD_MODE = 0o600
# hosts.new_tag(): two base-36 numbers, short enough for interface names.
TAG_RE = re.compile(r"[0-9a-z]{2,10}")


def refusal() -> str | None:
    """One line saying why --hosts cannot work here, or None."""
    reason = hosts.available()
    return None if reason is None else f"--hosts cannot make real hosts here: {reason}"


def read_record(directory: Path) -> dict | None:
    """hosts.json, checked like state.json (helper/sandbox/demo/records.py); its tag names what
    `sandbox down` removes, so it must be one hosts.new_tag() could have made (an empty or odd
    one would match other networks' names)."""
    record = records.read_record(directory / RECORD_FILE, {"pid": int, "tag": str})
    if record is not None and not TAG_RE.fullmatch(record["tag"]):
        raise ConfigError(f"{directory / RECORD_FILE}: not a sandbox record (tag is not one we make); "
                          "remove it, or use another --state-dir")
    return record


def start(directory: Path, running: contextlib.ExitStack) -> tuple[hosts.HostNetwork, fleet.DemoSsh]:
    """Record, then make, the network; `running` removes it (and then the record) on the way out."""
    record_path = directory / RECORD_FILE
    if record_path.exists():
        raise HelperError(f"{record_path} records hosts of an earlier sandbox; run `sandbox down` first")
    tag = hosts.new_tag()
    workdir = directory / WORKDIR
    record = {"pid": os.getpid(), "pid_start": records.process_start(os.getpid()), "tag": tag,
              "workdir": str(workdir), "cidr": hosts.DEFAULT_CIDR}
    write_atomic(record_path, json.dumps(record, indent=2) + "\n", mode=RECORD_MODE)
    try:
        network = hosts.HostNetwork(hosts.DEFAULT_CIDR, tag=tag, workdir=workdir)
    except hosts.HostError as error:  # the network removed what it had made before raising
        record_path.unlink()
        raise HelperError(f"--hosts: {error}") from None

    def close() -> None:
        network.close()
        record_path.unlink(missing_ok=True)  # kept if close() failed: `sandbox down` tries again
    running.callback(close)
    log.info("event=hosts_network tag=%s cidr=%s workdir=%s", tag, hosts.DEFAULT_CIDR, workdir)
    return network, fleet.DemoSsh(user=DEPLOY_USER, identity_file=str(network.deploy_key))


def watch(directory: Path, network: hosts.HostNetwork, aws_url: str, demo: fleet.DemoFleet,
          running: contextlib.ExitStack) -> dict:
    """A host per instance of the demo's regions, now and as they come and go, each running the web
    app, behind HAProxy as the demo's load balancers (load_balancer.py); the state's entry."""
    regions = sorted({demo.region, fleet.API_REGION})
    watcher = FleetHosts(network, *(fleet.client("ec2", aws_url, region) for region in regions),
                         on_boot=load_balancer.boot_app)

    def close() -> None:
        try:
            watcher.close()
        except hosts.HostError as error:  # the network is removed next either way
            log.error("event=fleet_hosts_failed error=%s", error)
    running.callback(close)

    def record_balancer(pid: int, started: str | None) -> None:
        record_path = directory / RECORD_FILE
        record = {**read_record(directory), "haproxy_pid": pid, "haproxy_start": started}
        write_atomic(record_path, json.dumps(record, indent=2) + "\n", mode=RECORD_MODE)
    balancers = load_balancer.start(directory, aws_url, demo, running, record_balancer)
    return {"cidr": hosts.DEFAULT_CIDR, "user": DEPLOY_USER, "identity_file": str(network.deploy_key),
            "tag": network.tag, "load_balancers": balancers}


def sweep(directory: Path) -> list[str]:
    """Remove what the record says a sandbox made and did not remove; what went, one entry each.
    Call it once the recorded serve process is gone."""
    record = read_record(directory)
    if record is None:
        return []
    # Only the directory the sandbox makes, inside this state directory, and never through a link:
    # the record's own "workdir" may name anything (issue 19 item 10), so it is not used.
    workdir = directory / WORKDIR
    if workdir.is_symlink() or (workdir.exists() and not workdir.is_dir()):
        raise HelperError(f"{workdir} is not the directory the sandbox made (a link or a file); "
                          "remove it yourself after checking what it is")
    removed = load_balancer.sweep(directory, record)
    try:
        removed += hosts.remove_leftovers(record["tag"], workdir)
    except hosts.HostError as error:
        raise HelperError(f"the sandbox's hosts ({directory / RECORD_FILE}) not removed: {error}") from None
    (directory / RECORD_FILE).unlink()
    return removed
