"""The aws-deploy-helper program: the command line (helper/cli.py) with the sandbox plugged in.

The console script and `python -m helper` start here. The sandbox's builds call helper/cli.py
in-process, so the command line must not import the sandbox; this module joins the two.
"""

from __future__ import annotations

import argparse

from helper import cli


def _run_sandbox(args: argparse.Namespace) -> int:
    from helper.sandbox.demo import control  # the `sandbox` extra: loaded only for this command

    return control.run(args.sandbox_action, args)


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, sandbox=_run_sandbox)


if __name__ == "__main__":
    raise SystemExit(main())
