"""`make demo`'s rolling deploy under load (issue 21): the batches, then 0 failed requests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helper.sandbox.balancer import haproxy
from helper.sandbox.hosts import available

pytestmark = pytest.mark.skipif(
    (available() or haproxy.available()) is not None and os.environ.get("CI") != "true",
    reason=str(available() or haproxy.available()))


def test_the_demo_rolls_a_site_to_v2_under_load_with_no_failed_request():
    ran = subprocess.run([sys.executable, "-m", "helper.sandbox.demo.rollout_demo"],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert any("batch 1:" in line for line in lines) and any("batch 4:" in line for line in lines), ran.stdout
    (summary,) = [line for line in lines if line.startswith("requests:")]
    assert " 0 failed" in summary and "hosts now serve v2" in summary, summary
