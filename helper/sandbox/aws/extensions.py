"""The single place that loads this project's in-process changes to moto.

lifecycle.install() patches moto once and makes the sandbox's one state object (state.py);
speedups.install() makes three of moto's hot paths cheap without changing their answers;
reset() forgets what that state holds, shutdown() stops its ticker thread.
"""

from __future__ import annotations

_installed = False


def install(time_scale: float = 1.0) -> None:
    """Idempotent; `time_scale`: how much faster than real time the sandbox clock runs."""
    global _installed
    if _installed:
        return
    # Imported here: moto is a sandbox-only dependency.
    from helper.sandbox.aws import lifecycle, speedups, tag_lock

    speedups.install()
    tag_lock.install()
    lifecycle.install(time_scale)
    _installed = True


def reset() -> None:
    from helper.sandbox.aws import state

    state.current().reset()


def shutdown() -> None:
    """Stop the extension's background thread; install() starts it again."""
    global _installed
    from helper.sandbox.aws import state

    if _installed:
        state.current().ticker.stop()
    _installed = False
