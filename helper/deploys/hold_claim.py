"""Two `fleet hold`s at once: exactly one wins (issue 19 item 7).

Auto Scaling tags have no compare-and-set: two holders that both read "not held" and then both
write the hold tag both believed they held (20 of 20 trials). So a holder first stakes a claim
in a tag of its own (one key per holder, so claims never overwrite each other), then reads every
claim back:

- it sees another holder's claim: it withdraws its own and is refused (both may be refused when
  they race exactly; a person or a retry then goes again, and nothing was suspended);
- it sees only its own: any rival wrote its claim after this read, so that rival's read will
  see ours and withdraw; the winner then re-reads the hold tag (a rival that finished and removed
  its claim before our read has written the hold tag first), writes it, and removes its claim.

Read-after-write on one group's tags is all this needs; a stale read can only make a holder
withdraw, never let two through.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from helper import PROG

CLAIM_PREFIX = f"{PROG}:hold-claim:"
# Enough of a digest that two holders never share a key; the key (128 characters at most in
# AWS) stays short.
CLAIM_DIGEST_CHARS = 16


def claim_key(holder: str) -> str:
    """The holder's own claim tag key: a digest, since a holder (a URL) may not fit a key."""
    return CLAIM_PREFIX + hashlib.sha256(holder.encode("utf-8", "surrogatepass")).hexdigest()[:CLAIM_DIGEST_CHARS]


# A claim lives for the few calls between its write and its removal; one older than this is a
# holder killed in between, and must not refuse every later hold. One stamped further ahead
# than the clock skew we allow is not one we wrote.
CLAIM_TTL_S = 300
CLOCK_SKEW_S = 300
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def claim_value(holder_text: str, now: datetime) -> str:
    return f"{now.astimezone(timezone.utc).strftime(TIME_FORMAT)} {holder_text}"


def _live(value: str, now: datetime) -> bool:
    stamp, _, _ = value.partition(" ")
    try:
        at = datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return False  # not ours: the hold tag's own check still refuses a real holder
    return now - timedelta(seconds=CLAIM_TTL_S) <= at <= now + timedelta(seconds=CLOCK_SKEW_S)


def rivals(claims: dict[str, str], holder: str, now: datetime) -> list[str]:
    """The other holders with a live claim (claim key -> value), ours left out."""
    mine = claim_key(holder)
    return sorted(value.partition(" ")[2] or key for key, value in claims.items()
                  if key != mine and _live(value, now))
