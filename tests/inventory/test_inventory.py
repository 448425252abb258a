"""The inventory command against moto server on loopback: discovery, selection, files, failure."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import boto3
import botocore.session
import pytest
import yaml

from helper.aws.clients import AccessKey, AwsClients
from helper.cli import build_parser, main
from helper.inventory.collect import collect
from helper.inventory.discover import describe_instances
from helper.sandbox.aws import fleet
from helper.settings import Settings
from tests.units import HELPER_BIN


def write_config(tmp_path: Path, sites: dict, **paths) -> Path:
    out = tmp_path / "out"
    config = {
        "path": {
            "ssh_config_file": str(out / "ssh_config"),
            "cap_config_file": str(out / "cap.yml"),
            "json_file": str(out / "inventory.json"),
            **paths,
        },
        "sites": sites,
    }
    path = tmp_path / "deploy.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def cap_sites(tmp_path: Path) -> dict:
    return yaml.safe_load((tmp_path / "out" / "cap.yml").read_text())["sites"]


def ids_of(aliases, site):
    return sorted(a[len(site) + 1:] for a in aliases)


def ec2(aws, region="us-east-1"):
    return fleet.client("ec2", aws, region)


def test_demo_fleet_every_site_in_two_regions(aws, tmp_path, capsys):
    demo = fleet.seed_demo(aws)
    config = fleet.write_demo_config(demo, tmp_path)
    assert main(["inventory", "-c", str(config), "--list"]) == 0
    listed = capsys.readouterr().out.split()
    cap = yaml.safe_load((tmp_path / "out" / "cap_config.yml").read_text())["sites"]
    assert {site: len(hosts) for site, hosts in cap.items()} == {"shop": 3, "api": 2, "workers": 2}
    assert sorted(listed) == sorted(a for hosts in cap.values() for a in hosts)
    # api lives in eu-west-1: its aliases name instances that exist there and only there.
    eu_ids = {i["InstanceId"] for r in ec2(aws, "eu-west-1").describe_instances()["Reservations"] for i in r["Instances"]}
    assert set(ids_of(cap["api"], "api")) == eu_ids
    assert oct(os.stat(tmp_path / "out" / "ssh_config").st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("by", ["dns", "name"])
def test_classic_elb_found_by_dns_name_or_name(aws, tmp_path, by):
    dns = fleet.classic_elb_site(aws, "us-east-1", "web-elb", 2)
    fleet.classic_elb_site(aws, "us-east-1", "other-elb", 1)  # must not leak in
    wanted = dns if by == "dns" else "web-elb"
    config = write_config(tmp_path, {"web": {"elb": wanted}})
    assert main(["inventory", "-c", str(config)]) == 0
    assert len(cap_sites(tmp_path)["web"]) == 2


def test_alb_by_dns_and_arn_and_target_group_by_name(aws, tmp_path):
    dns, tg_arn = fleet.alb_site(aws, "us-east-1", "api", 3)
    lb_arn = fleet.client("elbv2", aws, "us-east-1").describe_load_balancers(Names=["api"])["LoadBalancers"][0]["LoadBalancerArn"]
    config = write_config(tmp_path, {
        "by-dns": {"load_balancer": dns}, "by-arn": {"alb": lb_arn},
        "by-tg": {"target_group": "api-tg"}, "by-tg-arn": {"target_group": tg_arn},
    })
    assert main(["inventory", "-c", str(config)]) == 0
    cap = cap_sites(tmp_path)
    expected = ids_of(cap["by-dns"], "by-dns")
    assert len(expected) == 3
    for site in ("by-arn", "by-tg", "by-tg-arn"):
        assert ids_of(cap[site], site) == expected


def test_stopped_instance_left_out_unless_asked(aws, tmp_path):
    fleet.alb_site(aws, "us-east-1", "api", 3)
    config = write_config(tmp_path, {"api": {"target_group": "api-tg"}})
    assert main(["inventory", "-c", str(config)]) == 0
    (victim, *rest) = ids_of(cap_sites(tmp_path)["api"], "api")
    ec2(aws).stop_instances(InstanceIds=[victim])
    assert main(["inventory", "-c", str(config)]) == 0
    assert ids_of(cap_sites(tmp_path)["api"], "api") == rest


def test_unhealthy_group_member_left_out_unless_included(aws, tmp_path):
    fleet.auto_scaling_site(aws, "us-east-1", "workers", 3)
    config = write_config(tmp_path, {"workers": {"auto_scaling_group": "workers"}})
    asg = fleet.client("autoscaling", aws, "us-east-1")
    ids = sorted(i["InstanceId"] for i in asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"])
    asg.set_instance_health(InstanceId=ids[0], HealthStatus="Unhealthy")
    assert main(["inventory", "-c", str(config)]) == 0
    assert ids_of(cap_sites(tmp_path)["workers"], "workers") == ids[1:]
    assert main(["inventory", "-c", str(config), "--include-out-of-service"]) == 0
    assert ids_of(cap_sites(tmp_path)["workers"], "workers") == ids


def test_instance_ids_select_exactly_those_even_out_of_service(aws, tmp_path, capsys):
    fleet.auto_scaling_site(aws, "us-east-1", "workers", 3)
    asg = fleet.client("autoscaling", aws, "us-east-1")
    ids = sorted(i["InstanceId"] for i in asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"])
    asg.set_instance_health(InstanceId=ids[0], HealthStatus="Unhealthy")
    config = write_config(tmp_path, {"workers": {"asg": "workers"}})
    base = ["inventory", "-c", str(config), "--site", "workers", "--list"]
    assert main(base + ["--instance-ids", f"{ids[0]},{ids[2]}"]) == 0
    assert capsys.readouterr().out.split() == [f"workers-{ids[0]}", f"workers-{ids[2]}"]
    assert main(base + ["--instance-ids", "i-0123456789abcdef0"]) == 1
    assert "i-0123456789abcdef0 are not part of the site" in capsys.readouterr().err
    assert main(base + ["--instance-ids", "i-1; rm -rf /"]) == 2
    assert "is not an EC2 instance id" in capsys.readouterr().err


def test_tag_filters_find_running_instances(aws, tmp_path):
    client = ec2(aws)
    web = fleet.run_instances(client, 2, "web")
    fleet.run_instances(client, 1, "db")
    client.stop_instances(InstanceIds=web[:1])
    config = write_config(tmp_path, {"web": {"tags": {"Name": "web"}}})
    assert main(["inventory", "-c", str(config)]) == 0
    assert ids_of(cap_sites(tmp_path)["web"], "web") == web[1:]


def test_scale_out_keeps_every_alias_on_the_same_instance(aws, tmp_path):
    fleet.auto_scaling_site(aws, "us-east-1", "workers", 2)
    config = write_config(tmp_path, {"workers": {"asg": "workers"}})
    assert main(["inventory", "-c", str(config)]) == 0
    before = {h["alias"]: h["instance_id"] for h in _json_hosts(tmp_path, "workers")}
    fleet.client("autoscaling", aws, "us-east-1").set_desired_capacity(AutoScalingGroupName="workers", DesiredCapacity=4)
    assert main(["inventory", "-c", str(config), "--include-out-of-service"]) == 0
    after = {h["alias"]: h["instance_id"] for h in _json_hosts(tmp_path, "workers")}
    assert len(after) == 4
    assert {a: after[a] for a in before} == before


def _json_hosts(tmp_path, site):
    import json

    return json.loads((tmp_path / "out" / "inventory.json").read_text())["sites"][site]


def test_missing_elb_fails_clearly_and_leaves_old_files_untouched(aws, tmp_path, capsys):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 2)
    good = write_config(tmp_path, {"web": {"elb": "web-elb"}})
    assert main(["inventory", "-c", str(good)]) == 0
    out = tmp_path / "out"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    bad = write_config(tmp_path, {"web": {"elb": "web-elb"}, "gone": {"elb": "gone.us-east-1.elb.amazonaws.com"}})
    assert main(["inventory", "-c", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "site gone: no classic ELB has the DNS name 'gone.us-east-1.elb.amazonaws.com'" in err
    assert "no file was changed" in err
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before


def test_keep_going_writes_the_sites_that_worked_and_still_fails(aws, tmp_path, capsys):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 2)
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}, "gone": {"asg": "no-such-group"}})
    assert main(["inventory", "-c", str(config), "--keep-going"]) == 1
    assert "site gone: Auto Scaling group 'no-such-group' not found in region us-east-1" in capsys.readouterr().err
    assert list(cap_sites(tmp_path)) == ["web"]


def test_unchanged_files_keep_their_mtime_and_dry_run_writes_nothing(aws, tmp_path, capsys):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 2)
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}})
    assert main(["inventory", "-c", str(config)]) == 0
    cap = tmp_path / "out" / "cap.yml"
    os.utime(cap, ns=(1_000_000_000, 1_000_000_000))
    assert main(["inventory", "-c", str(config)]) == 0
    assert cap.stat().st_mtime_ns == 1_000_000_000
    fleet.run_instances(ec2(aws), 1, "extra")
    extra = ec2(aws).describe_instances(Filters=[{"Name": "tag:Name", "Values": ["extra"]}])["Reservations"][0]["Instances"][0]["InstanceId"]
    fleet.client("elb", aws, "us-east-1").register_instances_with_load_balancer(
        LoadBalancerName="web-elb", Instances=[{"InstanceId": extra}])
    capsys.readouterr()
    assert main(["inventory", "-c", str(config), "--dry-run"]) == 0
    diff = capsys.readouterr().out
    assert f"+  - web-{extra}" in diff and f"+++ {cap}" in diff
    assert cap.stat().st_mtime_ns == 1_000_000_000


def _counting_factory(calls: collections.Counter):
    def factory(key: AccessKey) -> AwsClients:
        session = botocore.session.Session()
        session.register("before-call", lambda model, **_: calls.update([model.name]))
        return AwsClients(key, session=session)

    return factory


def test_api_calls_are_the_lookups_plus_one_describe_for_all_sites(aws, tmp_path):
    dns, _ = fleet.alb_site(aws, "us-east-1", "api", 0)
    fleet.auto_scaling_site(aws, "us-east-1", "workers", 12, target_groups=(_,))
    config = write_config(tmp_path, {"api": {"load_balancer": dns}, "workers": {"asg": "workers"}})
    settings = Settings.from_args(build_parser().parse_args(["inventory", "-c", str(config)]))
    calls: collections.Counter = collections.Counter()
    results = collect(settings, factory=_counting_factory(calls))
    assert [len(r.inventory.hosts) for r in results] == [12, 12]
    assert calls == {
        "DescribeLoadBalancers": 1, "DescribeTargetGroups": 1, "DescribeTargetHealth": 1,
        "DescribeAutoScalingGroups": 1, "DescribeInstances": 1,
    }


def test_empty_id_list_never_describes_everything(aws):
    fleet.run_instances(ec2(aws), 2, "bystander")
    calls: collections.Counter = collections.Counter()
    clients = _counting_factory(calls)(AccessKey(region="us-east-1", endpoint_url=aws))
    assert describe_instances(clients, []) == {}
    assert calls == {}


def test_instance_terminated_during_discovery_is_left_out(aws):
    ids = fleet.run_instances(ec2(aws), 2, "x")
    clients = AwsClients(AccessKey(region="us-east-1", endpoint_url=aws))
    found = describe_instances(clients, ids + ["i-00000000000000001"])
    assert sorted(found) == sorted(ids)


def test_role_per_site_reaches_another_account(aws, tmp_path):
    role_arn = "arn:aws:iam::222222222222:role/deploy-inventory"
    creds = fleet.client("sts", aws, "us-east-1").assume_role(RoleArn=role_arn, RoleSessionName="seed")["Credentials"]
    other = boto3.client(
        "ec2", endpoint_url=aws, region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    theirs = fleet.run_instances(other, 2, "partner")
    fleet.run_instances(ec2(aws), 3, "partner")  # same tag, our account
    config = write_config(tmp_path, {
        "ours": {"tags": {"Name": "partner"}},
        "theirs": {"tags": {"Name": "partner"}, "role_arn": role_arn},
    })
    assert main(["inventory", "-c", str(config)]) == 0
    cap = cap_sites(tmp_path)
    assert ids_of(cap["theirs"], "theirs") == sorted(theirs)
    assert len(cap["ours"]) == 3


def test_endpoint_url_flag_is_honoured_without_the_environment(aws, tmp_path, monkeypatch):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 1)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}})
    assert main(["inventory", "-c", str(config), "--endpoint-url", aws]) == 0
    assert len(cap_sites(tmp_path)["web"]) == 1


def test_scale_up_build_finds_its_pending_instances_through_the_lifecycle_group(aws, tmp_path, capsys):
    elb = fleet.client("elb", aws, "us-east-1")
    elb.create_load_balancer(LoadBalancerName="web-elb", AvailabilityZones=["us-east-1a"],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}])
    fleet.auto_scaling_site(aws, "us-east-1", "web-asg", 1, load_balancers=("web-elb",))
    queue_url, queue_arn, _ = fleet.lifecycle_queue(aws, "us-east-1", "hooks")
    fleet.launch_hook(aws, "us-east-1", "web-asg", queue_arn)
    asg = fleet.client("autoscaling", aws, "us-east-1")
    asg.set_desired_capacity(AutoScalingGroupName="web-asg", DesiredCapacity=2)
    states = {i["InstanceId"]: i["LifecycleState"]
              for i in asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]}
    (pending,) = [i for i, state in states.items() if state == "Pending:Wait"]
    (serving,) = [i for i, state in states.items() if state == "InService"]
    config = tmp_path / "deploy.yml"
    config.write_text(yaml.safe_dump({
        "sites": {"web": {"elb": "web-elb"}},
        "lifecycle": {"queue_url": queue_url, "jenkins": {"url": "http://127.0.0.1:9/", "job": "deploy"},
                      "groups": {"web-asg": "web"}},
    }))
    argv = ["inventory", "-c", str(config), "--site", "web", "--list"]
    assert main(argv) == 0
    assert capsys.readouterr().out.split() == [f"web-{serving}"]  # the new one is not in the ELB yet
    assert main(argv + ["--instance-ids", pending]) == 0
    assert capsys.readouterr().out.split() == [f"web-{pending}"]


def test_throttled_discovery_is_retried_by_botocore(aws, tmp_path):
    from helper.sandbox.aws import faults

    fleet.auto_scaling_site(aws, "us-east-1", "workers", 2)
    # Seeded: the first call gets "Rate exceeded", the retry goes through.
    faults.throttle("DescribeAutoScalingGroups", fraction=0.5, seed=1)
    config = write_config(tmp_path, {"workers": {"asg": "workers"}})
    assert main(["inventory", "-c", str(config)]) == 0
    assert len(cap_sites(tmp_path)["workers"]) == 2
    assert faults.snapshot()["throttle"]["DescribeAutoScalingGroups"]["throttled"] >= 1


def test_sites_in_two_regions_are_discovered_in_parallel(aws, tmp_path):
    import threading

    fleet.auto_scaling_site(aws, "us-east-1", "east", 1)
    fleet.auto_scaling_site(aws, "eu-west-1", "west", 1)
    config = write_config(tmp_path, {"east": {"asg": "east", "region": "us-east-1"},
                                     "west": {"asg": "west", "region": "eu-west-1"}})
    settings = Settings.from_args(build_parser().parse_args(["inventory", "-c", str(config)]))
    threads: dict[str, str] = {}

    def factory(key: AccessKey) -> AwsClients:
        threads[key.region] = threading.current_thread().name
        return AwsClients(key)

    results = collect(settings, factory=factory)
    assert [len(r.inventory.hosts) for r in results] == [1, 1]
    assert len(set(threads.values())) == 2 and all(n.startswith("discover") for n in threads.values())


# --- issue 9: what the run may write, where, and with which mode ----------------------------------

import json  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402

from helper.files.write import BEGIN, END  # noqa: E402
from helper.inventory.naming import is_alias_of  # noqa: E402

# A run against moto takes a second or two; this only turns a hang (a FIFO) into a failure.
CLI_TIMEOUT_S = 30
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def run_cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(HELPER_BIN), *argv], capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                          cwd=cwd)


def elb_ids(aws, name: str) -> list[str]:
    health = fleet.client("elb", aws, "us-east-1").describe_instance_health(LoadBalancerName=name)
    return sorted(i["InstanceId"] for i in health["InstanceStates"])


def add_instance(aws, elb_name: str) -> str:
    (new,) = fleet.run_instances(ec2(aws), 1, "extra")
    fleet.client("elb", aws, "us-east-1").register_instances_with_load_balancer(
        LoadBalancerName=elb_name, Instances=[{"InstanceId": new}])
    return new


def snapshot(directory: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_ino) for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("flag", ["--ssh-config", "--cap-config", "--known-hosts"])
def test_a_fifo_named_as_an_output_fails_at_once_and_stays_a_fifo(aws, tmp_path, flag):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 1)
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}})
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    extra = ["--ssh-config", str(tmp_path / "out" / "ssh_config")] if flag == "--known-hosts" else []
    try:
        result = run_cli("inventory", "-c", str(config), *extra, flag, str(fifo))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the helper waited on the FIFO given as {flag}")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"aws-deploy-helper: {fifo}: is a FIFO, not a regular file"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_named_as_the_ssh_config_is_not_replaced_even_by_root(aws, tmp_path):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 1)
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}})
    null = tmp_path / "null"  # our own /dev/null: a failing test must not replace the real one
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    result = run_cli("inventory", "-c", str(config), "--ssh-config", str(null))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"aws-deploy-helper: {null}: is a character device, not a regular file"]
    assert stat.S_ISCHR(os.lstat(null).st_mode)


def test_one_output_that_cannot_be_written_leaves_every_output_as_it_was(aws, tmp_path):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 1)
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}})
    assert main(["inventory", "-c", str(config)]) == 0
    out = tmp_path / "out"
    before = snapshot(out)
    add_instance(aws, "web-elb")  # every output would change
    # Nothing can create a file in /proc, root included.
    result = run_cli("inventory", "-c", str(config), "--json", "/proc/inventory.json")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and "cannot write /proc/inventory.json" in result.stderr
    assert snapshot(out) == before  # same bytes, same inodes, no temp file


def test_a_run_limited_to_a_site_or_instances_writes_only_the_outputs_on_its_command_line(aws, tmp_path):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 2)
    fleet.classic_elb_site(aws, "us-east-1", "api-elb", 1)
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}, "api": {"elb": "api-elb"}},
                          ansible_inventory_file=str(tmp_path / "out" / "inventory.yml"))
    assert main(["inventory", "-c", str(config)]) == 0
    before = snapshot(tmp_path / "out")
    build = tmp_path / "build"
    one = elb_ids(aws, "web-elb")[0]
    assert main(["inventory", "-c", str(config), "--site", "web", "--cap-config", str(build / "cap.yml")]) == 0
    assert main(["inventory", "-c", str(config), "--site", "web", "--instance-ids", one,
                 "--json", str(build / "one.json")]) == 0
    assert snapshot(tmp_path / "out") == before  # the config's paths belong to unrestricted runs
    assert yaml.safe_load((build / "cap.yml").read_text())["sites"] == {
        "web": [f"web-{i}" for i in elb_ids(aws, "web-elb")]}
    assert [h["instance_id"] for h in json.loads((build / "one.json").read_text())["sites"]["web"]] == [one]
    assert sorted(p.name for p in build.iterdir()) == ["cap.yml", "one.json"]


@pytest.mark.parametrize("site, name, owned", [
    ("web", "web-i-0123456789abcdef0", True),
    ("web", "web-i-i-0123456789abcdef0", False),  # site web-i's instance
    ("web-i", "web-i-i-0123456789abcdef0", True),
    ("web", "web-i-eu-i-0123456789abcdef0", False),  # site web-i-eu's instance
    ("web", "web-i-0123456789abcdef0-old", False),
    ("web", "web-i-0123", False),  # too short for an instance id
    ("web", "web-i-0123456789ABCDEF0", False),
    ("web", "web-i-0123456789abcdef0\n", False),
])
def test_an_alias_belongs_to_a_site_only_when_it_is_exactly_site_dash_instance_id(site, name, owned):
    assert is_alias_of(site, name, ("web", "web-i", "web-i-eu")) is owned


def test_pruning_one_site_keeps_the_host_keys_of_a_site_whose_name_extends_it(aws, tmp_path):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 1)
    fleet.classic_elb_site(aws, "us-east-1", "webi-elb", 1)
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}, "web-i": {"elb": "webi-elb"}})
    (web,), (web_i,) = elb_ids(aws, "web-elb"), elb_ids(aws, "webi-elb")
    gone = "i-0fedcba9876543210"  # a web instance that was terminated
    known_hosts = tmp_path / "known_hosts"
    keep = f"web-{web} {KEY}\nweb-i-{web_i} {KEY}\n[web-i-{web_i}]:2222 {KEY}\n"
    known_hosts.write_text(keep + f"web-{gone} {KEY}\n")
    assert main(["inventory", "-c", str(config), "--site", "web", "--ssh-config", str(tmp_path / "ssh_config"),
                 "--known-hosts", str(known_hosts)]) == 0
    assert known_hosts.read_text() == keep


def test_a_run_limited_to_some_instances_prunes_no_host_key(aws, tmp_path):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 2)
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}})
    first, second = elb_ids(aws, "web-elb")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"web-{first} {KEY}\nweb-{second} {KEY}\n")
    assert main(["inventory", "-c", str(config), "--site", "web", "--instance-ids", first,
                 "--ssh-config", str(tmp_path / "ssh_config"), "--known-hosts", str(known_hosts)]) == 0
    assert known_hosts.read_text() == f"web-{first} {KEY}\nweb-{second} {KEY}\n"


def test_outputs_with_host_lists_are_private_unless_the_config_says_otherwise(aws, tmp_path):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 1)
    out = tmp_path / "out"
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}}, ansible_inventory_file=str(out / "inventory.yml"))
    names = ["ssh_config", "cap.yml", "inventory.yml", "inventory.json"]
    assert main(["inventory", "-c", str(config)]) == 0
    assert {n: oct(os.stat(out / n).st_mode & 0o777) for n in names} == dict.fromkeys(names, "0o600")
    os.chmod(out / "cap.yml", 0o644)  # left behind by an older version: corrected though unchanged
    shared = write_config(tmp_path, {"web": {"elb": "web-elb"}}, ansible_inventory_file=str(out / "inventory.yml"),
                          output_mode="0640")
    assert main(["inventory", "-c", str(shared)]) == 0
    assert {n: oct(os.stat(out / n).st_mode & 0o777) for n in names} == {
        "ssh_config": "0o600", "cap.yml": "0o640", "inventory.yml": "0o640", "inventory.json": "0o640"}


@pytest.mark.parametrize("value, problem", [
    (416, "must be a quoted string of octal digits"),  # what YAML makes of an unquoted 0640
    ("rw-r-----", "must be a quoted string of octal digits"),
    ("0666", "others could change"),
    ("0660", "others could change"),
    ("4600", "must be a quoted string of octal digits"),
])
def test_a_bad_output_mode_is_one_line_naming_the_file_and_key(tmp_path, capsys, value, problem):
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}}, output_mode=value)
    assert main(["inventory", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert f"{config}:" in err and "path.output_mode" in err and problem in err


def ssh_option(config: Path, alias: str, keyword: str, cwd: Path) -> str:
    ssh = shutil.which("ssh")
    if ssh is None:
        pytest.skip("ssh is not installed")
    resolved = subprocess.run([ssh, "-G", "-F", str(config), alias], capture_output=True, text=True, cwd=cwd,
                              timeout=CLI_TIMEOUT_S, check=True).stdout
    return next(line.split(" ", 1)[1] for line in resolved.splitlines() if line.startswith(keyword + " "))


def test_relative_known_hosts_and_key_paths_are_written_absolute_so_ssh_works_from_anywhere(aws, tmp_path,
                                                                                              monkeypatch):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 1)
    config = tmp_path / "deploy.yml"
    config.write_text(yaml.safe_dump({"sites": {"web": {"elb": "web-elb", "identity_file": "keys/deploy.pem"}}}))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    assert main(["inventory", "-c", str(config), "--site", "web", "--ssh-config", "out/ssh_config",
                 "--known-hosts", "out/known_hosts"]) == 0
    (web,) = elb_ids(aws, "web-elb")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    written = workspace / "out" / "ssh_config"
    assert ssh_option(written, f"web-{web}", "userknownhostsfile", elsewhere) == str(workspace / "out" / "known_hosts")
    assert ssh_option(written, f"web-{web}", "identityfile", elsewhere) == str(workspace / "keys" / "deploy.pem")


def test_a_block_below_a_users_host_star_without_key_checking_is_warned_about_and_keeps_the_owner(aws, tmp_path):
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 1)
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}})
    ssh_config = tmp_path / "home" / ".ssh" / "config"
    ssh_config.parent.mkdir(parents=True)
    ssh_config.write_text(f"Host *\n    StrictHostKeyChecking no\n\n{BEGIN}\n{END}\n")
    if os.geteuid() == 0:
        os.chown(ssh_config, 65534, 65534)  # a user's file, and root runs the helper
    owner = (ssh_config.stat().st_uid, ssh_config.stat().st_gid)
    result = run_cli("inventory", "-c", str(config), "--ssh-config", str(ssh_config), "--ssh-config-block")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "level=warning" in line]
    assert len(warnings) == 1
    assert f"{ssh_config}:2" in warnings[0] and "StrictHostKeyChecking" in warnings[0]
    assert (ssh_config.stat().st_uid, ssh_config.stat().st_gid) == owner
    assert f"Host web-{elb_ids(aws, 'web-elb')[0]}" in ssh_config.read_text()


def test_instance_with_an_odd_address_fails_only_its_site(aws, tmp_path, capsys):
    """Issue 9 item 20: EC2 data is checked where it is read; one bad instance fails one site."""
    fleet.classic_elb_site(aws, "us-east-1", "web-elb", 2)
    fleet.classic_elb_site(aws, "us-east-1", "odd-elb", 1)
    # moto keeps whatever RunInstances was given, and derives the private DNS name from it.
    odd_ip = "10.0.0.5\nHost *"
    (odd,) = [i["InstanceId"] for i in ec2(aws).run_instances(
        ImageId=fleet.DEMO_AMI, InstanceType=fleet.INSTANCE_TYPE, MinCount=1, MaxCount=1, PrivateIpAddress=odd_ip,
    )["Instances"]]
    fleet.client("elb", aws, "us-east-1").register_instances_with_load_balancer(
        LoadBalancerName="odd-elb", Instances=[{"InstanceId": odd}])
    config = write_config(tmp_path, {"web": {"elb": "web-elb"}, "odd": {"elb": "odd-elb"}},
                          ansible_inventory_file=str(tmp_path / "out" / "inventory.yml"))
    assert main(["inventory", "-c", str(config), "--keep-going"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"aws-deploy-helper: site odd: instance {odd}: private IP address {odd_ip!r} is not valid" in err
    assert list(cap_sites(tmp_path)) == ["web"] and len(cap_sites(tmp_path)["web"]) == 2
    assert "Host *" not in (tmp_path / "out" / "ssh_config").read_text()
