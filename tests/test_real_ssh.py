"""Issue 12, scenarios 1-6: real deploys over real SSH.

Every instance moto runs is a real host (tests/sshhosts.py) at the instance's own private IP, with
its own sshd and host key. Each deploy is a build of the real Jenkinsfile (the Groovy stub runner
as the Jenkins emulator's command) whose Deploy stage runs the Jenkinsfile's default
`cap "$SITE" deploy` in a checkout of tests/capapp: Capistrano reads the servers file the helper
wrote and connects through the helper's ssh config, host-key checking on. What each host runs is
read from that host (`current/REVISION` under its own deploy root).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from moto.ec2.models import ec2_backends

from helper.sandbox.aws import fleet
from helper.sandbox.hosts import SshHost
from helper.sandbox.jenkins.emulator import JenkinsEmulator
from tests.realdeploy import (
    LIFECYCLE_TIMEOUT_S,
    ROOT,
    Builds,
    app_repository,
    deploy_job_command,
    deployed_revision,
    needs_real_hosts,
    scale_up_world,
)
from tests.scenario import JENKINS_TOKEN, JENKINS_USER, REGION, SITE, wait_for

pytestmark = needs_real_hosts()

HOST_KEY_CHANGED = "does not match for"  # net-ssh's Net::SSH::HostKeyMismatch, as Capistrano prints it
BASTION_IP = "172.31.255.1"  # the top /20 of moto's default VPC: no default subnet reaches it
INNER_CIDR = "10.99.0.0/24"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return app_repository(tmp_path_factory.mktemp("app"))


@pytest.fixture
def world(aws, tmp_path, network, app):
    with scale_up_world(aws, tmp_path, network, app) as world:
        yield world


def release_private_ip(subnet_id: str, ip: str) -> None:
    """Free a terminated instance's address in moto's subnet, which AWS does at termination."""
    for regions in list(ec2_backends.values()):
        subnets = {subnet.id: subnet for subnet in regions[REGION].describe_subnets()}
        if subnet_id in subnets:
            subnets[subnet_id].del_subnet_ip(ip)
            return
    raise AssertionError(f"moto has no subnet {subnet_id}")


def key_of(host: SshHost) -> str:
    """The key type and key of what sshd serves, as a known_hosts line holds them."""
    return " ".join(host.host_key_pub.split()[:2])


def private_ip(ec2, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["PrivateIpAddress"]


# --- 1 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rolling", [False, True], ids=["all-at-once", "rollout"])
def test_a_full_deploy_through_the_jenkinsfile_reaches_every_host_of_the_site(world, rolling):
    instances = world.aws.instances()
    if rolling:  # issue 21: the Deploy stage rolls through the site, `cap` once per batch of one host
        config = yaml.safe_load(world.aws.config_path.read_text())
        config["sites"][SITE]["rollout"] = {"batch": 1, "min_healthy": 1, "drain_timeout_s": 5, "healthy_timeout_s": 10}
        world.aws.config_path.write_text(yaml.safe_dump(config))

    build = world.builds.run(SITE=SITE, REVISION="v2")

    assert build.result == "SUCCESS", build.console
    assert build.console.count("deploy:symlink:release") == (2 if rolling else 1)  # Capistrano's flow, per batch
    assert ("batch 2:" in build.console) == rolling
    assert world.revisions(instances) == [world.commits["v2"]] * 2
    assert world.builds.known_hosts() == {f"{SITE}-{i}": key_of(world.hosts.host(i)) for i in instances}


# --- 2 -------------------------------------------------------------------------------------------

def test_a_gated_scale_out_of_3_deploys_the_recorded_revision_before_continue(world):
    world.record("v2")
    new = world.aws.scale_to(5)
    world.aws.start_consumer()
    seen_in_service_without_it = []

    def all_in_service() -> bool:
        in_elb = world.aws.in_elb()
        for instance in new:
            if instance in in_elb and world.hosts.revision(instance) != world.commits["v2"]:
                seen_in_service_without_it.append(instance)
        return world.aws.all_in_service(new)

    assert len(new) == 3 and not set(new) & world.aws.in_elb()
    wait_for(all_in_service, timeout_s=LIFECYCLE_TIMEOUT_S, what="scale-up CONTINUE")

    (scale_up,) = [b for b in world.builds.all() if b.params.get("LIFECYCLE_ACTIONS")]
    assert sorted(scale_up.params["INSTANCE_IDS"].split(",")) == new and scale_up.result == "SUCCESS"
    assert world.revisions(new) == [world.commits["v2"]] * 3
    assert seen_in_service_without_it == []
    assert set(new) <= world.aws.in_elb() and set(new) <= world.aws.in_target_group()


# --- 3 -------------------------------------------------------------------------------------------

def test_a_recycled_address_with_a_new_host_key_deploys_and_the_retired_alias_is_pruned(world, aws):
    """AWS frees a terminated instance's private IP for the next launch in its subnet; moto keeps it
    reserved for as long as the terminated instance is listed. So the test frees it in moto's
    backend as AWS would (moto serves in this process), then launches the new instance with
    RunInstances' PrivateIpAddress = that address and registers it with the site's load balancer.
    Its host is the same network namespace at that IP, now a new machine: an empty deploy root and
    a new host key (FleetHosts)."""
    ec2 = fleet.client("ec2", aws, REGION)
    retired, kept = world.aws.instances()
    assert world.builds.run(SITE=SITE, REVISION="v1").result == "SUCCESS"
    address = private_ip(ec2, retired)
    old_key = world.hosts.host(retired).host_key_pub

    world.aws.asg.terminate_instance_in_auto_scaling_group(InstanceId=retired,
                                                           ShouldDecrementDesiredCapacity=True)
    subnet = ec2.describe_instances(InstanceIds=[retired])["Reservations"][0]["Instances"][0]["SubnetId"]
    release_private_ip(subnet, address)
    launched = ec2.run_instances(ImageId=fleet.DEMO_AMI, MinCount=1, MaxCount=1, SubnetId=subnet,
                                 PrivateIpAddress=address)
    (new,) = [i["InstanceId"] for i in launched["Instances"]]
    world.aws.elb.register_instances_with_load_balancer(LoadBalancerName="web-elb",
                                                        Instances=[{"InstanceId": new}])
    recycled = wait_for(lambda: world.hosts.booted(new), what="the new machine at the retired address")
    assert world.hosts.revision(new) is None  # a new machine's disk

    build = world.builds.run(SITE=SITE, REVISION="v3")

    assert build.result == "SUCCESS", build.console
    assert recycled.ip == address and recycled.host_key_pub != old_key
    assert world.revisions([new, kept]) == [world.commits["v3"]] * 2
    known = world.builds.known_hosts()
    assert f"{SITE}-{retired}" not in known
    assert known[f"{SITE}-{new}"] == key_of(recycled)


# --- 4 -------------------------------------------------------------------------------------------

def test_a_changed_host_key_for_the_same_instance_fails_its_scale_up_build_and_abandons(world):
    """The canary build learns the new instance's key; then another machine answers at its address."""
    world.record("v2")
    original = world.aws.instances()
    (new,) = world.aws.scale_to(3)
    canary = world.builds.run(SITE=SITE, INSTANCE_IDS=new, REVISION="v2")
    assert canary.result == "SUCCESS", canary.console
    learned = world.builds.known_hosts()[f"{SITE}-{new}"]

    world.hosts.host(new).impersonate(world.hosts.host(original[0]))
    world.aws.start_consumer()
    wait_for(lambda: new not in world.aws.instances(), timeout_s=LIFECYCLE_TIMEOUT_S, what="ABANDON")

    (scale_up,) = [b for b in world.builds.all() if new in b.params.get("INSTANCE_IDS", "")
                   and b.params.get("LIFECYCLE_ACTIONS")]
    assert scale_up.result == "FAILURE" and HOST_KEY_CHANGED in scale_up.console, scale_up.console
    assert f"{SITE}-{new}" in scale_up.console
    assert world.builds.known_hosts()[f"{SITE}-{new}"] == learned  # the changed key was not accepted


