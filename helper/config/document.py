"""The configuration file: parse once, validate every field, and name file:line on error.

The 2014 tool's file (aws: keys, path: ssh/cap files, sites: elb/region/keys) loads
unchanged. Everything else is an addition with a default.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from helper.aws.access import StaticCredentials
from helper.aws.names import ROLE_ARN_RE
from helper.config import fields
from helper.config.filters import FILTER_KEYS, SiteFilters, parse_filters, tag_values  # noqa: F401 (importers read them here)
from helper.config.groups import RESERVED_GROUPS, group_name
from helper.config.jump import jump_hops
from helper.config.output_mode import parse_output_mode
from helper.config.rollout import RolloutConfig, parse_rollout
from helper.config.yamlfile import Located
from helper.errors import ConfigError

if TYPE_CHECKING:  # imported where a lifecycle: section is parsed: an inventory run needs none of it
    from helper.config.lifecycle import LifecycleConfig

log = logging.getLogger(__name__)


# How a site names the instances that serve it: config key -> discovery source kind.
# Several spellings map to one kind so both the original file and newer ones read well.
SOURCE_KEYS = {
    "elb": "classic_elb",
    "load_balancer": "elbv2",
    "alb": "elbv2",
    "nlb": "elbv2",
    "target_group": "target_group",
    "auto_scaling_group": "auto_scaling_group",
    "asg": "auto_scaling_group",
    "tags": "tags",
}

ADDRESS_CHOICES = ("private", "public", "auto", "ipv6")
# How ssh reaches an instance: directly (or through proxy_jump), or through an `aws` CLI
# tunnel (Session Manager, EC2 Instance Connect Endpoint) when port 22 is not routable.
TRANSPORTS = ("ssh", "ssm", "eice")
# An EC2 Instance Connect Endpoint id as EC2 prints it.
EICE_ID_RE = re.compile(r"eice-[0-9a-f]{8,17}")
SSH_CONFIG_MODES = ("file", "block")

# Keys that a site may set, and that `defaults:` may set for every site.
SITE_OPTION_KEYS = {
    "region", "profile", "role_arn", "user", "port", "address", "proxy_jump", "bastion",
    "keys", "identity_file", "roles", "transport", "instance_connect_endpoint_id", "filters",
    "roles_from_tag", "alias_tag", "rollout",
}
PATH_KEYS = {
    "ssh_config_file", "ssh_config_mode", "known_hosts_file", "cap_config_file",
    "ansible_inventory_file", "json_file", "revision_dir", "output_mode",
}
AWS_KEYS = {"access_key_id", "secret_access_key", "session_token", "region", "profile"}
TOP_KEYS = {"aws", "path", "defaults", "sites", "lifecycle"}

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Source:
    kind: str  # a value of SOURCE_KEYS
    value: Any  # a name, DNS name or ARN; a {tag: value(s)} mapping for "tags"


@dataclass(frozen=True)
class SiteConfig:
    name: str
    source: Source
    region: str = DEFAULT_REGION
    profile: str | None = None
    role_arn: str | None = None
    user: str | None = None
    port: int | None = None
    address: str = "private"
    proxy_jump: str | None = None
    identity_file: str | None = None
    roles: tuple[str, ...] = ()
    transport: str = "ssh"  # a value of TRANSPORTS
    instance_connect_endpoint_id: str | None = None  # eice only; None lets the CLI pick
    filters: SiteFilters = field(default_factory=SiteFilters)
    roles_from_tag: str | None = None  # a tag whose comma-separated values add roles per host
    alias_tag: str | None = None  # a tag whose value names a second, human alias per host
    rollout: RolloutConfig | None = None  # None: a full deploy runs on every host at once
    where: str = ""  # file:line of the site, for messages


@dataclass(frozen=True)
class Paths:
    ssh_config_file: str | None = None
    ssh_config_mode: str = "file"
    known_hosts_file: str | None = None
    cap_config_file: str | None = None
    ansible_inventory_file: str | None = None
    json_file: str | None = None
    # Where full deploys record each site's revision, so scale-up builds can pin it.
    revision_dir: str | None = None
    # Mode of the cap/Ansible/JSON outputs (helper.config.output_mode); None: 0600.
    output_mode: int | None = None


@dataclass(frozen=True)
class Config:
    path: str
    sites: tuple[SiteConfig, ...]
    paths: Paths = field(default_factory=Paths)
    credentials: StaticCredentials | None = None
    profile: str | None = None
    lifecycle: "LifecycleConfig | None" = None

    def hold_groups(self, site: str | None = None, region: str | None = None) -> tuple[str, ...]:
        """The Auto Scaling groups a fleet hold can cover: each site's asg: source and the lifecycle
        groups routed to it; of one site, or of every site (in one region: a client serves one)."""
        lc = self.lifecycle
        groups = [s.source.value for s in self.sites if s.source.kind == "auto_scaling_group"
                  and site in (None, s.name) and region in (None, s.region)]
        if lc is not None and region in (None, lc.region):
            groups += list(lc.groups_of(site))
        return tuple(dict.fromkeys(groups))


def _roles(doc: Located, value: Any, keys: tuple) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise fields.fail(doc, keys, "roles must be a list of names")
    return tuple(fields.name(doc, role, keys + (i,), "role") for i, role in enumerate(value))


def _tag_key(doc: Located, value: Any, keys: tuple) -> str | None:
    # A tag key reaches no output itself, but must be one (AWS: 1-128 characters).
    value = fields.string(doc, value, keys)
    if value is not None and len(value) > 128:
        raise fields.fail(doc, keys, "a tag key has at most 128 characters")
    return value


def _transport(doc: Located, merged: dict, where) -> tuple[str, str | None]:
    transport = fields.choice(doc, merged.get("transport"), where("transport"), TRANSPORTS, "ssh")
    endpoint = fields.string(doc, merged.get("instance_connect_endpoint_id"), where("instance_connect_endpoint_id"))
    if endpoint is not None and transport != "eice":
        raise fields.fail(doc, where("instance_connect_endpoint_id"), "needs transport: eice")
    if endpoint is not None and not EICE_ID_RE.fullmatch(endpoint):
        raise fields.fail(doc, where("instance_connect_endpoint_id"), f"{endpoint!r} is not eice-<hex>")
    if transport != "ssh" and ("proxy_jump" in merged or "bastion" in merged):
        jump = "bastion" if "bastion" in merged else "proxy_jump"
        raise fields.fail(doc, where(jump), f"transport {transport} needs no jump host; give one or the other")
    return transport, endpoint


def _source(doc: Located, site: dict, keys: tuple) -> Source:
    found = [key for key in site if key in SOURCE_KEYS]
    if len(found) != 1:
        wanted = ", ".join(sorted(SOURCE_KEYS))
        problem = "names no" if not found else f"names {len(found)} ({', '.join(found)}); give exactly one"
        raise fields.fail(doc, keys, f"site {problem} instance source ({wanted})")
    key = found[0]
    value = site[key]
    if key == "tags":
        tags = fields.mapping(doc, value, keys + (key,))
        if not tags:
            raise fields.fail(doc, keys + (key,), "tags must name at least one tag")
        return Source("tags", {tag: tag_values(doc, values, keys + (key, tag)) for tag, values in tags.items()})
    return Source(SOURCE_KEYS[key], fields.string(doc, value, keys + (key,)))


def _role_arn(doc: Located, value: str | None, keys: tuple) -> str | None:
    # Accepted as any text before, and failed only at the first AssumeRole (issue 24).
    if value is not None and not ROLE_ARN_RE.fullmatch(value):
        raise fields.fail(doc, keys, "must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    return value


def _proxy_jump(doc: Located, value: str | None, keys: tuple) -> str | None:
    if value is not None:
        try:
            jump_hops(value)
        except ValueError as exc:
            raise fields.fail(doc, keys, str(exc)) from None
    return value


def _site(doc: Located, name: Any, raw: Any, defaults: dict) -> SiteConfig:
    keys = ("sites", name)
    fields.name(doc, name, keys, "site name")
    site = fields.mapping(doc, raw, keys, SITE_OPTION_KEYS | set(SOURCE_KEYS))
    merged = {**defaults, **site}

    def where(key: str) -> tuple:
        return keys + (key,) if key in site else ("defaults", key)

    if "keys" in merged and "identity_file" in merged:
        raise fields.fail(doc, keys, "give keys or identity_file, not both")
    if "bastion" in merged and "proxy_jump" in merged:
        raise fields.fail(doc, keys, "give proxy_jump or bastion, not both")
    transport, endpoint = _transport(doc, merged, where)
    identity_key = "keys" if "keys" in merged else "identity_file"
    jump_key = "bastion" if "bastion" in merged else "proxy_jump"
    return SiteConfig(
        name=name,
        source=_source(doc, site, keys),
        region=fields.string(doc, merged.get("region"), where("region")) or DEFAULT_REGION,
        profile=fields.string(doc, merged.get("profile"), where("profile")),
        role_arn=_role_arn(doc, fields.string(doc, merged.get("role_arn"), where("role_arn")), where("role_arn")),
        user=fields.login_name(doc, merged.get("user"), where("user")),
        port=fields.port(doc, merged.get("port"), where("port")),
        address=fields.choice(doc, merged.get("address"), where("address"), ADDRESS_CHOICES, "private"),
        proxy_jump=_proxy_jump(doc, fields.string(doc, merged.get(jump_key), where(jump_key)), where(jump_key)),
        identity_file=fields.string(doc, merged.get(identity_key), where(identity_key)),
        roles=_roles(doc, merged.get("roles"), where("roles")),
        transport=transport,
        instance_connect_endpoint_id=endpoint,
        filters=parse_filters(doc, merged.get("filters"), where("filters")),
        roles_from_tag=_tag_key(doc, merged.get("roles_from_tag"), where("roles_from_tag")),
        alias_tag=_tag_key(doc, merged.get("alias_tag"), where("alias_tag")),
        rollout=_rollout(doc, site, defaults, keys),
        where=doc.where(*keys),
    )


def _rollout(doc: Located, site: dict, defaults: dict, keys: tuple) -> RolloutConfig | None:
    """The site's rollout: over `defaults: rollout:` key by key, so a site can change one knob."""
    if "rollout" not in site and "rollout" not in defaults:
        return None
    base = fields.mapping(doc, defaults.get("rollout"), ("defaults", "rollout")) if "rollout" in defaults else {}
    own = fields.mapping(doc, site.get("rollout"), keys + ("rollout",)) if "rollout" in site else {}
    return parse_rollout(doc, {**base, **own}, keys + ("rollout",) if "rollout" in site else ("defaults", "rollout"))


