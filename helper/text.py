"""One printable line out of any text from outside: the one cleaning rule for what we store or
send (a breaker reason in a tag, an alert's values, a fleet hold's holder).

Every character that is not printable (line breaks, control and bidi characters, lone
surrogates) becomes a space, so a value can neither break a line nor hide what follows it.
Log lines quote their values instead (helper/logfmt.py).
"""

from __future__ import annotations


def one_line(text: str, limit: int | None = None) -> str:
    """Printable, one line, cut to `limit` characters when one is given."""
    cleaned = "".join(c if c.isprintable() else " " for c in str(text))
    return cleaned if limit is None else cleaned[:limit]
