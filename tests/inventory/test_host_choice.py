"""Choosing and describing hosts (issue 13): filters, roles_from_tag, tags in the outputs, tag
aliases and hostile tag values, each through the real CLI against moto and checked by the
program that reads the output (ssh -G, ansible-inventory, ansible, Capistrano, Ruby's YAML).
"""

from __future__ import annotations

import collections
import copy
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from helper.cli import build_parser, main
from helper.inventory.collect import collect
from helper.sandbox.aws import fleet
from helper.sandbox.aws.server import SANDBOX_ENV
from helper.settings import Settings
from tests.inventory.test_inventory import _counting_factory, write_config
from tests.test_readers import (
    ansible_env,
    ansible_list,
    ansible_program,
    need,
    run,
    ssh_resolve,
    unwrap_unsafe,
)

REGION = "us-east-1"
CAPAPP = Path(__file__).parent.parent / "capapp"
ALIAS_CHARS = re.compile(r"[a-z0-9_.-]+")


@pytest.fixture
def ec2(aws):
    # One client per test: making a botocore client costs about 70 ms.
    return fleet.client("ec2", aws, REGION)


def tag(ec2, instance_id: str, tags: dict[str, str]) -> None:
    if tags:
        ec2.create_tags(Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def zones_of(ec2, ids: list[str]) -> dict[str, str]:
    reply = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    return {i["InstanceId"]: i["Placement"]["AvailabilityZone"] for r in reply for i in r["Instances"]}


def outputs(tmp_path: Path) -> dict[str, Path]:
    out = tmp_path / "out"
    return {name: out / file for name, file in [
        ("ssh", "ssh_config"), ("cap", "cap.yml"), ("json", "inventory.json"), ("ansible", "ansible.yml"),
        ("known_hosts", "known_hosts")]}


def config_file(tmp_path: Path, sites: dict) -> Path:
    files = outputs(tmp_path)
    return write_config(tmp_path, sites, ansible_inventory_file=str(files["ansible"]),
                        known_hosts_file=str(files["known_hosts"]))


def json_hosts(tmp_path: Path) -> dict[str, dict]:
    document = json.loads(outputs(tmp_path)["json"].read_text())
    return {h["instance_id"]: h for hosts in document["sites"].values() for h in hosts}


def listed(capsys, config: Path, *flags: str) -> list[str]:
    capsys.readouterr()
    assert main(["inventory", "-c", str(config), "--list", *flags]) == 0, capsys.readouterr().err
    return capsys.readouterr().out.split()


# --- filters ----------------------------------------------------------------------

# Each instance's part in the filter test: its tags, and whether the filters keep it. Every
# one left out fails exactly one condition, so a filter that does nothing fails the test.
FILTERS = {
    "availability_zones": ["us-east-1a"],
    "tags": {"Env": ["prod", "canary"]},
    "exclude_tags": {"Canary": "yes"},
}
IN_ZONE_PARTS = [
    ("kept", {"Env": "prod"}, True),
    ("kept_second_value", {"Env": "canary"}, True),
    ("other_env", {"Env": "staging"}, False),
    ("no_env_tag", {}, False),
    ("excluded_tag", {"Env": "prod", "Canary": "yes"}, False),
    ("excluded_id", {"Env": "prod"}, False),
]
OTHER_ZONE_PART = ("other_zone", {"Env": "prod"}, False)


def _in_subnets(ec2, name: str) -> list[str]:
    """Six instances in us-east-1a and two in us-east-1b, tagged Name=name."""
    subnets = fleet.default_subnets(ec2)  # sorted by zone: a, b, ...
    return fleet.run_instances(ec2, 6, name, subnets[0]) + fleet.run_instances(ec2, 2, name, subnets[1])


def _classic_elb(aws, ec2) -> tuple[dict, list[str]]:
    fleet.classic_elb_site(aws, REGION, "web-elb", 0)
    ids = _in_subnets(ec2, "web-elb")
    fleet.client("elb", aws, REGION).register_instances_with_load_balancer(
        LoadBalancerName="web-elb", Instances=[{"InstanceId": i} for i in ids])
    return {"elb": "web-elb"}, ids


def _alb(aws, ec2, key: str) -> tuple[dict, list[str]]:
    dns, tg_arn = fleet.alb_site(aws, REGION, "api", 0)
    ids = _in_subnets(ec2, "api")
    fleet.client("elbv2", aws, REGION).register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": i} for i in ids])
    return {key: dns if key == "load_balancer" else tg_arn}, ids


def _asg(aws, ec2) -> tuple[dict, list[str]]:
    fleet.auto_scaling_site(aws, REGION, "workers", 6)
    # moto launches into the first subnet only; a group moved to another zone's subnet
    # launches its next two there.
    asg = fleet.client("autoscaling", aws, REGION)
    asg.update_auto_scaling_group(AutoScalingGroupName="workers", DesiredCapacity=8,
                                  VPCZoneIdentifier=fleet.default_subnets(ec2)[1])
    group = asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]
    return {"asg": "workers"}, [i["InstanceId"] for i in group["Instances"]]


