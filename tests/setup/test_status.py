"""`status` (issue 23) against moto and the Jenkins emulator (tests/scenario.py's world): what waits
and for which build, and an exit status that says whether anything needs a person."""

from __future__ import annotations

import json

import pytest

from helper.breaker.state import BreakerState, BreakerStore, State
from helper.cli import main
from helper.setup.status import NEAR_TIMEOUT_FRACTION, SiteStatus, Waiting, lines
from tests.polling import wait_for
from tests.scenario import GROUP, JENKINS_TOKEN, JENKINS_USER, SITE


def status(world, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["status", "-c", str(world.config_path), *extra])
    return code, capsys.readouterr().out


@pytest.fixture
def jenkins_env(monkeypatch):
    monkeypatch.setenv("JENKINS_USER", JENKINS_USER)
    monkeypatch.setenv("JENKINS_API_TOKEN", JENKINS_TOKEN)


def test_a_waiting_launch_shows_its_build_and_how_long_aws_still_waits(world, capsys, jenkins_env):
    (world.tmp / "delay_s").write_text("30")  # the build runs while we look
    world.start_consumer()
    (new,) = world.scale_to(3)
    wait_for(lambda: any(b.building for b in world.builds()), what="the scale-up build running")
    code, out = status(world, capsys, "--json")
    assert code == 0, out
    (site,) = json.loads(out)["sites"]
    assert site["site"] == SITE and site["revision"] == "v1" and site["instances"] == {"InService": 2,
                                                                                        "Pending:Wait": 1}
    (waiting,) = site["waiting"]
    assert waiting["instance_id"] == new and waiting["group"] == GROUP
    assert waiting["build"]["state"] == "running" and waiting["build"]["url"].endswith("/job/deploy/1/")
    assert waiting["heartbeat_timeout_s"] == 30 and waiting["global_timeout_s"] == 3000
    assert 0 <= waiting["age_s"] < 120 and site["attention"] == [] and site["breaker"]["state"] == "closed"
    code, text = status(world, capsys)
    assert f"waiting {new} ({GROUP}, Pending:Wait)" in text and "build running" in text
    assert text.splitlines()[-1] == "1 site(s), 0 needing a person"


def test_an_open_breaker_and_an_expired_hold_need_a_person(world, capsys):
    BreakerStore(world.asg).write(SITE, [GROUP], BreakerState(State.OPEN, "v2", 3, "2026-12-05T03:00:00Z",
                                                              "3 consecutive scale-up deploys of v2 failed"))
    assert main(["fleet", "hold", "-c", str(world.config_path), "--site", SITE,
                 "--holder", "https://ci/job/deploy/9/\x1b[31m", "--ttl-s", "0.001"]) == 0
    code, out = status(world, capsys)
    assert code == 1
    needs = [line for line in out.splitlines() if "NEEDS A PERSON" in line]
    assert any("breaker open since 2026-12-05T03:00:00Z" in line for line in needs)
    assert any(f"fleet hold on {GROUP}" in line and "expired" in line for line in needs)
    assert "\x1b" not in out  # a holder is outside text: quoted, never sent to the terminal raw
    assert out.splitlines()[-1] == "1 site(s), 1 needing a person"


def test_an_unknown_site_is_one_line_and_exit_2(world, capsys):
    assert main(["status", "-c", str(world.config_path), "--site", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--site nope: no such site" in err[0]


def test_a_launch_near_aws_global_timeout_or_without_a_build_needs_a_person():
    timeout = 3000
    near = Waiting("i-0123456789abcdef0", GROUP, "Pending:Wait", timeout * (1 - NEAR_TIMEOUT_FRACTION) + 1, 30,
                   timeout, None)
    young = Waiting("i-0123456789abcdef1", GROUP, "Pending:Wait", 10, 30, timeout, None)
    orphan = Waiting("i-0123456789abcdef2", GROUP, "Pending:Wait", 31, 30, timeout, None)
    assert SiteStatus(SITE, waiting=[young]).attention() == []
    (reason,) = SiteStatus(SITE, waiting=[near]).attention()
    assert "AWS gives up on it in 4m59s" in reason
    (reason,) = SiteStatus(SITE, waiting=[orphan]).attention()
    assert "with no build: is a consumer running?" in reason
    assert lines([SiteStatus(SITE, waiting=[near])])[-1] == "1 site(s), 1 needing a person"
