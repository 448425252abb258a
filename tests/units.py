"""What several unit-test modules share: one lifecycle action to build their tables from."""

from __future__ import annotations

from helper.lifecycle.action import LAUNCHING, LifecycleAction

GROUP, INSTANCE = "web-asg", "i-0123456789abcdef0"


def action(token: str | None = "tok-a", group: str = GROUP, instance: str = INSTANCE,
           transition: str = LAUNCHING) -> LifecycleAction:
    return LifecycleAction(group=group, instance_id=instance, transition=transition, token=token)