def _tags(aws, ec2) -> tuple[dict, list[str]]:
    return {"tags": {"Name": "batch"}}, _in_subnets(ec2, "batch")


SOURCES = {
    "classic_elb": _classic_elb,
    "alb": lambda aws, ec2: _alb(aws, ec2, "load_balancer"),
    "target_group": lambda aws, ec2: _alb(aws, ec2, "target_group"),
    "asg": _asg,
    "tags": _tags,
}


def _play_parts(ec2, ids: list[str]) -> tuple[dict[str, str], set[str]]:
    """Give instances their parts by zone; returns (part -> instance id, the ids to keep)."""
    zones = zones_of(ec2, ids)
    in_zone = sorted(i for i in ids if zones[i] == "us-east-1a")
    elsewhere = sorted(i for i in ids if zones[i] != "us-east-1a")
    assert len(in_zone) >= len(IN_ZONE_PARTS) and elsewhere, zones
    parts = list(zip(IN_ZONE_PARTS, in_zone)) + [(OTHER_ZONE_PART, elsewhere[0])]
    for (_, tags, _), instance_id in parts:
        tag(ec2, instance_id, tags)
    return {part[0]: i for part, i in parts}, {i for part, i in parts if part[2]}


@pytest.mark.parametrize("kind", SOURCES)
def test_filters_keep_only_matching_instances_on_every_source_kind(aws, ec2, tmp_path, capsys, kind):
    source, ids = SOURCES[kind](aws, ec2)
    by_part, kept = _play_parts(ec2, ids)
    filters = {**FILTERS, "exclude_instance_ids": [by_part["excluded_id"]]}
    config = config_file(tmp_path, {"site": {**source, "filters": filters}})
    assert sorted(listed(capsys, config)) == sorted(f"site-{i}" for i in kept)


def test_named_instances_ignore_the_filters_so_a_scale_up_is_never_skipped(aws, ec2, tmp_path, capsys):
    """The consumer names the instances Auto Scaling holds for the site; a filter leaving one
    out would let it take traffic without the deploy."""
    source, ids = _asg(aws, ec2)
    excluded, other_zone = ids[0], next(i for i, z in zones_of(ec2, ids).items() if z != "us-east-1a")
    config = config_file(tmp_path, {"site": {**source, "filters": {
        "availability_zones": "us-east-1a", "exclude_instance_ids": excluded, "tags": {"Env": "prod"}}}})
    assert listed(capsys, config) == []  # no instance has Env=prod
    assert listed(capsys, config, "--site", "site", "--instance-ids", f"{excluded},{other_zone}") == sorted(
        [f"site-{excluded}", f"site-{other_zone}"])


def test_filters_roles_from_tag_and_alias_tag_add_no_api_call(aws, ec2, tmp_path):
    dns, tg_arn = fleet.alb_site(aws, REGION, "api", 0)
    fleet.auto_scaling_site(aws, REGION, "workers", 6, target_groups=(tg_arn,))
    ids = [i for r in ec2.describe_instances()["Reservations"] for i in (x["InstanceId"] for x in r["Instances"])]
    for n, instance_id in enumerate(ids):
        tag(ec2, instance_id, {"Env": "prod" if n % 2 else "dev", "Roles": "db,cache", "Name": f"w{n}"})
    plain = {"api": {"load_balancer": dns}, "workers": {"asg": "workers"}}
    options = {"filters": {"tags": {"Env": "prod"}, "availability_zones": ["us-east-1a", "us-east-1b"]},
               "roles_from_tag": "Roles", "alias_tag": "Name"}
    counts = []
    for sites in (plain, {name: {**source, **copy.deepcopy(options)} for name, source in plain.items()}):
        settings = Settings.from_args(build_parser().parse_args(["inventory", "-c", str(config_file(tmp_path, sites))]))
        calls: collections.Counter = collections.Counter()
        results = collect(settings, factory=_counting_factory(calls))
        counts.append((calls, [len(r.inventory.hosts) for r in results]))
    (plain_calls, plain_hosts), (filtered_calls, filtered_hosts) = counts
    assert plain_hosts == [6, 6] and filtered_hosts == [3, 3]
    assert filtered_calls == plain_calls == {
        "DescribeLoadBalancers": 1, "DescribeTargetGroups": 1, "DescribeTargetHealth": 1,
        "DescribeAutoScalingGroups": 1, "DescribeInstances": 1,
    }


