"""What an inventory run imports: its own flow, not the consumer's or the setup commands'.

Imports are a third of a 1,000-instance inventory's CPU (docs/benchmarks.md). Building the
CLI's parser once imported the IAM policy table, and through it the lifecycle config and the
hook planner; this keeps them out.
"""

from __future__ import annotations

import json
import subprocess
import sys

NOT_FOR_INVENTORY = ("helper.consumer", "helper.breaker", "helper.deploys", "helper.config.lifecycle", "helper.setup.iam_policy", "helper.setup.hooks",
                     "helper.setup.doctor", "helper.sandbox", "moto", "jenkins", "prometheus_client", "difflib")

PROBE = """
import json, sys
from helper import cli
cli.build_parser()
import helper.inventory.collect, helper.inventory.outputs
import helper.inventory.render.ansible, helper.inventory.render.capistrano, helper.inventory.render.ssh
print(json.dumps(sorted(sys.modules)))
"""


def test_an_inventory_run_imports_nothing_of_the_consumer_or_the_setup_commands():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)

    assert "helper.inventory.collect" in loaded and "botocore.client" in loaded
    assert [m for m in loaded if m.startswith(NOT_FOR_INVENTORY)] == []


def test_the_iam_policy_command_still_offers_every_principal():
    from helper.cli import build_parser
    from helper.setup import iam_policy

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command" or getattr(a, "choices", None) and "iam-policy" in a.choices)
    principal = next(a for a in sub.choices["iam-policy"]._actions if a.dest == "principal")

    assert tuple(principal.choices) == iam_policy.PRINCIPALS == ("helper", "consumer", "hook-role", "setup")
