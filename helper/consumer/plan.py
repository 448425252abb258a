"""What one deployment is asked to do, and how it ends.

A deployment either follows its one build to the end and reports each action as Settled,
or finds that other builds already serve some of its actions and ends with a Handover: new
plans (one per serving build, plus one for the rest) that the consumer starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import NamedTuple, Union

from helper.consumer.inflight import Tracked
from helper.consumer.jenkins_client import Found, serves

# The result a plan without a job completes with: nothing to build, nothing to fail.
SUCCESS = "SUCCESS"
# The result when Jenkins gave no useful answer for lifecycle.jenkins_deadline_s: a key of
# lifecycle.result_on like Jenkins's own results.
UNREACHABLE = "UNREACHABLE"


class BatchKey(NamedTuple):
    """What launches must share to share a build: the site, the transition, the job, and whether
    the launch goes into a warm pool (a pool entry is not deployed; a launch out of it is)."""

    site: str
    transition: str
    job: str | None
    warm: bool


@dataclass(frozen=True)
class Plan:
    """What to run for a batch: `job` None means complete at once with `outcome`."""

    site: str
    job: str | None
    tracked: tuple[Tracked, ...]
    outcome: str = SUCCESS
    adopt: Found | None = None
    terminating: bool = False
    checked: bool = False  # the instances' states were checked already (a batch split off another)


class Stop(Enum):
    """A deployment that ends without completing anything."""

    RELEASED = "released"  # shutting down: the actions go back to the queue for the next consumer
    GONE = "gone"  # every action ended without us: nothing to complete


@dataclass(frozen=True)
class Finished:
    """The build ended (or Jenkins stayed unreachable): complete every live action accordingly."""

    result: str  # Jenkins's name for it ("SUCCESS", "FAILURE", ...) or UNREACHABLE: a key of result_on


@dataclass(frozen=True)
class Handover:
    """Actions for other deployments to follow: the consumer starts each plan."""

    plans: tuple[Plan, ...]


@dataclass(frozen=True)
class Settled:
    """A deployment is over: each of its actions, and whether its lifecycle action is completed."""

    actions: tuple[tuple[Tracked, bool], ...]


@dataclass(frozen=True)
class Parked:
    """The site's breaker is open: no build; the consumer holds the plan's actions (helper/consumer/parked.py)."""

    plan: Plan


# The outcome a plan refused a build by an open breaker (lifecycle.breaker.on_open: abandon)
# completes with: not a key of result_on, so it gets ABANDON.
BREAKER_OPEN = "BREAKER_OPEN"

Ending = Union[Stop, Finished, Handover, Parked]


def _rank(found: Found) -> tuple[int, int]:
    """In progress first, lowest queue id (the one rivals keep); then the newest finished."""
    in_progress = found.build_number is None or found.building
    return (0, found.queue_id or 0) if in_progress else (1, -(found.build_number or 0))


def hand_over(plan: Plan, found: list[Found]) -> Handover:
    """Each action a found build serves goes to a plan that adopts the best such build; the rest to one plan.

    Every plan is marked checked: the actions' states were checked before Jenkins was asked.
    """
    keep: list[Tracked] = []
    adopted: dict[Found, list[Tracked]] = {}
    for tracked in plan.tracked:
        serving = sorted((f for f in found if serves(f, tracked.action, tracked.sent_ms())), key=_rank)
        if serving:
            adopted.setdefault(serving[0], []).append(tracked)
        else:
            keep.append(tracked)
    plans = [replace(plan, tracked=tuple(tracked), adopt=build, checked=True) for build, tracked in adopted.items()]
    if keep:
        plans.append(replace(plan, tracked=tuple(keep), adopt=None, checked=True))
    return Handover(tuple(plans))
