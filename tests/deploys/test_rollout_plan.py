"""helper.deploys.rollout_plan and helper.config.rollout: batches, min_healthy, canary, zones. Pure."""

from __future__ import annotations

import textwrap

import pytest

from helper.config.document import parse as parse_config
from helper.config.rollout import Amount, RolloutConfig
from helper.config.yamlfile import load_text
from helper.deploys.rollout_plan import Host, plan, wait_bounds_s
from helper.errors import ConfigError


def hosts(n: int, zones: str = "a", unhealthy: tuple[int, ...] = ()) -> list[Host]:
    return [Host(f"i-{i:08x}", f"us-east-1{zones[i % len(zones)]}", i not in unhealthy) for i in range(n)]


def ids(p) -> list[list[str]]:
    return [list(b.instance_ids) for b in p.batches]


def test_batches_of_a_quarter_keep_three_quarters_in_service():
    p = plan("web", hosts(8), RolloutConfig(batch=Amount(25, True), min_healthy=Amount(75, True)))
    assert [len(b) for b in ids(p)] == [2, 2, 2, 2] and p.min_healthy == 6
    assert sorted(sum(ids(p), [])) == sorted(h.instance_id for h in hosts(8))


def test_min_healthy_cuts_the_batch_down():
    p = plan("web", hosts(10), RolloutConfig(batch=Amount(5), min_healthy=Amount(8)))
    assert [len(b) for b in ids(p)] == [2, 2, 2, 2, 2]


def test_unhealthy_hosts_go_first_and_cost_no_room():
    p = plan("web", hosts(4, unhealthy=(2,)), RolloutConfig(batch=Amount(1), min_healthy=Amount(2)))
    assert p.batches[0].kind == "unhealthy" and ids(p)[0] == ["i-00000002"]
    assert p.healthy_now == 3 and [len(b) for b in ids(p)] == [1, 1, 1, 1]


def test_a_canary_batch_comes_first_then_full_batches():
    p = plan("web", hosts(9), RolloutConfig(batch=Amount(4), min_healthy=Amount(5), canary=1))
    assert [(b.kind, len(b.instance_ids)) for b in p.batches] == [("canary", 1), ("batch", 4), ("batch", 4)]


def test_one_zone_at_a_time_never_mixes_zones_in_a_batch():
    p = plan("web", hosts(6, zones="ab"), RolloutConfig(batch=Amount(3), min_healthy=Amount(3), one_zone_at_a_time=True))
    zone = {h.instance_id: h.zone for h in hosts(6, zones="ab")}
    assert all(len({zone[i] for i in batch}) == 1 for batch in ids(p)) and len(p.batches) == 2


@pytest.mark.parametrize("n, min_healthy, unhealthy", [
    (1, Amount(100, True), ()),       # one host that must always serve
    (3, Amount(3), ()),
    (4, Amount(75, True), (0, 1)),    # two healthy, three must stay: no room
], ids=["one-host-100%", "all-of-3", "too-few-healthy"])
def test_a_plan_that_cannot_keep_min_healthy_is_refused_in_one_line(n, min_healthy, unhealthy):
    with pytest.raises(ConfigError) as caught:
        plan("web", hosts(n, unhealthy=unhealthy), RolloutConfig(batch=Amount(1), min_healthy=min_healthy))
    text = str(caught.value)
    assert text.startswith("site web: min_healthy") and "\n" not in text


def test_wait_bounds_follow_the_load_balancers_settings():
    assert wait_bounds_s([2.0, 300.0], [(3, 5.0, 2.0), (5, 10.0, 5.0)], margin_s=10) == (300.0, 85.0)
    assert wait_bounds_s([], []) == (0.0, 10.0)


SITE = """\
sites:
  web:
    asg: web-asg
    rollout: {rollout}
"""


def load(rollout: str):
    return parse_config(load_text(textwrap.dedent(SITE.format(rollout=rollout)), "deploy.yml"))


def test_rollout_config_reads_counts_percents_and_commands():
    site = load("{batch: 2, min_healthy: 50%, canary: 1, on_failure: rollback, verify: [curl, -f, x]}").sites[0]
    r = site.rollout
    assert (r.batch, r.min_healthy, r.canary, r.on_failure, r.verify) == (
        Amount(2), Amount(50, True), 1, "rollback", ("curl", "-f", "x"))


def test_defaults_rollout_applies_to_every_site_and_a_site_can_have_none():
    text = "defaults:\n  rollout: {batch: 1}\n" + SITE.format(rollout="{min_healthy: 1}")
    (site,) = parse_config(load_text(text, "deploy.yml")).sites
    assert site.rollout.batch == Amount(1) and site.rollout.min_healthy == Amount(1)
    plain = parse_config(load_text("sites:\n  web:\n    asg: web-asg\n", "deploy.yml")).sites[0]
    assert plain.rollout is None


@pytest.mark.parametrize("rollout, message", [
    ("{batch: 0}", "deploy.yml:4: sites.web.rollout.batch: must be a whole number from 1"),
    ("{batch: 150%}", "deploy.yml:4: sites.web.rollout.batch: must be a percent from 1% to 100%"),
    ("{on_failure: retry}", "deploy.yml:4: sites.web.rollout.on_failure: must be one of stop, rollback"),
    ("{verify: 'curl -f x'}", "deploy.yml:4: sites.web.rollout.verify: must be a command as a list of words"),
    ("{bacth: 1}", "deploy.yml:4: sites.web.rollout.bacth:"),
])
def test_a_bad_rollout_key_is_one_line_naming_it(rollout, message):
    with pytest.raises(ConfigError) as caught:
        load(rollout)
    assert str(caught.value).startswith(message)
