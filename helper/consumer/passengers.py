"""Launches a build takes along: the site's other instances Auto Scaling holds right now.

Several consumer replicas on one queue each receive a share of a scale-out's messages, and
each would queue a build for its share: three replicas, up to three builds where one would do.
So before a deployment queues its build it adds the site's other instances waiting in
Pending:Wait in the groups routed to the same job, up to batch_max_instances, unless a recent
build of ours names them already. They are named `group:instance:+`: the
build deploys them, and nothing is completed for them by this deployment. When an instance's
own message reaches a deployment (here or in a rival replica), that deployment checks it
against Auto Scaling and confirms its token as always, then finds this build serving it
(jenkins_client.serves) and follows it instead of queuing another; only it completes the action.

The rules are pure; find() is the one place that asks Auto Scaling and Jenkins for them, for the
deployment about to queue (deployment.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from helper.config.lifecycle import LifecycleConfig
from helper.consumer.action import passenger_reference
from helper.consumer.autoscaling import Waiting
from helper.consumer.jenkins_client import Found, JenkinsJobs

# Only launches into service: a warm pool's Warmed:Pending:Wait is not deployed at all, and
# a terminating instance must not be.
TAKEN_STATE = "Pending:Wait"


def groups_for(config: LifecycleConfig, site: str, job: str) -> list[str]:
    """The groups whose launches the same build would deploy: routed to this site and job."""
    return [g for g in config.groups_of(site) if config.groups[g].job == job]


def busy(found: Iterable[Found]) -> set[str]:
    """Instances a recent build of ours deploys or deployed: queued or running, or finished while the
    instance still waits (its holder is about to complete it, or will follow that build: serves)."""
    return {i for f in found for i in f.instances}


def choose(waiting: Iterable[Waiting], own: set[str], taken: set[str], room: int) -> tuple[Waiting, ...]:
    """At most `room` launches waiting in service's Pending:Wait that are neither ours nor taken."""
    if room <= 0:
        return ()
    fit = sorted({(w.group, w.instance_id): w for w in waiting
                  if w.state == TAKEN_STATE and w.instance_id not in own | taken}.items())
    return tuple(w for _, w in fit[:room])


def find(autoscaling, jobs: JenkinsJobs, config: LifecycleConfig, site: str, job: str, own: set[str],
         room: int) -> tuple[Waiting, ...]:
    """Up to `room` of the site's launches a build of `job` could take along now. One
    DescribeAutoScalingGroups call, and a Jenkins read only when there is something to take.
    Raises what Auto Scaling and Jenkins raise: the caller goes on without passengers."""
    if room <= 0:
        return ()
    waiting = autoscaling.waiting_instances(groups_for(config, site, job))  # choose() leaves out our own
    if not choose(waiting, own, set(), room):
        return ()
    return choose(waiting, own, busy(jobs.ours(job, site)), room)


def references(passengers: Iterable[Waiting]) -> list[str]:
    return [passenger_reference(w.group, w.instance_id) for w in passengers]


def clash(found: Iterable[Found], passengers: Iterable[Waiting], mine: int) -> bool:
    """An earlier build of ours (lower queue id) deploys one of our passengers: two builds would
    deploy it, so ours goes back and is queued again without it."""
    names = {w.instance_id for w in passengers}
    return any(f.in_progress and f.queue_id is not None and f.queue_id < mine and f.instances & names
               for f in found)
