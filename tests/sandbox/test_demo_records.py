"""Whose process is a recorded pid now (helper/sandbox/demo/records.py): `sandbox down` kills only
the processes it started, never one that was given the same pid later."""

from __future__ import annotations

import subprocess
import sys

from helper.sandbox.demo import records
from helper.sandbox.demo.load_balancer import _is_our_haproxy
from tests.polling import wait_for


def test_a_live_process_is_known_by_its_start_and_a_reused_pid_is_not():
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()", "--state-dir", "x"])
    try:
        started = records.process_start(child.pid)
        assert started is not None
        # Until the child has exec'd, its arguments are its parent's, or none at all.
        argv = wait_for(lambda: (records.process_argv(child.pid, started) or [""])[1:2] == ["-c"]
                        and records.process_argv(child.pid, started), what="the child's own arguments")
        assert argv[1:5] == ["-c", "import signal; signal.pause()", "--state-dir", "x"]
        assert records.process_argv(child.pid, None) == argv, "no recorded start: any start"
        assert records.process_argv(child.pid, str(int(started) + 1)) is None, "another start: a reused pid"
        assert records.process_argv(1, None) is None and records.process_argv(0, None) is None
    finally:
        child.kill()
        child.wait()
    assert records.process_argv(child.pid, started) is None, "gone"


def test_only_the_haproxy_this_sandbox_started_is_ours(tmp_path):
    """A process with the recorded start but not our binary and config (or with no start recorded)
    is never killed as our HAProxy."""
    config = tmp_path / "haproxy" / "haproxy.cfg"
    stranger = subprocess.Popen(["sleep", "60", str(config)])
    try:
        started = records.process_start(stranger.pid)
        assert not _is_our_haproxy(stranger.pid, started, tmp_path), "not our binary"
        assert not _is_our_haproxy(stranger.pid, None, tmp_path), "no start recorded"
        assert not records.is_our_serve(stranger.pid, started, tmp_path)
    finally:
        stranger.kill()
        stranger.wait()
