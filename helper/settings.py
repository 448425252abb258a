"""One Settings object per run: the config file plus command-line flags plus environment.

This is the only module that reads environment variables (twine's Settings, lifecycled's
DefaultEnvars); nothing below it sees argparse or os.environ. It imports no AWS SDK:
`revision get`, which every scale-up build runs, loads this module and nothing of botocore
(tests/test_edges.py).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field, replace
from typing import Mapping

from helper import PROG
from helper.aws.names import is_instance_id
from helper.config import document as config_mod
from helper.config import yamlfile
from helper.config.credentials import read_credentials
from helper.config.output_mode import DEFAULT_OUTPUT_MODE
from helper.errors import ConfigError

# Two per core is plenty: the workers spend their time waiting on AWS, and more
# parallel describe calls per account only invite throttling.
DEFAULT_MAX_WORKERS = 8

KNOWN_HOSTS_NAME = f"{PROG}_known_hosts"


@dataclass(frozen=True)
class Selection:
    """Which of a site's instances a run wants (helper/inventory/selection.py applies it); the
    default is "in service now"."""

    include_out_of_service: bool = False
    # A scale-up build names the instances it deploys; they are still in Pending:Wait,
    # so naming them includes them whatever their service state.
    instance_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Outputs:
    """Where each output goes; None means "do not write it"."""

    ssh_config_file: str | None = None
    ssh_config_mode: str = "file"
    known_hosts_file: str = f"~/.ssh/{KNOWN_HOSTS_NAME}"  # absolute (or ~): ssh may run anywhere
    cap_config_file: str | None = None
    ansible_inventory_file: str | None = None
    json_file: str | None = None  # "-" is stdout
    list_hosts: bool = False  # aliases on stdout, one a line
    host_list_mode: int = DEFAULT_OUTPUT_MODE  # cap, Ansible and JSON files
    # Every configured site: an alias is pruned from known_hosts only if no other site could own it.
    site_names: tuple[str, ...] = ()
    # False when the run saw only some instances of a site: the others are not gone.
    prune_known_hosts: bool = True


@dataclass(frozen=True)
class Settings:
    config: config_mod.Config
    outputs: Outputs
    selection: Selection = field(default_factory=Selection)
    endpoint_url: str | None = None
    only_sites: tuple[str, ...] = ()
    keep_going: bool = False
    dry_run: bool = False
    max_workers: int = DEFAULT_MAX_WORKERS

    @property
    def launching_groups(self) -> dict[str, tuple[str, ...]]:
        """Site -> the Auto Scaling groups whose launches the consumer deploys to it."""
        lc = self.config.lifecycle
        return {site: lc.groups_of(site) for site in lc.routed_sites} if lc else {}

    @property
    def sites(self) -> tuple[config_mod.SiteConfig, ...]:
        if not self.only_sites:
            return self.config.sites
        return tuple(s for s in self.config.sites if s.name in self.only_sites)

    @classmethod
    def from_args(cls, args, environ: Mapping[str, str] | None = None) -> "Settings":
        environ = os.environ if environ is None else environ
        config = with_absolute_key_paths(load_config(args.config))
        for name in args.site or ():
            site_named(config, name)
        ids = _instance_ids(args.instance_ids or ())
        if ids and len(args.site or ()) != 1:
            raise ConfigError("--instance-ids needs exactly one --site")
        return cls(
            config=config,
            outputs=_outputs(args, config, restricted=bool(args.site or ids)),
            selection=Selection(include_out_of_service=args.include_out_of_service, instance_ids=ids),
            endpoint_url=endpoint_url(args, environ),
            only_sites=tuple(args.site or ()),
            keep_going=args.keep_going,
            dry_run=args.dry_run,
        )


def endpoint_url(args, environ: Mapping[str, str]) -> str | None:
    """--endpoint-url, else $AWS_ENDPOINT_URL, else None (AWS itself): the one fallback every command uses."""
    return getattr(args, "endpoint_url", None) or environ.get("AWS_ENDPOINT_URL") or None


def load_config(path: str) -> config_mod.Config:
    return config_mod.parse(yamlfile.load_file(path))


def site_named(config: config_mod.Config, name: str) -> config_mod.SiteConfig:
    for site in config.sites:
        if site.name == name:
            return site
    known = ", ".join(sorted(s.name for s in config.sites))
    raise ConfigError(f"--site {name}: no such site in {config.path} (known: {known})")


def _instance_ids(values) -> frozenset[str]:
    ids = set()
    for value in values:
        # `--instance-ids=,` must not mean "every instance": the Jenkinsfile reads any non-empty
        # INSTANCE_IDS as a canary (no fleet hold, no recorded revision; issue 19 item 9).
        if not re.sub(r"[,\s]", "", value):
            raise ConfigError(f"--instance-ids: {value!r} names no instance (leave it out to deploy every instance)")
        # Accept "i-1,i-2" and "i-1 i-2" as Jenkins string parameters arrive.
        for part in re.split(r"[,\s]+", value.strip()):
            if not part:
                continue
            if not is_instance_id(part):
                raise ConfigError(f"--instance-ids: {part!r} is not an EC2 instance id")
            ids.add(part)
    return frozenset(ids)


def absolute_path(path: str) -> str:
    """`path` made absolute against the current directory; `~` paths stay as written.

    ssh resolves a relative UserKnownHostsFile or IdentityFile against the directory it runs
    in, so a file written in a Jenkins workspace would break for a deploy run from elsewhere.
    ssh, net-ssh and Ansible all expand `~` themselves, to the home of whoever connects.
    """
    return path if path.startswith(("/", "~")) else os.path.abspath(path)


def with_absolute_key_paths(config: config_mod.Config) -> config_mod.Config:
    sites = tuple(
        replace(site, identity_file=absolute_path(site.identity_file)) if site.identity_file else site
        for site in config.sites
    )
    return replace(config, sites=sites)


def _outputs(args, config: config_mod.Config, restricted: bool) -> Outputs:
    """The outputs of this run.

    A run limited by --site or --instance-ids (a per-site or scale-up Jenkins build) writes
    only what its command line names: the config's `path:` files describe every site and
    must not be overwritten with one site or one instance.
    """
    paths = config_mod.Paths() if restricted else config.paths
    ssh_config = args.ssh_config or paths.ssh_config_file
    if args.known_hosts or paths.known_hosts_file:
        known_hosts = args.known_hosts or paths.known_hosts_file
    elif ssh_config:
        known_hosts = os.path.join(os.path.dirname(ssh_config) or ".", KNOWN_HOSTS_NAME)
    else:
        known_hosts = f"~/.ssh/{KNOWN_HOSTS_NAME}"
    return Outputs(
        ssh_config_file=ssh_config,
        ssh_config_mode="block" if args.ssh_config_block else paths.ssh_config_mode,
        known_hosts_file=absolute_path(known_hosts),
        cap_config_file=args.cap_config or paths.cap_config_file,
        ansible_inventory_file=args.ansible_inventory or paths.ansible_inventory_file,
        json_file=args.json or paths.json_file,
        list_hosts=args.list,
        host_list_mode=config.paths.output_mode or DEFAULT_OUTPUT_MODE,
        site_names=tuple(site.name for site in config.sites),
        prune_known_hosts=not args.instance_ids,
    )


@dataclass(frozen=True)
class ConsumerSettings:
    """Everything `consume` needs; the Jenkins token is kept out of repr and logs."""

    config: config_mod.Config
    jenkins_user: str
    jenkins_token: str = field(repr=False)
    endpoint_url: str | None = None
    once: bool = False

    @property
    def lifecycle(self):
        return self.config.lifecycle

    @classmethod
    def from_args(cls, args, environ: Mapping[str, str] | None = None) -> "ConsumerSettings":
        environ = os.environ if environ is None else environ
        config = load_config(args.config)
        if config.lifecycle is None:
            raise ConfigError(f"{config.path}: no lifecycle: section; the consumer needs one")
        user, token = read_credentials(environ, config.lifecycle.jenkins.credentials_file)
        return cls(
            config=config,
            jenkins_user=user,
            jenkins_token=token,
            endpoint_url=endpoint_url(args, environ),
            once=args.once,
        )


# What a program needs to find its interpreter and libraries, its home and its locale.
PROGRAM_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")


@dataclass(frozen=True)
class SetupSettings:
    """What `hooks` and `doctor` need. Mirrors ConsumerSettings, but Jenkins credentials are
    optional here: `hooks` never talks to Jenkins and `doctor` reports them missing."""

    config: config_mod.Config
    endpoint_url: str | None = None
    dry_run: bool = False
    jenkins_user: str | None = None
    jenkins_token: str | None = field(default=None, repr=False)
    jenkins_problem: str | None = None  # why there are no credentials
    # The environment of a local program doctor runs (`aws --version`): enough to run it, and
    # nothing of ours, such as the Jenkins token, for a program found on PATH to read.
    program_env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_args(cls, args, environ: Mapping[str, str] | None = None) -> "SetupSettings":
        environ = os.environ if environ is None else environ
        config = load_config(args.config)
        user = token = problem = None
        if config.lifecycle is not None:
            try:
                user, token = read_credentials(environ, config.lifecycle.jenkins.credentials_file)
            except ConfigError as exc:
                problem = str(exc)
        return cls(config=config, endpoint_url=endpoint_url(args, environ), dry_run=getattr(args, "dry_run", False),
                   jenkins_user=user, jenkins_token=token, jenkins_problem=problem,
                   program_env={k: environ[k] for k in PROGRAM_ENV_NAMES if k in environ})


@dataclass(frozen=True)
class FleetSettings:
    """What `fleet hold` and `fleet release` need: the site, its groups, who holds, for how long."""

    config: config_mod.Config
    site: config_mod.SiteConfig
    groups: tuple[str, ...]  # the site's asg: source and the lifecycle groups routed to it
    holder: str | None  # None: release whoever holds
    processes: tuple[str, ...]
    ttl_s: float
    endpoint_url: str | None = None

    @classmethod
    def from_args(cls, args, environ: Mapping[str, str] | None = None) -> "FleetSettings":
        from helper.config.lifecycle import HoldConfig

        environ = os.environ if environ is None else environ
        config = load_config(args.config)
        site = site_named(config, args.site)
        lc = config.lifecycle
        hold = lc.hold if lc else HoldConfig()  # the defaults without a lifecycle: section
        # A build holds as its own URL, so its post { always } releases only its own hold. A
        # person holds as user@host, and releases whoever holds (a killed build's hold).
        holder = args.holder or environ.get("BUILD_URL") or None
        if holder is None and args.fleet_action == "hold":
            holder = f"{environ.get('USER') or environ.get('LOGNAME') or 'unknown'}@{socket.gethostname()}"
        ttl_s = getattr(args, "ttl_s", None)
        return cls(config=config, site=site, groups=config.hold_groups(site.name), holder=holder,
                   processes=hold.processes, ttl_s=hold.ttl_s if ttl_s is None else ttl_s,
                   endpoint_url=endpoint_url(args, environ))
