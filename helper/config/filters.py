"""A site's `filters:`: which of a source's instances a whole-site run keeps (zones, wanted and
excluded tags, excluded instance ids), applied after discovery (helper/inventory/selection.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from helper.aws.names import is_instance_id
from helper.config import fields
from helper.config.yamlfile import Located

FILTER_KEYS = {"availability_zones", "tags", "exclude_tags", "exclude_instance_ids"}


@dataclass(frozen=True)
class SiteFilters:
    """Which of a source's instances a whole-site run keeps; applied after discovery.

    Tags map a key to the values that match (any of them). Empty means "no condition".
    """

    availability_zones: frozenset[str] = frozenset()
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude_tags: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude_instance_ids: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.availability_zones or self.tags or self.exclude_tags or self.exclude_instance_ids)


def tag_values(doc: Located, raw: Any, keys: tuple) -> tuple[str, ...]:
    """A tag's wanted values as the user wrote them: `Enabled: true` wants "true"."""
    items = list(enumerate(raw)) if isinstance(raw, list) else [(None, raw)]
    values = tuple(fields.as_written(doc, value, keys if i is None else keys + (i,)) for i, value in items)
    if not values or not all(isinstance(v, str) for v in values):
        raise fields.fail(doc, keys, "tag value must be text or a list of texts (null and mappings are neither)")
    return values


def _tag_map(doc: Located, raw: Any, keys: tuple) -> tuple[tuple[str, tuple[str, ...]], ...]:
    tags = fields.mapping(doc, raw, keys)
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise fields.fail(doc, keys + (tag,), "a tag key must be text")
    return tuple(sorted((tag, tag_values(doc, values, keys + (tag,))) for tag, values in tags.items()))


def _text_list(doc: Located, raw: Any, keys: tuple) -> frozenset[str]:
    if raw is None:
        return frozenset()
    items = raw if isinstance(raw, list) else [raw]
    return frozenset(fields.string(doc, item, keys + ((i,) if isinstance(raw, list) else ()))
                     for i, item in enumerate(items))


def parse_filters(doc: Located, raw: Any, keys: tuple) -> SiteFilters:
    spec = fields.mapping(doc, raw, keys, FILTER_KEYS)
    excluded = _text_list(doc, spec.get("exclude_instance_ids"), keys + ("exclude_instance_ids",))
    for instance_id in excluded:
        if not is_instance_id(instance_id):
            raise fields.fail(doc, keys + ("exclude_instance_ids",), f"{instance_id!r} is not an instance id")
    return SiteFilters(
        availability_zones=_text_list(doc, spec.get("availability_zones"), keys + ("availability_zones",)),
        tags=_tag_map(doc, spec.get("tags"), keys + ("tags",)),
        exclude_tags=_tag_map(doc, spec.get("exclude_tags"), keys + ("exclude_tags",)),
        exclude_instance_ids=excluded,
    )
