"""What happens to a message we hold (helper/consumer/messages.py), against a queue that can be told to fail."""

from __future__ import annotations

from helper.consumer.action import LAUNCHING, LifecycleAction
from helper.consumer.inflight import Tracked
from helper.consumer.messages import VISIBILITY_RENEW_FRACTION, Messages
from helper.consumer.metrics import Metrics
from helper.consumer.sqs import Message, QueueError

ACTION = LifecycleAction("web-asg", "i-0123456789abcdef0", LAUNCHING, token="tok-a")


def message(n: int) -> Message:
    return Message(message_id=f"m{n}", receipt_handle=f"r{n}", body="{}", receive_count=1, sent_at_ms=0)


class FakeQueue:
    """The four calls Messages makes; `failing` names the ones that raise."""

    def __init__(self, *failing: str, dead_letter_queue: bool = True) -> None:
        self.failing, self.dlq, self.calls = set(failing), dead_letter_queue, []

    def _call(self, name: str, *args):
        self.calls.append((name, *args))
        if name in self.failing:
            raise QueueError(f"{name} failed")

    def delete(self, m: Message) -> None:
        self._call("delete", m.message_id)

    def set_visibility(self, m: Message, seconds: int) -> None:
        self._call("set_visibility", m.message_id, seconds)

    def dead_letter(self, m: Message) -> bool:
        self._call("dead_letter", m.message_id)
        return self.dlq


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"adh_{name}_total", labels) or 0.0


def test_a_served_claims_messages_are_deleted_and_a_failed_delete_is_kept_for_the_next_try():
    queue, metrics = FakeQueue(), Metrics()
    tracked = Tracked(ACTION, received_at=0.0, messages=[message(1), message(2)])
    Messages(queue, metrics).delete_served(tracked)
    assert tracked.messages == [] and sample(metrics, "messages_deleted") == 2
    failing = Tracked(ACTION, received_at=0.0, messages=[message(3)])
    Messages(FakeQueue("delete"), metrics).delete_served(failing)
    assert [m.message_id for m in failing.messages] == ["m3"]
    assert sample(metrics, "aws_errors", operation="DeleteMessage") == 1


def test_a_failed_release_does_not_stop_the_others():
    queue = FakeQueue("set_visibility")
    Messages(queue, Metrics()).release([message(1), message(2)])
    assert queue.calls == [("set_visibility", "m1", 0), ("set_visibility", "m2", 0)]


def test_a_rejected_message_is_counted_once_however_often_it_comes_back():
    queue, metrics = FakeQueue(dead_letter_queue=False), Metrics()
    messages = Messages(queue, metrics)
    for _ in range(3):  # no dead-letter queue: left for redrive, so redelivered
        messages.reject(message(1), ACTION, "not_waiting")
    assert [c[0] for c in queue.calls] == ["dead_letter"] * 3
    assert sample(metrics, "messages_rejected", reason="not_waiting") == 1


def test_invisibility_is_renewed_once_the_renew_fraction_of_it_has_passed():
    timeout_s = 30
    queue = FakeQueue()
    messages = Messages(queue, Metrics())
    tracked = Tracked(ACTION, received_at=100.0, messages=[message(1)])
    renew_at = 100.0 + timeout_s * VISIBILITY_RENEW_FRACTION
    messages.keep_invisible(tracked, renew_at - 0.01, timeout_s)
    assert queue.calls == []
    messages.keep_invisible(tracked, renew_at, timeout_s)
    messages.keep_invisible(tracked, renew_at + 1, timeout_s)  # renewed: not due again yet
    assert queue.calls == [("set_visibility", "m1", timeout_s)]
