"""The sandbox's HAProxy (helper/sandbox/balancer/haproxy.py) under a deep state directory."""

from __future__ import annotations

import os

import pytest

from helper.sandbox.balancer import haproxy

UNAVAILABLE = haproxy.available()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None and os.environ.get("CI") != "true",
                                reason=UNAVAILABLE or "")


def test_a_workdir_too_deep_for_a_unix_socket_still_gets_a_runtime_api_and_leaves_nothing(tmp_path):
    """HAProxy refuses a stats socket path over 97 bytes; `sandbox up --hosts` under pytest-xdist's
    deeper temporary directories failed with "Fatal errors found in configuration"."""
    workdir = tmp_path / ("deep-" * 20) / "haproxy"
    proxy = haproxy.Haproxy(workdir, ["web"])
    with proxy:
        assert "Name: HAProxy" in proxy.command("show info")
        assert len(os.fsencode(proxy.socket_path)) <= haproxy.MAX_SOCKET_PATH_BYTES
        socket_dir = proxy.socket_path.parent
        assert socket_dir != workdir and oct(socket_dir.stat().st_mode & 0o777) == "0o700"
    assert not socket_dir.exists(), "the socket's own directory goes with HAProxy"
    with proxy:  # started again after a stop: a directory of its own again
        assert "Name: HAProxy" in proxy.command("show info")
    assert not proxy.socket_path.parent.exists()
    near = haproxy.Haproxy(tmp_path / "near", ["web"])
    with near:
        assert near.socket_path == tmp_path / "near" / "admin.sock", "a short path is used as it is"
