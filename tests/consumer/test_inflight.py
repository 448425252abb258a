"""helper.consumer.inflight: what is in flight, what is done, and the claims a tracked action holds
(another token for an action in flight waits for AWS's word). No servers."""

from __future__ import annotations

import pytest

from helper.consumer.action import TERMINATING
from helper.consumer.inflight import RECENTLY_DONE_MAX, InFlight
from helper.consumer.sqs import Message
from tests.units import action


def message(n: int) -> Message:
    return Message(message_id=f"m{n}", receipt_handle=f"r{n}", body="{}", receive_count=1, sent_at_ms=0)


# --- InFlight ---------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_first_admit_is_new_and_a_second_copy_is_a_duplicate_that_keeps_its_message():
    inflight = InFlight(FakeClock())
    status, tracked = inflight.admit(action(), message(1))
    assert status == "new" and tracked.received_at == 100.0
    again, same = inflight.admit(action(), message(2))
    assert again == "duplicate" and same is tracked
    assert [m.message_id for m in tracked.take_messages()] == ["m1", "m2"]
    assert inflight.covers(action()) and len(inflight) == 1


def test_the_same_instance_terminating_is_another_action():
    inflight = InFlight(FakeClock())
    inflight.admit(action(), message(1))
    assert inflight.admit(action("tok-t", transition=TERMINATING), message(2))[0] == "new"
    assert len(inflight) == 2


def test_reconciled_action_learns_its_token_from_the_later_notification():
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action(None), None)
    assert tracked.messages == []
    status, same = inflight.admit(action("tok-a"), message(1))
    assert status == "duplicate" and same is tracked
    assert tracked.action.token == "tok-a" and [m.message_id for m in tracked.messages] == ["m1"]
    # ... and a later reconciliation pass does not forget it again.
    inflight.admit(action(None), None)
    assert tracked.action.token == "tok-a"


@pytest.mark.parametrize("finished_token, later, expected", [
    pytest.param("tok-a", action("tok-a"), "done", id="redelivered copy"),
    pytest.param("tok-a", action(None), "done", id="reconciliation after completion"),
    pytest.param("tok-a", action("tok-b"), "new", id="another action of the same instance"),
    pytest.param(None, action("tok-a"), "done", id="completed by instance id, copy arrives"),
])
def test_after_completion(finished_token, later, expected):
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action(finished_token), message(1))
    inflight.finish(tracked, completed=True)
    status, again = inflight.admit(later, message(2))
    assert status == expected
    assert (again is None) == (expected == "done")


def test_done_only_after_completion():
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action(), message(1))
    inflight.finish(tracked, completed=False)  # released, or completion failed: the next copy must deploy
    assert not inflight.covers(action()) and len(inflight) == 0
    assert inflight.admit(action(), message(2))[0] == "new"


def test_finishing_a_stale_entry_leaves_the_current_one():
    inflight = InFlight(FakeClock())
    _, old = inflight.admit(action(), message(1))
    inflight.finish(old, completed=False)
    _, current = inflight.admit(action(), message(2))
    inflight.finish(old, completed=False)
    assert inflight.covers(action())
    inflight.finish(current, completed=False)
    assert len(inflight) == 0


def test_memory_of_finished_actions_is_bounded_oldest_first():
    inflight = InFlight(FakeClock())
    ids = [f"i-{n:017x}" for n in range(RECENTLY_DONE_MAX + 1)]
    for instance in ids:
        _, tracked = inflight.admit(action(f"t{instance}", instance=instance), None)
        inflight.finish(tracked, completed=True)
    assert len(inflight) == 0
    assert inflight.admit(action(f"t{ids[0]}", instance=ids[0]), None)[0] == "new"  # forgotten
    assert inflight.admit(action(f"t{ids[-1]}", instance=ids[-1]), None)[0] == "done"


# --- claims: another token for an action in flight waits for AWS's word ------------------------------

def test_a_copy_with_another_token_is_a_claim_of_its_own_not_a_takeover():
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action("tok-a"), message(1))
    status, same = inflight.admit(action("tok-forged"), message(2))
    assert status == "duplicate" and same is tracked
    assert tracked.action.token == "tok-a" and [m.message_id for m in tracked.messages] == ["m1"]
    (other,) = tracked.unjudged()
    assert other.action.token == "tok-forged"
    assert {m.message_id for m in tracked.take_messages()} == {"m1", "m2"}  # both kept invisible