# --- 5 -------------------------------------------------------------------------------------------

def test_a_new_host_whose_sshd_never_comes_up_is_abandoned_and_its_replacement_deployed(world):
    world.record("v2")
    original = world.aws.instances()
    world.hosts.fail_next_boots(1)
    (dead,) = world.aws.scale_to(3)
    world.hosts.sync()
    assert not world.hosts.host(dead).running
    world.aws.start_consumer()

    wait_for(lambda: dead not in world.aws.instances(), timeout_s=LIFECYCLE_TIMEOUT_S, what="ABANDON")
    wait_for(lambda: len(world.aws.instances("InService")) == 3, timeout_s=LIFECYCLE_TIMEOUT_S,
             what="the replacement CONTINUEd")

    (replacement,) = set(world.aws.instances()) - set(original)
    assert world.revisions([replacement]) == [world.commits["v2"]]
    results = {b.params["INSTANCE_IDS"]: b for b in world.builds.all()}
    assert results[dead].result == "FAILURE" and "Connection refused" in results[dead].console
    assert results[replacement].result == "SUCCESS"


# --- 6 -------------------------------------------------------------------------------------------

@dataclass
class Bastioned:
    bastion: SshHost
    hosts: list[SshHost]
    builds: Builds
    home: Path


@pytest.fixture
def behind_a_bastion(aws, tmp_path, network, app):
    """Site `inner`: two instances tagged Site=inner in a VPC subnet reachable only via the bastion.

    ssh makes the jump with the helper's ssh config (net-ssh passes it on with -F), whose section
    for the bastion gives the jump its login key and known_hosts. The build runs with an empty home
    (deploy_job_command), so nothing in the runner's ~/.ssh can make it pass: only our files."""
    repo_url, _ = app
    ec2 = fleet.client("ec2", aws, REGION)
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=INNER_CIDR)["Subnet"]["SubnetId"]
    launched = ec2.run_instances(ImageId=fleet.DEMO_AMI, MinCount=2, MaxCount=2, SubnetId=subnet,
                                 TagSpecifications=[{"ResourceType": "instance",
                                                     "Tags": [{"Key": "Site", "Value": "inner"}]}])
    ips = sorted(i["PrivateIpAddress"] for i in launched["Instances"])

    bastion = network.add_bastion(BASTION_IP, INNER_CIDR)
    hosts = [network.add_host(ip, behind=bastion) for ip in ips]
    home = tmp_path / "agent-home"
    home.mkdir()
    config = tmp_path / "deploy.yml"
    config.write_text(yaml.safe_dump({
        "sites": {"inner": {"tags": {"Site": "inner"}, "region": REGION, "user": "root",
                            "identity_file": str(network.deploy_key), "proxy_jump": f"root@{BASTION_IP}"}},
        "path": {"revision_dir": str(tmp_path / "revisions")}}))
    emulator = JenkinsEmulator(users={}, api_tokens={JENKINS_USER: JENKINS_TOKEN}, executors=1)
    emulator.start()
    try:
        command = deploy_job_command(config, repo_url, agent_home=home)
        emulator.add_jobs_from_jjb(ROOT / "jenkins/jobs", commands={"deploy": command})
        yield Bastioned(bastion, hosts, Builds(emulator), home)
    finally:
        emulator.stop()