# --- roles from a tag -------------------------------------------------------------


def cap_servers(tmp_path: Path, stage: str) -> dict[str, list[str]]:
    """What real Capistrano declares for a stage of the tests' app: role -> hostnames.

    A task added to a copy of the app asks `roles(:name)` for each role, as `on roles(...)`
    does before connecting; nothing connects.
    """
    cap = need("cap")
    app = tmp_path / "capapp"
    shutil.copytree(CAPAPP, app)
    (app / "config" / "deploy" / f"{stage}.rb").write_text("")
    with (app / "Capfile").open("a") as capfile:
        capfile.write('\ntask :show_roles do\n'
                      '  roles(:all).flat_map(&:roles_array).uniq.sort.each do |role|\n'
                      '    puts "role #{role}: #{roles(role).map(&:hostname).sort.join(" ")}"\n'
                      '  end\nend\n')
    env = {**os.environ, "CAP_CONFIG": str(outputs(tmp_path)["cap"]), "SSH_CONFIG": str(outputs(tmp_path)["ssh"]),
           "REPO_URL": "file:///nowhere", "REVISION": "main"}
    result = run([cap, stage, "show_roles"], cwd=app, env=env)
    return {line.split(":")[0].removeprefix("role "): line.split(":", 1)[1].split()
            for line in result.stdout.splitlines() if line.startswith("role ")}