def test_a_refused_claim_hands_the_action_to_the_next_and_a_confirmed_one_outranks_an_unchecked_one():
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action("tok-forged"), message(1))
    inflight.admit(action("tok-a"), message(2))
    forged, genuine = tracked.claims
    assert tracked.served() is forged  # first come, while neither is checked
    genuine.confirmed = True
    assert tracked.served() is genuine
    tracked.reject(forged)
    assert forged.messages == [] and not tracked.rejected
    tracked.reject(genuine)
    assert tracked.rejected


def test_a_confirmed_reconciled_action_stays_served_until_a_token_is_confirmed():
    inflight = InFlight(FakeClock())
    _, tracked = inflight.admit(action(None), None)
    tracked.served().confirmed = True  # AWS answered a heartbeat by instance id
    inflight.admit(action("tok-a"), message(1))
    assert tracked.action.token is None and [c.action.token for c in tracked.unjudged()] == ["tok-a"]
    tracked.claims[1].confirmed = True
    assert tracked.action.token == "tok-a" and [m.message_id for m in tracked.messages] == ["m1"]


def test_a_reconciled_warm_pool_entry_does_not_swallow_the_launch_out_of_the_pool():
    """Issue 19 item 11: the instance's later launch out of the pool (a new token) was dropped as done."""
    from dataclasses import replace

    inflight = InFlight(FakeClock())
    entry = replace(action(None), destination="WarmPool")  # reconciled at Warmed:Pending:Wait, no token
    _, tracked = inflight.admit(entry, None)
    inflight.finish(tracked, completed=True)
    assert inflight.admit(replace(action("tok-entry"), destination="WarmPool"), message(1))[0] == "done", \
        "a late copy of the entry's own notification is still done"
    out = replace(action("tok-out"), origin="WarmPool", destination="AutoScalingGroup")
    status, tracked = inflight.admit(out, message(2))
    assert status == "new" and tracked.action.token == "tok-out"
    assert inflight.covers(out) and not inflight.covers(entry)


# --- Tracked's state changes take its lock (issue 20) -------------------------------------------------


def test_state_changes_from_many_threads_lose_no_update(monkeypatch):
    """Deployment threads heartbeat while the receive loop attaches claims: every change goes
    through a locked method. Each failed heartbeat gets its own attempt number (the back-off and
    the log line use it): the back-off here yields the GIL between the count and its read, which
    gave two threads the same number when the claims code did `+= 1` on the schedule unlocked."""
    import sys
    import threading
    import time

    from helper.consumer.inflight import Tracked

    monkeypatch.setattr(sys, "getswitchinterval", sys.getswitchinterval)  # restored below
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        tracked = Tracked(action(), 0.0)
        threads_n, rounds = 8, 2_000
        start = threading.Barrier(threads_n + 1)

        numbers: list[int] = []

        def fail_heartbeats():
            start.wait()
            mine = [tracked.heartbeat_failed(0.0, lambda attempts: (time.sleep(0), 1.0)[1]) for _ in range(rounds)]
            numbers.extend(mine)

        def attach_claims(n):
            start.wait()
            for i in range(rounds // 10):
                tracked.claim(action(token=f"t-{n}-{i}"), message(i))

        workers = [threading.Thread(target=fail_heartbeats) for _ in range(threads_n - 2)]
        workers += [threading.Thread(target=attach_claims, args=(n,)) for n in range(2)]
        for w in workers:
            w.start()
        start.wait()
        for w in workers:
            w.join(timeout=60)
    finally:
        sys.setswitchinterval(before)
    assert tracked.schedule.heartbeat_failures == (threads_n - 2) * rounds
    assert sorted(numbers) == list(range(1, (threads_n - 2) * rounds + 1))
    assert len(tracked.claims) == 1 + 2 * (rounds // 10)
    assert tracked.schedule.heartbeat_at == 1.0


def test_reject_confirms_nothing_and_brings_the_next_heartbeat_forward():
    from helper.consumer.inflight import Tracked

    tracked = Tracked(action(token="a"), 0.0)
    tracked.claim(action(token="b"), message(2))
    first, second = tracked.claims
    tracked.heartbeat_ok(50.0)
    tracked.reject(first)
    assert (first.rejected, tracked.served() is second, tracked.schedule.heartbeat_at) == (True, True, None)
    tracked.confirm(second)
    tracked.mark_gone()
    assert second.confirmed and tracked.gone and not tracked.rejected
