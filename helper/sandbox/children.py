"""Ending a server the sandbox started (sshd in a host, HAProxy): politely, then for sure."""

from __future__ import annotations

import subprocess


def end(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM, and SIGKILL if it still runs after `timeout_s`; reaped either way, so no zombie stays."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
