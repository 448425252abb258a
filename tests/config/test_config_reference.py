"""The README's config reference names every key the config parser accepts (issue 13)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helper.config import document, lifecycle, rollout, safety

README = Path(__file__).resolve().parents[2] / "README.md"

KEY_SETS = {
    "top": document.TOP_KEYS,
    "aws": document.AWS_KEYS,
    "path": document.PATH_KEYS,
    "site": document.SITE_OPTION_KEYS | set(document.SOURCE_KEYS),
    "filters": document.FILTER_KEYS,
    "lifecycle": lifecycle.SECTION_KEYS,
    "lifecycle.jenkins": lifecycle.JENKINS_KEYS,
    "lifecycle.groups": lifecycle.GROUP_KEYS,
    "lifecycle.breaker": safety.BREAKER_KEYS,
    "lifecycle.alerts": safety.ALERT_KEYS,
    "lifecycle.hold": safety.HOLD_KEYS,
    "rollout": rollout.ROLLOUT_KEYS,
}


def _reference() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Config reference")
    return text[start:text.index("\n## ", start + 1)]


@pytest.mark.parametrize("section", sorted(KEY_SETS))
def test_the_readme_config_reference_names_every_key(section):
    named = set(re.findall(r"`([a-z_0-9]+):?`", _reference()))
    missing = sorted(set(KEY_SETS[section]) - named)
    assert not missing, f"README.md's config reference lacks {section} keys: {missing}"
