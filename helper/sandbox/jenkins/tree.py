"""Jenkins' `tree=` and `depth=` selectors for the emulator's JSON answers.

Grammar, as Jenkins' remote API documents it: `a,b[c,d[e]]{m,n}` selects fields `a` and `b`; inside `b`
only `c` and `d` (and inside `d` only `e`); `{m,n}` slices the list `b` from m (inclusive) to n
(exclusive), `{m,}` from m, `{,n}` up to n, `{n}` only the n-th element. Objects keep their `_class`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    children: tuple[Field, ...] | None
    window: slice | None


def parse_tree(text: str) -> tuple[Field, ...]:
    fields, end = _parse_list(text, 0)
    if end != len(text):
        raise ValueError(f"unexpected {text[end]!r} at {end} in tree={text}")
    return fields


def _parse_list(text: str, pos: int) -> tuple[tuple[Field, ...], int]:
    fields = []
    while True:
        start = pos
        while pos < len(text) and text[pos] not in ",[]{}":
            pos += 1
        name = text[start:pos].strip()
        children = None
        window = None
        if pos < len(text) and text[pos] == "[":
            children, pos = _parse_list(text, pos + 1)
            if pos >= len(text) or text[pos] != "]":
                raise ValueError(f"unclosed [ in tree={text}")
            pos += 1
        if pos < len(text) and text[pos] == "{":
            close = text.index("}", pos)
            window = _parse_window(text[pos + 1 : close])
            pos = close + 1
        if name:
            fields.append(Field(name, children, window))
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        return tuple(fields), pos


def _parse_window(text: str) -> slice:
    if "," not in text:
        index = int(text)
        return slice(index, index + 1)
    low, high = text.split(",", 1)
    return slice(int(low) if low.strip() else 0, int(high) if high.strip() else None)


def apply_tree(value, fields: tuple[Field, ...]):
    """Keep only the selected fields of `value` (a JSON-shaped dict or list of dicts)."""
    if isinstance(value, list):
        return [apply_tree(item, fields) for item in value]
    if not isinstance(value, dict):
        return value
    out = {"_class": value["_class"]} if "_class" in value else {}
    for field in fields:
        if field.name not in value:
            continue
        selected = value[field.name]
        if field.window is not None and isinstance(selected, list):
            selected = selected[field.window]
        out[field.name] = apply_tree(selected, field.children) if field.children else _bare(selected)
    return out


def _bare(value):
    # A field named without [..] shows nested objects as their class only, as Jenkins does.
    if isinstance(value, list):
        return [_bare(item) for item in value]
    if isinstance(value, dict):
        return {"_class": value["_class"]} if "_class" in value else {}
    return value
