"""The data that flows through the inventory pipeline.

discover -> Membership + Instance, select -> the in-service subset,
name -> Host, render -> text. All frozen: each step returns new values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# EC2 states a reachable instance can be in; terminated or stopped ones never are. Here, with
# the data, so selection (pure) does not import discover and with it botocore.
LIVE_STATES = ("pending", "running")


@dataclass(frozen=True)
class Membership:
    """What a load balancer, target group, group or tag query says about one instance."""

    instance_id: str
    in_service: bool
    # The source's own word, kept for the JSON output and for messages:
    # "InService", "healthy", "draining", "Pending:Wait", "running", ...
    status: str


@dataclass(frozen=True)
class Instance:
    """The EC2 facts the outputs need about one instance."""

    instance_id: str
    state: str
    private_ip: str | None = None
    public_ip: str | None = None
    private_dns: str | None = None
    public_dns: str | None = None
    ipv6: str | None = None  # the primary interface's first IPv6 address
    availability_zone: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    # Why EC2's description cannot be used (an address that is not one), else None.
    # Kept, not raised: instances are described for several sites at once, and only the
    # sites that choose this instance must fail.
    problem: str | None = None


@dataclass(frozen=True)
class Tunnel:
    """How ssh reaches a host that has no route to port 22: an `aws` CLI session on stdio."""

    kind: str  # "ssm" (Session Manager) or "eice" (EC2 Instance Connect Endpoint)
    region: str
    profile: str | None = None
    endpoint_id: str | None = None  # eice only


@dataclass(frozen=True)
class Host:
    """One instance of one site, named and addressed, ready to render."""

    site: str
    alias: str
    address: str
    instance: Instance
    status: str
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    proxy_jump: str | None = None
    roles: tuple[str, ...] = ()
    tunnel: Tunnel | None = None
    # A second, readable alias from a tag (`<site>-<value>-<last 5 of the id>`), or None.
    tag_alias: str | None = None


@dataclass(frozen=True)
class SiteInventory:
    """Every host of one site, sorted by alias so that outputs are stable."""

    site: str
    hosts: tuple[Host, ...] = field(default=())
