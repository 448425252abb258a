"""What several unit-test modules share: one lifecycle action to build their tables from."""

from __future__ import annotations

from helper.consumer.action import LAUNCHING, LifecycleAction

GROUP, INSTANCE = "web-asg", "i-0123456789abcdef0"


def action(token: str | None = "tok-a", group: str = GROUP, instance: str = INSTANCE,
           transition: str = LAUNCHING) -> LifecycleAction:
    return LifecycleAction(group=group, instance_id=instance, transition=transition, token=token)


# The smallest config with a lifecycle: section, for tests of its sub-sections (breaker, alerts, hold).
MINIMAL_LIFECYCLE_YAML = """\
sites:
  web: {asg: web-asg}
lifecycle:
  queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/hooks
  jenkins: {url: 'http://jenkins:8080/', job: deploy}
  groups: {web-asg: web}
"""
