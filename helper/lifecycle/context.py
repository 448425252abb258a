"""What a deployment works with, handed to it whole instead of the consumer that made it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

from helper.config.lifecycle import LifecycleConfig
from helper.lifecycle.autoscaling import AutoScaling
from helper.lifecycle.breakers import SiteBreakers
from helper.lifecycle.jenkins_client import JenkinsJobs
from helper.lifecycle.messages import Messages
from helper.lifecycle.metrics import Metrics


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
    # The site breakers (helper/lifecycle/breakers.py); None: no breaker, every build starts.
    breakers: Optional[SiteBreakers] = None
