"""What several unit-test modules share: one lifecycle action to build their tables from."""

from __future__ import annotations

import sys
from pathlib import Path

from helper.consumer.action import LAUNCHING, LifecycleAction

GROUP, INSTANCE = "web-asg", "i-0123456789abcdef0"


def action(token: str | None = "tok-a", group: str = GROUP, instance: str = INSTANCE,
           transition: str = LAUNCHING) -> LifecycleAction:
    return LifecycleAction(group=group, instance_id=instance, transition=transition, token=token)


# The program as a console script, for tests that run it as a user does.
HELPER_BIN = Path(sys.executable).parent / "aws-deploy-helper"

# The smallest config with a lifecycle: section, for tests of its sub-sections (breaker, alerts, hold).
MINIMAL_LIFECYCLE_YAML = """\
sites:
  web: {asg: web-asg}
lifecycle:
  queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/hooks
  jenkins: {url: 'http://jenkins:8080/', job: deploy}
  groups: {web-asg: web}
"""


def counted(consumer, name: str, **labels: str) -> float:
    """A counter of the consumer's, read as a scrape reads it: `adh_<name>_total` (0 until counted)."""
    return sample(consumer, f"adh_{name}_total", **labels)


def sample(consumer, metric: str, **labels: str) -> float:
    """Any sample of the consumer's registry by its full name (0 until it exists)."""
    return consumer.metrics.registry.get_sample_value(metric, labels) or 0.0
