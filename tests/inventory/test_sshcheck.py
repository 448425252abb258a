"""Issue 9 item 9: a user's ssh config that switches host-key checking off for our hosts.

ssh takes the first value it finds for an option, so a user's `Host *` (or global option, or
`Match`) that says `StrictHostKeyChecking no` ABOVE the managed block wins over our
`accept-new`. The checker must say so exactly when `ssh -G` shows the weakening; every case
below is checked against OpenSSH itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from helper.cli import main
from helper.files.write import merge_managed_block
from helper.inventory.model import Host, Instance, SiteInventory
from helper.inventory.render import render_ssh_config
from helper.inventory.sshcheck import weakened_host_key_checking
from helper.sandbox.aws import fleet
from tests.test_readers import ssh_resolve

KNOWN_HOSTS = "/var/lib/deploy/known_hosts"
OURS = Host(site="web", alias="web-i-0123456789abcdef0", address="10.0.0.1",
            instance=Instance("i-0123456789abcdef0", "running"), status="InService")
BLOCK = merge_managed_block(None, render_ssh_config([SiteInventory("web", (OURS,))], KNOWN_HOSTS))

# name -> (the user's text above the block, below it, the line the warning names or None)
CASES = {
    "host-star-above": ("Host *\n    StrictHostKeyChecking no\n", "", 2),
    "host-star-below": ("", "Host *\n    StrictHostKeyChecking no\n", None),
    "global-option-above": ("# mine\nStrictHostKeyChecking=No\nHost github.com\n    User git\n", "", 2),
    "pattern-matching-ours": ("Host github.com\n    User git\nHost web-*\n  stricthostkeychecking off\n", "", 4),
    "pattern-not-ours": ("Host github.com *.internal\n    StrictHostKeyChecking no\n", "", None),
    "negated-ours": ("Host * !web-i-*\n    StrictHostKeyChecking no\n", "", None),
    "known-hosts-dev-null": ("Host *\n    UserKnownHostsFile /dev/null\n", "", 2),
    "stricter-is-fine": ("Host *\n    StrictHostKeyChecking yes\n", "", None),
    "comment-only": ("Host *\n    # StrictHostKeyChecking no\n    User me\n", "", None),
    "match-all": ("Match all\n    StrictHostKeyChecking no\n", "", 2),
    "quoted-value": ('Host "web-i-*"\n    StrictHostKeyChecking "no"\n', "", 2),
    # Issue 19 item 15: spellings the first pass missed.
    "false": ("Host *\n    StrictHostKeyChecking false\n", "", 2),
    "false-upper-global": ("StrictHostKeyChecking=FALSE\n", "", 1),
    "dev-dot-null": ("Host *\n    UserKnownHostsFile /dev/./null\n", "", 2),
    "dev-double-slash-null": ("Host *\n    UserKnownHostsFile //dev//null\n", "", 2),
    "dev-dotdot-null": ("Host *\n    UserKnownHostsFile /tmp/../dev/null\n", "", 2),
    "a-real-file": ("Host *\n    UserKnownHostsFile /etc/ssh/ssh_known_hosts\n", "", None),
}


def ssh_weakened(resolved: dict[str, str]) -> bool:
    # The file ssh opens: the kernel resolves `.`, `..`, repeated slashes and links.
    return (resolved["stricthostkeychecking"] in ("false", "no")
            or os.path.realpath(resolved["userknownhostsfile"].split()[0]) == "/dev/null")


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_warning_matches_what_ssh_really_does_for_our_hosts(tmp_path, name):
    above, below, line = CASES[name]
    config = tmp_path / "config"
    config.write_text(above + BLOCK + below)

    warnings = weakened_host_key_checking(config.read_text(), str(config))

    assert bool(warnings) == ssh_weakened(ssh_resolve(config, OURS.alias))
    assert [w.split(": ", 1)[0] for w in warnings] == ([f"{config}:{line}"] if line else [])


def test_a_file_without_a_managed_block_is_not_ours_to_judge(tmp_path):
    assert weakened_host_key_checking("Host *\n    StrictHostKeyChecking no\n", "config") == []


def test_doctor_warns_about_a_block_below_a_users_host_star(aws, tmp_path, capsys):
    dns = fleet.classic_elb_site(aws, "us-east-1", "web-elb", 1)
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host *\n    StrictHostKeyChecking no\n" + BLOCK)
    config = tmp_path / "deploy.yml"
    config.write_text(yaml.safe_dump({"path": {"ssh_config_file": str(ssh_config), "ssh_config_mode": "block"},
                                      "sites": {"web": {"elb": dns}}}))

    assert main(["doctor", "-c", str(config)]) == 0  # a warning: deploys still work

    lines = capsys.readouterr().out.splitlines()
    (warning,) = [line for line in lines if line.startswith("WARN ssh-config")]
    assert f"{ssh_config}:2" in warning and "StrictHostKeyChecking" in warning
    assert Path(ssh_config).read_text().startswith("Host *")  # doctor only reads
