"""Where our inventory's CPU goes: cProfile of one run, grouped into the phases of the flow.

Each function's own time (tottime) goes to a phase by the file it lives in. Time in C
built-ins and in general-purpose library code (re, json, ipaddress, ...) has no file of its
own that says which phase it served, so it is shared out among its callers in proportion to
the time each caller spent there, up to a few levels up. Imports are measured a second way
too, with `python -X importtime`, because cProfile sees only part of module execution.
"""

from __future__ import annotations

import pstats
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

# First match wins; a function whose file matches nothing is charged to its callers.
PHASES = (
    ("import", ("<frozen importlib", "<frozen zipimport", "importlib/", "pkg_resources/")),
    ("botocore model loading", ("botocore/loaders.py", "botocore/model.py", "botocore/session.py",
                                "botocore/client.py", "botocore/regions.py", "botocore/endpoint_provider.py",
                                "botocore/hooks.py", "botocore/handlers.py", "botocore/credentials.py",
                                "botocore/configprovider.py", "botocore/docs/", "botocore/waiter.py",
                                "botocore/paginate.py", "boto3/", "json/", "helper/aws/clients.py")),
    ("request and network", ("botocore/endpoint.py", "botocore/httpsession.py", "botocore/awsrequest.py",
                             "botocore/auth.py", "botocore/retries/", "botocore/serialize.py",
                             "botocore/validate.py", "urllib3/", "http/client.py", "socket.py", "ssl.py",
                             "email/")),
    ("response parsing", ("botocore/parsers.py", "xml/etree/", "botocore/utils.py", "helper/inventory/discover.py",
                          "helper/inventory/collect.py")),
    ("selection/naming", ("helper/inventory/selection.py", "helper/inventory/naming.py",
                          "helper/inventory/model.py")),
    ("rendering", ("helper/inventory/render/", "yaml/")),
    ("writing", ("helper/files/", "helper/inventory/outputs.py", "helper/inventory/sshcheck.py", "difflib.py")),
    ("config and cli", ("helper/config/", "helper/cli.py", "helper/settings.py", "argparse.py")),
)
# How far up the callers a library function's time is followed before it counts as "other".
CALLER_DEPTH = 4
TOP_LINES = 15
# cProfile's default clock is the wall clock, which would charge the time spent waiting for
# moto to `recv_into`; the question is where our CPU goes, so the profile runs on CPU time.
PROFILED_RUN = """
import cProfile, runpy, sys, time
out, sys.argv = sys.argv[1], ["helper", *sys.argv[2:]]
profiler = cProfile.Profile(time.process_time)
try:
    profiler.runcall(runpy.run_module, "helper", run_name="__main__")
except SystemExit as exit:
    if exit.code:
        raise
finally:
    profiler.dump_stats(out)
"""


def phase_of_file(filename: str) -> str | None:
    for phase, patterns in PHASES:
        if any(p in filename for p in patterns):
            return phase
    return None


def share_out(stats: dict, func: tuple, seconds: float, depth: int, totals: Counter) -> None:
    """Charge `seconds` of `func`'s time to its phase, or to its callers' phases."""
    phase = phase_of_file(func[0])
    if phase is not None:
        totals[phase] += seconds
        return
    callers = stats[func][4] if func in stats else {}
    weights = {caller: timing[3] for caller, timing in callers.items() if caller != func}
    whole = sum(weights.values())
    if depth == 0 or whole <= 0:
        totals["other"] += seconds
        return
    for caller, weight in weights.items():
        share_out(stats, caller, seconds * weight / whole, depth - 1, totals)


def phases(stats: pstats.Stats) -> Counter:
    totals: Counter = Counter()
    for func, (_, _, tottime, _, _) in stats.stats.items():
        share_out(stats.stats, func, tottime, CALLER_DEPTH, totals)
    return totals


def import_seconds(argv: list[str], env: dict[str, str]) -> float:
    """Seconds spent importing, from -X importtime: the sum of the top-level imports' cumulative time."""
    done = subprocess.run([sys.executable, "-X", "importtime", *argv[1:]], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    top = re.findall(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", done.stderr, re.MULTILINE)
    return sum(int(us) for us, name in top if not name.startswith(" ")) / 1e6


def profile(argv: list[str], env: dict[str, str], workdir: Path, instances: int) -> None:
    """Profile one run of our command (argv = [python, -m, helper, ...]); print its phases and top lines."""
    out = workdir / "inventory.prof"
    subprocess.run([sys.executable, "-c", PROFILED_RUN, str(out), *argv[3:]], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    stats = pstats.Stats(str(out))
    total = stats.total_tt
    print(f"\nprofile of ours at {instances:,} instances: {total:.2f} s of CPU under cProfile (which slows it)")
    for phase, seconds in phases(stats).most_common():
        print(f"  {phase:<24} {seconds:6.2f} s  {seconds / total:6.1%}")
    print(f"  (python -X importtime, without cProfile: imports {import_seconds(argv, env):.2f} s)")
    print(f"\ntop {TOP_LINES} functions by own time")
    stats.sort_stats("tottime").print_stats(TOP_LINES)
