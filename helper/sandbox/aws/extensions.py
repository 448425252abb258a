"""The single place that loads this project's in-process changes to moto.

Each extension module exposes install() (idempotent) and reset() (forget state kept
outside moto's own backends); a module that runs threads also exposes shutdown().
"""

from __future__ import annotations

_installed = False


def _modules():
    # Imported lazily: moto is a sandbox-only dependency.
    from helper.sandbox.aws import faults, lifecycle

    return [faults, lifecycle]


def install() -> None:
    global _installed
    if _installed:
        return
    for module in _modules():
        module.install()
    _installed = True


def reset() -> None:
    for module in _modules():
        module.reset()


def shutdown() -> None:
    """Stop the extensions' background threads; install() starts them again."""
    global _installed
    for module in _modules():
        stop = getattr(module, "shutdown", None)
        if stop is not None:
            stop()
    _installed = False