def test_roles_from_tag_reach_json_ansible_groups_and_capistrano(aws, ec2, tmp_path, capsys):
    db, web, plain = fleet.run_instances(ec2, 3, "shop")
    tag(ec2, db, {"Roles": "db, cache"})
    tag(ec2, web, {"Roles": "web,not a role!,,db"})
    config = config_file(tmp_path, {
        "shop": {"tags": {"Name": "shop"}, "roles": ["app"], "roles_from_tag": "Roles"},
        "blog": {"tags": {"Name": "blog"}, "roles_from_tag": "Roles"},  # no hosts: no roles, no error
    })
    capsys.readouterr()
    assert main(["inventory", "-c", str(config)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "event=tag_role_ignored" in line]
    assert len(warnings) == 1 and web in warnings[0] and "not a role!" in warnings[0], warnings
    expected = {db: ["app", "cache", "db"], web: ["app", "db", "web"], plain: ["app"]}
    assert {i: h["roles"] for i, h in json_hosts(tmp_path).items()} == expected

    listing, _ = ansible_list(tmp_path, outputs(tmp_path)["ansible"].read_text())
    groups = {role: sorted(listing[role]["hosts"]) for role in ("app", "cache", "db", "web")}
    assert groups == {role: sorted(f"shop-{i}" for i, roles in expected.items() if role in roles)
                      for role in ("app", "cache", "db", "web")}

    cap_file = yaml.safe_load(outputs(tmp_path)["cap"].read_text())
    assert cap_file["roles"] == {f"shop-{i}": roles for i, roles in expected.items()}
    assert cap_servers(tmp_path, "shop") == {
        "app": sorted(f"shop-{i}" for i in expected),
        "cache": [f"shop-{db}"],
        "db": sorted([f"shop-{db}", f"shop-{web}"]),
        "web": [f"shop-{web}"],
    }


def test_capistrano_gives_app_and_web_to_hosts_without_roles(aws, ec2, tmp_path):
    (instance_id,) = fleet.run_instances(ec2, 1, "blog")
    tag(ec2, instance_id, {"Roles": ""})
    config = config_file(tmp_path, {"blog": {"tags": {"Name": "blog"}, "roles_from_tag": "Roles"}})
    assert main(["inventory", "-c", str(config)]) == 0
    assert "roles" not in yaml.safe_load(outputs(tmp_path)["cap"].read_text())  # the 2014 shape exactly
    assert cap_servers(tmp_path, "blog") == {"app": [f"blog-{instance_id}"], "web": [f"blog-{instance_id}"]}


def test_a_tag_role_named_like_a_site_or_all_is_dropped_with_a_warning_and_the_rest_deploys(aws, ec2, tmp_path,
                                                                                            capsys):
    """An Ansible group `api` holding a shop host would run api's plays on it, and failing the run
    instead would let anyone allowed to tag stop every site's deploy with one tag."""
    (shop,) = fleet.run_instances(ec2, 1, "shop")
    (api,) = fleet.run_instances(ec2, 1, "api")
    tag(ec2, shop, {"Roles": "api,all,db,api.v2"})  # api.v2 would be group api_v2: a site's too
    config = config_file(tmp_path, {"shop": {"tags": {"Name": "shop"}, "roles_from_tag": "Roles"},
                                    "api": {"tags": {"Name": "api"}}, "api_v2": {"tags": {"Name": "none"}}})
    capsys.readouterr()
    assert main(["inventory", "-c", str(config)]) == 0
    err = capsys.readouterr().err
    assert err.count("event=tag_role_ignored") == 3 and "value=api.v2 " in err
    listing, _ = ansible_list(tmp_path, outputs(tmp_path)["ansible"].read_text())
    assert listing["api"]["hosts"] == [f"api-{api}"]
    assert listing["db"]["hosts"] == [f"shop-{shop}"]
    assert json_hosts(tmp_path)[shop]["roles"] == ["db"]


def test_a_config_role_named_like_a_site_group_is_one_line_and_writes_nothing(aws, ec2, tmp_path, capsys):
    """Roles written in the config fail loudly: the person who wrote them can rename one."""
    fleet.run_instances(ec2, 1, "shop")
    config = config_file(tmp_path, {"shop": {"tags": {"Name": "shop"}, "roles": ["api.v2"]},
                                    "api_v2": {"tags": {"Name": "none"}}})
    capsys.readouterr()
    # Refused when the config loads since issue 24 (it was refused only when an Ansible output was written).
    assert main(["inventory", "-c", str(config)]) == 2
    message = [line for line in capsys.readouterr().err.splitlines() if "event=" not in line]
    assert len(message) == 1 and message[0].startswith(f"aws-deploy-helper: {config}:")
    assert "sites.shop.roles: role 'api.v2' would be Ansible group 'api_v2', site 'api_v2''s" in message[0]
    assert not any(path.exists() for path in outputs(tmp_path).values())


# --- tags in the outputs, tag aliases ----------------------------------------------


def ansible_tags(listing: dict, alias: str) -> dict[str, str]:
    return {key: unwrap_unsafe(value) for key, value in listing["_meta"]["hostvars"][alias]["ec2_tags"].items()}


def test_tags_and_tag_alias_reach_json_and_ansible_as_typed(aws, ec2, tmp_path):
    named, untagged = fleet.run_instances(ec2, 2, "Web Front")
    ec2.delete_tags(Resources=[untagged], Tags=[{"Key": "Name"}])
    # Text that YAML would read as another type, or as nothing, stays the text EC2 holds.
    tags = {"Name": "Web Front", "Backup": "yes", "Empty": "", "Null": "~", "Date": "2024-01-01",
            "Count": "0123", "yes": "no"}
    tag(ec2, named, tags)
    config = config_file(tmp_path, {"web": {"tags": {"Name": "Web Front"}, "alias_tag": "Name"},
                                    "all-of-it": {"tags": {"Backup": "yes"}}})
    ec2.create_tags(Resources=[untagged], Tags=[{"Key": "Backup", "Value": "yes"}])
    assert main(["inventory", "-c", str(config)]) == 0
    document = json.loads(outputs(tmp_path)["json"].read_text())["sites"]
    (web,) = document["web"]
    assert web["tags"] == tags and web["tag_alias"] == f"web-web-front-{named[-5:]}"
    assert {h["instance_id"]: (h["tags"], h["tag_alias"]) for h in document["all-of-it"]} == {
        named: (tags, None), untagged: ({"Backup": "yes"}, None)}

    listing, _ = ansible_list(tmp_path, outputs(tmp_path)["ansible"].read_text())
    assert ansible_tags(listing, f"web-{named}") == tags
    assert listing["_meta"]["hostvars"][f"web-{named}"]["tag_alias"] == f"web-web-front-{named[-5:]}"
    assert ansible_tags(listing, f"all-of-it-{untagged}") == {"Backup": "yes"}
    assert "tag_alias" not in listing["_meta"]["hostvars"][f"all-of-it-{untagged}"]


def test_clashing_tag_aliases_are_dropped_and_both_hosts_still_deploy(aws, ec2, tmp_path, capsys):
    """Site `web` tagged `a-b` and site `web-a` tagged `b` on one instance would both be
    `web-a-b-<tail>`; a shared Host name would send ssh to whichever section comes first."""
    shared, other = fleet.run_instances(ec2, 2, "shop")
    tag(ec2, shared, {"Short": "a-b", "Tiny": "b"})
    tag(ec2, other, {"Short": "solo"})
    config = config_file(tmp_path, {"web": {"tags": {"Name": "shop"}, "alias_tag": "Short"},
                                    "web-a": {"tags": {"Name": "shop"}, "alias_tag": "Tiny"}})
    capsys.readouterr()
    assert main(["inventory", "-c", str(config), "--list"]) == 0
    out, err = capsys.readouterr()
    assert sorted(out.split()) == sorted(f"{site}-{i}" for site in ("web", "web-a") for i in (shared, other))
    clash = f"web-a-b-{shared[-5:]}"
    dropped = [line for line in err.splitlines() if "event=tag_alias_dropped" in line]
    assert len(dropped) == 2 and all(clash in line for line in dropped), dropped
    ssh_config = outputs(tmp_path)["ssh"].read_text()
    assert clash not in ssh_config
    assert f"Host web-{shared}\n" in ssh_config and f"Host web-a-{shared}\n" in ssh_config
    assert f"Host web-{other} web-solo-{other[-5:]}\n" in ssh_config  # no clash, kept
    for alias in (f"web-{shared}", f"web-a-{shared}"):
        assert ssh_resolve(outputs(tmp_path)["ssh"], alias)["hostkeyalias"] == alias


# --- hostile values ---------------------------------------------------------------

# Values anyone allowed to tag can set. {marker} is a file that must never be created.
HOSTILE = {
    "newline_directive": "web\nProxyCommand touch {marker}",
    "leading_newline": "\nProxyCommand touch {marker}",
    "yaml_key": ": injected_key: x",
    "yaml_documents": "---\ninjected: 1\n...\n--- !!python/object:os.system [touch {marker}]",
    "jinja_lookup": "{{{{ lookup('pipe','touch {marker}') }}}}",
    "jinja_statement": "{{% if true %}}{{{{ lookup('pipe','touch {marker}') }}}}{{% endif %}}",
    "line_separator": "a\u2028ProxyCommand touch {marker}",
    "next_line": "b\u0085ProxyCommand touch {marker}",
    "ssh_pattern_and_quotes": "* !x,\"y\" 'z' #c %h",
    "host_section": "Host *\n    User root\n    ProxyCommand touch {marker}",
}


@pytest.fixture(scope="module")
def hostile_run(moto_server, tmp_path_factory):
    """One instance per hostile value, in Name (alias_tag), Roles (roles_from_tag), another tag's
    value and a tag's key; the inventory written once through the CLI for every reader's test
    (they only read its files). Returns (tags by id, marker, output directory)."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    marker = tmp_path / "pwned"
    moto_server.reset()
    with pytest.MonkeyPatch.context() as env:
        for name, value in {**SANDBOX_ENV, "AWS_ENDPOINT_URL": moto_server.url, "AWS_CONFIG_FILE": "/dev/null",
                            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        client = fleet.client("ec2", moto_server.url, REGION)
        ids = fleet.run_instances(client, len(HOSTILE), "fleet")
        tags_by_id = {}
        for instance_id, template in zip(ids, HOSTILE.values()):
            value = template.format(marker=marker)
            tags = {"Fleet": "hostile", "Name": value, "Roles": f"db,{value}", "Note": value, value[:128]: "key"}
            tag(client, instance_id, tags)
            tags_by_id[instance_id] = tags
        config = config_file(tmp_path, {"site": {"tags": {"Fleet": "hostile"}, "alias_tag": "Name",
                                                 "roles_from_tag": "Roles", "user": "deploy"}})
        assert main(["inventory", "-c", str(config)]) == 0
    assert not marker.exists()
    return tags_by_id, marker, tmp_path


# Every keyword our Host sections may carry for these hosts: anything else was injected.
OUR_KEYWORDS = {"HostName", "User", "HostKeyAlias", "StrictHostKeyChecking", "UserKnownHostsFile",
                "HashKnownHosts"}


def test_hostile_tags_inject_nothing_into_the_ssh_config(hostile_run):
    tags_by_id, _, tmp_path = hostile_run
    config = outputs(tmp_path)["ssh"]
    lines = [line for line in config.read_text().splitlines() if line and not line.startswith("#")]
    hosts = [line.split()[1:] for line in lines if line.startswith("Host ")]
    assert {line.split()[0] for line in lines if not line.startswith("Host ")} <= OUR_KEYWORDS
    assert sorted(names[0] for names in hosts) == sorted(f"site-{i}" for i in tags_by_id)
    for names in hosts:
        instance_id = names[0].removeprefix("site-")
        for name in names:  # the id alias and the tag alias, if the value left one
            resolved = ssh_resolve(config, name)
            assert resolved["hostkeyalias"] == names[0] and resolved["user"] == "deploy", name
            assert "proxycommand" not in resolved and resolved["hostname"].startswith(("10.", "172.")), name
        for tag_alias in names[1:]:
            assert ALIAS_CHARS.fullmatch(tag_alias) and tag_alias.endswith(f"-{instance_id[-5:]}"), tag_alias
            assert len(tag_alias) <= len("site-") + 32 + 6
    with_alias = {names[0]: names[1] for names in hosts if len(names) == 2}
    first = next(iter(tags_by_id))  # "web\nProxyCommand touch ...": its readable part survives
    assert with_alias[f"site-{first}"].startswith("site-web-proxycommand-touch-")


def test_hostile_tags_reach_json_exactly(hostile_run):
    tags_by_id, _, tmp_path = hostile_run
    hosts = json_hosts(tmp_path)
    assert {i: h["tags"] for i, h in hosts.items()} == tags_by_id
    assert all(set(h["roles"]) <= {"db", "yes"} and "db" in h["roles"] for h in hosts.values())


def test_hostile_tags_reach_ansible_inventory_as_text_without_new_keys_or_groups(hostile_run, tmp_path):
    tags_by_id, _, out_dir = hostile_run
    listing, _ = ansible_list(tmp_path, outputs(out_dir)["ansible"].read_text())
    for instance_id, tags in tags_by_id.items():
        hostvars = listing["_meta"]["hostvars"][f"site-{instance_id}"]
        assert ansible_tags(listing, f"site-{instance_id}") == tags
        assert set(hostvars) <= {"ansible_host", "ansible_user", "ansible_ssh_common_args", "ec2_instance_id",
                                 "ec2_availability_zone", "ec2_private_ip", "ec2_public_ip", "ec2_private_dns",
                                 "ec2_public_dns", "ec2_state", "membership_status", "tag_alias", "ec2_tags"}
    assert set(listing["all"]["children"]) == {"site", "db", "ungrouped"}
    assert sorted(listing["db"]["hosts"]) == sorted(f"site-{i}" for i in tags_by_id)


def test_hostile_tags_are_never_templated_by_a_real_ansible_run(hostile_run, tmp_path):
    """`debug var=ec2_tags` on the controller (connection local) evaluates every value."""
    tags_by_id, marker, out_dir = hostile_run
    inventory = outputs(out_dir)["ansible"]
    argv = [ansible_program("ansible"), "-i", str(inventory), "all", "-c", "local", "-m", "debug",
            "-a", "var=ec2_tags"]
    # ansible-core's own ad-hoc output (`host | SUCCESS => {json}` per host): the json callback
    # is the ansible.posix collection's, which ansible-core alone (the test extra) lacks.
    result = run(argv, env=ansible_env(tmp_path))
    assert not marker.exists(), "Ansible ran a lookup from a tag"
    parts = re.split(r"^(\S+) \| SUCCESS => ", result.stdout, flags=re.M)[1:]
    shown = {host: json.loads(outcome)["ec2_tags"] for host, outcome in zip(parts[::2], parts[1::2])}
    assert shown == {f"site-{i}": tags for i, tags in tags_by_id.items()}


def test_hostile_tags_leave_the_capistrano_file_to_aliases_and_valid_roles(hostile_run):
    tags_by_id, _, tmp_path = hostile_run
    ruby = need("ruby")
    read = run([ruby, "-ryaml", "-rjson", "-e", "puts JSON.generate(YAML.safe_load(File.read(ARGV[0])))",
                str(outputs(tmp_path)["cap"])])
    aliases = sorted(f"site-{i}" for i in tags_by_id)
    document = json.loads(read.stdout)
    assert document["sites"] == {"site": aliases}
    assert set(document["roles"]) == set(aliases)
    assert all(roles[0] == "db" and set(roles) <= {"db", "yes"} for roles in document["roles"].values())