def test_a_site_behind_a_bastion_deploys_through_proxy_jump(behind_a_bastion, app):
    """The runner's route to the inner subnet is `unreachable`: only the jump gets there. The jump
    trusts the bastion on first use into our known_hosts, under its own name, and the next full
    deploy's pruning keeps that entry (it is no instance's alias)."""
    _, commits = app

    first = behind_a_bastion.builds.run(SITE="inner", REVISION="v2")

    assert first.result == "SUCCESS", first.console
    assert [deployed_revision(h) for h in behind_a_bastion.hosts] == [commits["v2"]] * 2
    known = behind_a_bastion.builds.known_hosts()
    aliases = {name: key for name, key in known.items() if name != BASTION_IP}
    assert all(alias.startswith("inner-i-") for alias in aliases)
    assert sorted(aliases.values()) == sorted(key_of(h) for h in behind_a_bastion.hosts)
    assert known[BASTION_IP] == key_of(behind_a_bastion.bastion)

    second = behind_a_bastion.builds.run(SITE="inner", REVISION="v3")

    assert second.result == "SUCCESS", second.console
    assert [deployed_revision(h) for h in behind_a_bastion.hosts] == [commits["v3"]] * 2
    assert behind_a_bastion.builds.known_hosts() == known  # pruned nothing: every entry is live or no alias
    assert list(behind_a_bastion.home.iterdir()) == []  # ssh read and wrote only our files
