"""moto's EC2 tag store under concurrent reads and writes (CI met a 500 from it in a rollout)."""

from __future__ import annotations

import threading
import time

from moto.ec2.models.tags import TagBackend

from helper.sandbox.aws import tag_lock

RACE_S = 2.0
KEYS = 40


def _race(store: TagBackend) -> list[BaseException]:
    """A writer adds and removes tags of one instance while a reader describes them."""
    deadline = time.monotonic() + RACE_S
    errors: list[BaseException] = []

    def writer() -> None:
        n = 0
        while time.monotonic() < deadline and not errors:
            store.create_tags(["i-0123456789abcdef0"], {f"k{n % KEYS}": "v"})
            n += 1
            if n % KEYS == 0:
                store.delete_tag_keys(["i-0123456789abcdef0"], [f"k{k}" for k in range(KEYS)])

    def reader() -> None:
        while time.monotonic() < deadline and not errors:
            try:
                store.describe_tags(filters={"resource-id": ["i-0123456789abcdef0"]})
            except RuntimeError as error:
                errors.append(error)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_a_describe_never_meets_a_create_half_done():
    tag_lock.install()
    assert _race(TagBackend()) == []


def test_install_is_idempotent_and_keeps_the_answers():
    tag_lock.install()
    tag_lock.install()
    store = TagBackend()
    store.create_tags(["i-0123456789abcdef0"], {"Name": "web-1"})
    assert store.describe_tags(filters={"key": ["Name"]}) == [
        {"resource_id": "i-0123456789abcdef0", "key": "Name", "value": "web-1", "resource_type": "instance"}]
    # Wrapped once: a second install did not wrap the wrapper.
    assert not hasattr(TagBackend.describe_tags.__wrapped__, "__wrapped__")
