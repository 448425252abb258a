"""The single place that loads this project's in-process changes to moto.

Each extension module exposes install() (idempotent) and reset() (forget state kept
outside moto's own backends).
"""

from __future__ import annotations

_installed = False


def _modules():
    # Imported lazily: moto is a sandbox-only dependency.
    return []


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