def _credentials(doc: Located, aws: dict) -> StaticCredentials | None:
    key_id = fields.string(doc, aws.get("access_key_id"), ("aws", "access_key_id"))
    secret = fields.string(doc, aws.get("secret_access_key"), ("aws", "secret_access_key"))
    if key_id is None and secret is None:
        return None
    if key_id is None or secret is None:
        raise fields.fail(doc, ("aws",), "give both access_key_id and secret_access_key, or neither")
    log.warning(
        "event=static_credentials file=%s advice=%s", doc.where("aws"),
        "keys in the config file are deprecated; remove aws: and use the AWS credential chain, a profile or role_arn",
    )
    token = fields.string(doc, aws.get("session_token"), ("aws", "session_token"))
    return StaticCredentials(key_id, secret, token)


def parse(doc: Located) -> Config:
    """Turn a loaded YAML document into a validated Config."""
    top = fields.mapping(doc, doc.data, (), TOP_KEYS)
    if not top:
        raise ConfigError(f"{doc.path}: empty configuration; it needs a sites: mapping")
    aws = fields.mapping(doc, top.get("aws"), ("aws",), AWS_KEYS)
    paths_raw = fields.mapping(doc, top.get("path"), ("path",), PATH_KEYS)
    defaults = fields.mapping(doc, top.get("defaults"), ("defaults",), SITE_OPTION_KEYS)
    if "region" in aws and "region" not in defaults:
        # Checked here, under the key the user wrote: as a default it was blamed on defaults.region,
        # a key the file never had, with no line (issue 24).
        defaults = {**defaults, "region": fields.string(doc, aws["region"], ("aws", "region"))}
    sites_raw = fields.mapping(doc, top.get("sites"), ("sites",))
    if not sites_raw:
        raise fields.fail(doc, ("sites",), "no sites configured")
    sites = tuple(_site(doc, name, raw, defaults) for name, raw in sites_raw.items())
    _check_role_names(doc, sites)
    paths = Paths(
        **{key: fields.string(doc, paths_raw.get(key), ("path", key))
           for key in PATH_KEYS - {"ssh_config_mode", "output_mode"}},
        output_mode=parse_output_mode(doc, paths_raw.get("output_mode"), ("path", "output_mode")),
        ssh_config_mode=fields.choice(
            doc, paths_raw.get("ssh_config_mode"), ("path", "ssh_config_mode"), SSH_CONFIG_MODES, "file"
        ),
    )
    lifecycle = None
    if top.get("lifecycle") is not None:
        from helper.config.lifecycle import parse_lifecycle

        default_region = defaults.get("region") or DEFAULT_REGION
        lifecycle = parse_lifecycle(doc, top["lifecycle"], {s.name for s in sites}, default_region)
    return Config(
        path=doc.path,
        sites=sites,
        paths=paths,
        credentials=_credentials(doc, aws),
        profile=fields.string(doc, aws.get("profile"), ("aws", "profile")),
        lifecycle=lifecycle,
    )


def _check_role_names(doc: Located, sites: tuple[SiteConfig, ...]) -> None:
    # Roles and sites share one group namespace in the Ansible inventory, after Ansible's rewriting.
    site_groups: dict[str, str] = {}
    for site in sites:
        group = group_name(site.name)
        if group in RESERVED_GROUPS or site_groups.setdefault(group, site.name) != site.name:
            other = "Ansible's own" if group in RESERVED_GROUPS else f"site {site_groups[group]!r}'s"
            raise fields.fail(doc, ("sites", site.name), f"its Ansible group {group!r} is {other}")
    for site in sites:
        for role in site.roles:
            group = group_name(role)
            if group in RESERVED_GROUPS or group in site_groups:
                owner = "Ansible's own" if group in RESERVED_GROUPS else f"site {site_groups[group]!r}'s"
                what = "has the name of a site" if role in site_groups.values() else f"would be Ansible group {group!r}"
                raise fields.fail(doc, ("sites", site.name, "roles"), f"role {role!r} {what}, {owner}")
