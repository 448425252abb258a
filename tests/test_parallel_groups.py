"""tests/conftest.py's groups for `pytest -n`: a test file that makes real hosts and is left out of
the real-host group would run beside another on the one address range, and fail (or make the other
fail) only under workers."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REAL_HOST_FILES, REAL_HOSTS, WHOLE_FILES, group_of

ROOT = Path(__file__).resolve().parents[1]
# What makes real hosts: the `network` fixture (a function or fixture taking it), the helpers of
# tests/realdeploy.py, a HostNetwork, or a sandbox started with --hosts.
MAKES_HOSTS = re.compile(r'needs_real_hosts|HostNetwork\(|"--hosts"|def \w+\([^)]*\bnetwork\b')


def test_every_file_that_makes_real_hosts_is_in_the_real_host_group_and_every_named_file_exists():
    making = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
              if p != Path(__file__).resolve() and MAKES_HOSTS.search(p.read_text(encoding="utf-8"))}
    assert making, "the pattern finds the host tests"
    assert making <= REAL_HOST_FILES, f"add to REAL_HOST_FILES: {sorted(making - REAL_HOST_FILES)}"
    missing = [f for f in sorted(REAL_HOST_FILES | WHOLE_FILES) if not (ROOT / f).is_file()]
    assert missing == [], "renamed or removed: the group would silently lose it"


def test_a_test_is_scheduled_in_its_group_or_alone():
    assert group_of("tests/test_real_ssh.py::test_x[a::b]") == REAL_HOSTS
    assert group_of("tests/test_packaging.py::test_y") == "tests/test_packaging.py"
    assert group_of("tests/consumer/test_batcher.py::test_z") == "tests/consumer/test_batcher.py::test_z"
