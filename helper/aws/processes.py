"""Auto Scaling's process names, and which of them a fleet hold may suspend. Pure; no botocore.

The config parser (`lifecycle.hold.processes`) and helper/deploys/fleet_hold.py both check names
here, so a typo is refused at config load, before any deploy, in one wording.
"""

from __future__ import annotations

# AWS's fixed set (SuspendProcesses' ScalingProcesses), in the API reference's order.
PROCESSES = ("Launch", "Terminate", "AddToLoadBalancer", "AlarmNotification", "AZRebalance",
             "HealthCheck", "InstanceRefresh", "ReplaceUnhealthy", "ScheduledActions")
# Never held: a scale-out during a full deploy must still happen, and be gated by the hooks.
NEVER_HELD = frozenset({"Launch"})
HOLDABLE = tuple(p for p in PROCESSES if p not in NEVER_HELD)
# The processes that remove an InService host (issue 11's list). HealthCheck stays on, so a host
# that fails its checks while held is marked and replaced when the hold ends; with ELB health
# checks a deploy that restarts the app can fail them, and then HealthCheck belongs in the list.
DEFAULT_PROCESSES = ("Terminate", "AZRebalance", "ReplaceUnhealthy", "InstanceRefresh")
# The Jenkinsfile's build timeout (60 min) twice over: a live build never outlives its hold,
# and a killed one freezes the group for at most two hours (plus one reconcile interval).
DEFAULT_TTL_S = 2 * 3600
# A hold longer than a day is a frozen fleet nobody remembers; renew it instead.
MAX_TTL_S = 24 * 3600


def ordered(names) -> tuple[str, ...]:
    """`names` in AWS's order, once each, unknown names dropped."""
    wanted = set(names)
    return tuple(p for p in PROCESSES if p in wanted)


def check_processes(names) -> tuple[str, ...]:
    """The processes a hold may suspend, in AWS's order; ValueError names the first bad one.

    Empty is refused: SuspendProcesses without names suspends every process, Launch too.
    """
    names = tuple(names)
    for name in names:
        if name in NEVER_HELD:
            raise ValueError(f"{name} is never held: scale-out must stay allowed during a deploy")
        if name not in PROCESSES:
            raise ValueError(f"{name!r} is not an Auto Scaling process (one of {', '.join(HOLDABLE)})")
    if not names:
        raise ValueError("no process to hold")
    return ordered(names)
