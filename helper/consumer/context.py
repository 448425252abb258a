"""What a deployment works with, handed to it whole instead of the consumer that made it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

from helper.breaker.sites import SiteBreakers
from helper.config.lifecycle import LifecycleConfig
from helper.consumer.autoscaling import AutoScaling
from helper.consumer.jenkins_client import JenkinsJobs
from helper.consumer.messages import Messages
from helper.consumer.metrics import Metrics


@dataclass(frozen=True)
class Context:
    config: LifecycleConfig
    messages: Messages  # the queue, as a deployment uses it
    autoscaling: AutoScaling
    jobs: JenkinsJobs
    metrics: Metrics
    clock: Callable[[], float]  # monotonic seconds
    # Set after the grace period on shutdown: deployments hand their actions back to the queue.
    release: threading.Event
    # The site breakers (helper/breaker/sites.py); None: no breaker, every build starts.
    breakers: Optional[SiteBreakers] = None
