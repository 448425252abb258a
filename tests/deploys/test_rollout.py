"""`rollout` against the moto server: batches leave every load balancer, deploy, and come back.

moto's target health is simpler than AWS's (no `draining`; a classic ELB always says InService),
so these tests prove the order of events, the records and the report; the effect on real traffic
needs a real load balancer (issue 21's HAProxy sandbox, not built yet).
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import yaml

from helper.cli import main
from helper.deploys import rollout as rollout_module
from helper.sandbox.aws import fleet

REGION = "us-east-1"
def log_of(tmp_path) -> list[dict]:
    path = tmp_path / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def registrations(aws, tg_arn, admin_arn) -> dict[str, set[str]]:
    elbv2, elb = fleet.client("elbv2", aws, REGION), fleet.client("elb", aws, REGION)
    seen: dict[str, set[str]] = {}
    for arn, name in ((tg_arn, "web"), (admin_arn, "admin")):
        for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]:
            seen.setdefault(d["Target"]["Id"], set()).add(f"{name}:{d['Target']['Port']}")
    for i in elb.describe_load_balancers(LoadBalancerNames=["web-classic"])["LoadBalancerDescriptions"][0]["Instances"]:
        seen.setdefault(i["InstanceId"], set()).add("classic")
    return seen


EVERYWHERE = {"web:8080", "admin:8081", "classic"}
ALL_THREE = {"web-tg:8080", "web-admin:8081", "web-classic"}  # as the deploy command names them


def rollout(*extra: str) -> int:
    """`rollout [ACTION] -c deploy.yml --site web ...`: an action word goes first, as documented."""
    action = list(extra[:1]) if extra[:1] and extra[0] in ("plan", "status", "abort") else []
    return main(["rollout", *action, "-c", "deploy.yml", "--site", "web", *extra[len(action):]])


def test_each_batch_leaves_every_load_balancer_while_it_deploys_and_comes_back(site, aws, capsys):
    tmp_path, ids, tg_arn, admin_arn = site
    status = rollout("--revision", "v2", "--report", "report.json", "--", sys.executable, "deploy.py")
    assert status == 0, capsys.readouterr()
    batches = log_of(tmp_path)
    assert [len(b["hosts"]) for b in batches] == [2, 2, 2]
    assert sorted(h for b in batches for h in b["hosts"]) == ids and {b["revision"] for b in batches} == {"v2"}
    for b in batches:  # out of all three while deployed; the others in all three
        assert not set(b["hosts"]) & set(b["registered"]), b
        assert all(set(b["registered"].get(i, ())) == ALL_THREE for i in ids if i not in b["hosts"]), b
        assert len([i for i in ids if i not in b["hosts"]]) >= 4  # min_healthy
    assert registrations(aws, tg_arn, admin_arn) == {i: EVERYWHERE for i in ids}
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["result"] == "succeeded" and {h["status"] for h in report["hosts"]} == {"done"}
    assert rollout("status") == 0  # no record left behind


def test_a_failed_batch_stays_out_the_rest_keep_serving_and_abort_leaves_it(site, aws, capsys, monkeypatch):
    tmp_path, ids, tg_arn, admin_arn = site
    monkeypatch.setenv("FAIL_BATCHES", "2")
    status = rollout("--revision", "v2", "--report", "report.json", "--", sys.executable, "deploy.py")
    assert status == 1
    report = {h["instance_id"]: h for h in json.loads((tmp_path / "report.json").read_text())["hosts"]}
    batches = log_of(tmp_path)
    first, failed = batches[0]["hosts"], batches[1]["hosts"]
    assert len(batches) == 2  # stopped: batch 3 never began
    assert {report[i]["status"] for i in first} == {"done"} and {report[i]["status"] for i in failed} == {"failed"}
    assert {h["status"] for i, h in report.items() if i not in first + failed} == {"not_begun"}
    seen = registrations(aws, tg_arn, admin_arn)
    assert all(i not in seen for i in failed) and all(seen[i] == EVERYWHERE for i in ids if i not in failed)
    capsys.readouterr()
    assert rollout("status") == 1
    out = capsys.readouterr().out
    assert all(f"{i} failed" in out for i in failed), out
    assert rollout("abort") == 0
    assert all(i not in registrations(aws, tg_arn, admin_arn) for i in failed)  # a person decides


def test_abort_with_a_holder_puts_back_only_that_holders_hosts(site, aws, capsys, monkeypatch):
    """A killed build's post aborts its own rollout; another build's hosts stay where they are."""
    from helper.deploys.load_balancers import LoadBalancers
    from helper.deploys.rollout_record import RolloutRecords

    tmp_path, ids, tg_arn, admin_arn = site
    lbs = LoadBalancers(fleet.client("elbv2", aws, REGION), fleet.client("elb", aws, REGION))
    records = RolloutRecords(fleet.client("ec2", aws, REGION))
    for holder, instance in (("https://ci/job/web/7/", ids[0]), ("https://ci/job/web/8/", ids[1])):
        members = lbs.memberships([instance])  # what `rollout run` does before its deploy, then killed
        records.take_out("web", holder, "2030-01-01T00:00:00Z", members)
        lbs.deregister(members)
    assert rollout("abort", "--holder", "https://ci/job/web/7/") == 0
    seen = registrations(aws, tg_arn, admin_arn)
    assert seen.get(ids[0]) == EVERYWHERE and ids[1] not in seen
    assert rollout("abort") == 0 and registrations(aws, tg_arn, admin_arn) == {i: EVERYWHERE for i in ids}


def test_plan_configured_answers_from_the_file_alone(site, capsys, monkeypatch):
    tmp_path, *_ = site
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # no AWS call is made
    assert rollout("plan", "--configured") == 0 and capsys.readouterr().out == "true\n"
    config = yaml.safe_load((tmp_path / "deploy.yml").read_text())
    del config["sites"]["web"]["rollout"]
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(config))
    assert rollout("plan", "--configured") == 0 and capsys.readouterr().out == "false\n"


def test_rollback_gives_the_done_batches_the_previous_revision(site, aws, monkeypatch):
    tmp_path, ids, tg_arn, admin_arn = site
    config = yaml.safe_load((tmp_path / "deploy.yml").read_text())
    config["sites"]["web"]["rollout"]["on_failure"] = "rollback"
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("FAIL_BATCHES", "2")
    assert rollout("--revision", "v2", "--report", "report.json", "--", sys.executable, "deploy.py") == 1
    runs = [(b["batch"], b["revision"], tuple(b["hosts"])) for b in log_of(tmp_path)]
    assert [r[:2] for r in runs] == [("1", "v2"), ("2", "v2"), ("1", "v1")] and runs[0][2] == runs[2][2]
    statuses = {h["instance_id"]: h["status"] for h in json.loads((tmp_path / "report.json").read_text())["hosts"]}
    assert {statuses[i] for i in runs[0][2]} == {"rolled_back"}


def test_plan_and_dry_run_change_nothing(site, aws, capsys):
    tmp_path, ids, tg_arn, admin_arn = site
    assert rollout("plan") == 0
    out = capsys.readouterr().out
    assert "6 host(s)" in out and "3 batch(es)" in out and "at least 4" in out
    assert rollout("--dry-run", "--revision", "v2", "--", "false") == 0
    assert registrations(aws, tg_arn, admin_arn) == {i: EVERYWHERE for i in ids} and log_of(tmp_path) == []


def test_a_plan_that_cannot_keep_min_healthy_is_one_line_and_exit_2(site, capsys):
    tmp_path, *_ = site
    config = yaml.safe_load((tmp_path / "deploy.yml").read_text())
    config["sites"]["web"]["rollout"]["min_healthy"] = "100%"
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(config))
    assert rollout("plan") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aws-deploy-helper: site web: min_healthy 100%") and "\n" not in err
    assert os.listdir(tmp_path / "revisions") == ["web.revision"]


def test_every_call_a_rollout_makes_is_in_the_helper_policy(site, aws, monkeypatch):
    """Recorded through the real clients (issue 21: iam-policy covers the new calls)."""
    from helper.config.document import parse
    from helper.config.yamlfile import load_text
    from helper.setup import iam_policy
    from tests.setup.test_iam_policy import assert_allowed, record_client_calls

    tmp_path, *_ = site
    recorder = record_client_calls(monkeypatch)
    monkeypatch.setenv("FAIL_BATCHES", "3")  # the failure path's record writes too
    assert rollout("--revision", "v2", "--", sys.executable, "deploy.py") == 1
    assert rollout("abort") == 0
    config = parse(load_text((tmp_path / "deploy.yml").read_text(), "deploy.yml"))
    assert {("elbv2", "DeregisterTargets"), ("elb", "DeregisterInstancesFromLoadBalancer"), ("ec2", "CreateTags"),
            ("ec2", "DeleteTags"), ("elbv2", "RegisterTargets")} <= recorder.calls
    assert_allowed(iam_policy.HELPER, recorder.calls, config)


def test_a_forged_record_never_puts_a_host_into_a_load_balancer_that_does_not_serve_the_site(site, aws):
    """The record is an instance tag: anyone with ec2:CreateTags can write one naming any target group."""
    from helper.deploys.load_balancers import LoadBalancers, Membership
    from helper.deploys.rollout_record import RolloutRecords

    tmp_path, ids, tg_arn, admin_arn = site
    ec2, elbv2 = fleet.client("ec2", aws, REGION), fleet.client("elbv2", aws, REGION)
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    foreign = elbv2.create_target_group(Name="payments", Protocol="HTTP", Port=443, VpcId=vpc)["TargetGroups"][0]
    lbs = LoadBalancers(elbv2, fleet.client("elb", aws, REGION))
    members = lbs.memberships([ids[0]])
    lbs.deregister(members)
    RolloutRecords(ec2).take_out("web", "https://ci/job/web/9/", "2030-01-01T00:00:00Z",
                                 members + [Membership("tg", foreign["TargetGroupArn"], ids[0], 443)])
    assert rollout("abort") == 0
    assert elbv2.describe_target_health(TargetGroupArn=foreign["TargetGroupArn"])["TargetHealthDescriptions"] == []
    assert registrations(aws, tg_arn, admin_arn)[ids[0]] == EVERYWHERE  # back where it really was


def test_a_batch_changes_each_load_balancer_and_its_records_in_one_call(site, aws, monkeypatch):
    """Calls per batch, not per host: one (de)register per load balancer, one CreateTags for hosts
    whose records read the same, one DescribeTags and DeleteTags to clear them (bench/rollout.py:
    8.8 AWS calls a host before, 3.9 after)."""
    from collections import Counter

    from helper.aws.clients import AwsClients

    calls, made = Counter(), AwsClients.client

    def counting(self, service):
        client = made(self, service)
        client.meta.events.register("before-call", lambda model, **_: calls.update([model.name]))
        return client

    monkeypatch.setattr(AwsClients, "client", counting)
    assert rollout("--revision", "v2", "--", sys.executable, "deploy.py") == 0
    batches = len(log_of(site[0]))
    assert batches == 3  # six hosts, batch 2
    # Two target groups and a classic ELB, each once a batch each way; the two hosts' records alike.
    assert calls["DeregisterTargets"] == calls["RegisterTargets"] == 2 * batches
    assert calls["DeregisterInstancesFromLoadBalancer"] == calls["RegisterInstancesWithLoadBalancer"] == batches
    assert calls["CreateTags"] == calls["DeleteTags"] == batches


def test_rollback_rolls_the_site_to_its_previous_revision_and_records_it(site, capsys):
    tmp_path, *_ = site
    for rev in ("v1", "v2"):  # two full deploys, as the Jenkinsfile's Record revision stage writes them
        assert main(["revision", "set", "-c", "deploy.yml", "--site", "web", "--revision", rev]) == 0
    capsys.readouterr()
    assert main(["revision", "previous", "-c", "deploy.yml", "--site", "web"]) == 0
    assert capsys.readouterr().out.strip() == "v1"
    assert main(["rollback", "-c", "deploy.yml", "--site", "web", "--", sys.executable, "deploy.py"]) == 0
    assert {b["revision"] for b in log_of(tmp_path)} == {"v1"} and len(log_of(tmp_path)) == 3
    assert (tmp_path / "revisions" / "web.revision").read_text() == "v1\n"
    capsys.readouterr()
    assert main(["revision", "history", "-c", "deploy.yml", "--site", "web"]) == 0
    assert capsys.readouterr().out.split("\n")[0].endswith(" v1 rollback-from=v2")
    # Nothing good is left before v1: a second rollback refuses, in one line, and deploys nothing.
    assert main(["rollback", "-c", "deploy.yml", "--site", "web", "--", sys.executable, "deploy.py"]) == 1
    assert "no earlier good revision" in capsys.readouterr().err and len(log_of(tmp_path)) == 3
    assert main(["rollback", "-c", "deploy.yml", "--site", "web", "--to", "v7", "--", "true"]) == 2


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now_s += seconds


@pytest.mark.parametrize("ready_at_s", [0.05, 0.35, 2.0, 40.0])
def test_a_wait_sees_the_state_at_most_a_quarter_late(ready_at_s):
    """Doubling pauses saw a host healthy at 0.35 s only at 0.7 s, in every batch (bench/rollout.py)."""
    clock, asked = FakeClock(), []

    def done() -> bool:
        asked.append(clock())
        return clock() >= ready_at_s

    assert rollout_module.wait_until(done, 300.0, clock, clock.sleep)
    assert clock() <= max(ready_at_s * (1 + rollout_module.OVERSHOOT), ready_at_s + rollout_module.FIRST_POLL_S) + 1e-9
    # ...and still one call a second (POLL_S) once a wait is long: a 300 s drain is no flood.
    assert len(asked) <= ready_at_s / rollout_module.POLL_S + 20


def test_a_wait_ends_at_its_bound_when_the_state_never_comes():
    clock = FakeClock()
    assert not rollout_module.wait_until(lambda: False, 3.0, clock, clock.sleep)
    assert clock() == pytest.approx(3.0)
