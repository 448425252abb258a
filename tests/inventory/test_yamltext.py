"""helper/inventory/render/yamltext.py: every value reads back as the same value.

PyYAML's reader here; Ansible's and Ruby's read the written inventories in tests/test_readers.py,
tests/inventory/test_host_choice.py and tests/inventory/test_transport.py.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from helper.inventory.render.yamltext import dump, scalar
from tests.test_readers import need

TRICKY = [
    "", " ", "  lead", "trail  ", "web-i-0123456789abcdef0", "10.0.0.1", "2001:db8::1", "0123", "0x1F", "1e3",
    "1_000", "12:30:45", "2024-01-01", "2001-12-14t21:59:43.10-05:00", ".inf", "-.inf", ".nan", "~", "null",
    "Null", "NULL", "yes", "Yes", "NO", "on", "Off", "y", "n", "true", "False", "<<", "=", "-", "--- x", "...",
    "- item", "? key", "key: value", "a: b", "a #b", "#comment", "&anchor", "*alias", "!tag", "!!python/object",
    "%YAML", "@at", "`tick", "|", ">", "[a]", "{a: b}", "{{ lookup('pipe','id') }}", "{% raw %}", "it's", 'say "hi"',
    "back\\slash", "tab\there", "line\nbreak", "cr\rlf", "nul\0byte", "bell\x07", "del\x7f", "nel\x85x",
    "ls\u2028x", "ps\u2029x", "bom\ufeffx", "café", "日本語", "emoji 😀", "\ud7ff\ue000\ufffd", "/srv/deploy keys/id",
    "/plain/path_1.2-x", "_under", "Web", "a.b", "i-0abc", "-o ProxyCommand=x",
]


@pytest.mark.parametrize("text", TRICKY, ids=[repr(t)[:30] for t in TRICKY])
def test_a_string_reads_back_as_the_same_string(text):
    written = dump({"key": text, text: ["item", text]})
    assert yaml.safe_load(written) == {"key": text, text: ["item", text]}, written


@pytest.mark.parametrize("value, expected", [
    ("web-i-0123", "web-i-0123"), ("/srv/app", "/srv/app"), ("yes", "'yes'"), ("0123", "'0123'"),
    ("it's", "'it''s'"), ("a\nb", '"a\\nb"'), ("\u2028", '"\\u2028"'), (None, "null"), (22, "22"), (True, "true"),
])
def test_scalars_are_plain_only_when_nothing_else_can_be_read(value, expected):
    assert scalar(value) == expected


def test_documents_match_what_pyyaml_reads_from_its_own_dump():
    document = {"sites": {"web": ["web-i-1", "web-i-2"], "empty": [], "yes": ["0123"]},
                "all": {"children": {"web": {"hosts": {"web-i-1": {"ansible_port": 22, "n": None, "t": {}}}}}}}
    assert yaml.safe_load(dump(document)) == yaml.safe_load(yaml.safe_dump(document)) == document


def test_lists_sit_at_their_keys_indent_like_pyyamls():
    assert dump({"sites": {"web": ["a-1", "b-2"], "db": []}}) == "sites:\n  db: []\n  web:\n  - a-1\n  - b-2\n"


class Tagged(str):
    pass


class TaggedMap(dict):
    pass


def test_tagged_values_are_always_quoted_and_tagged_mappings_carry_the_tag():
    text = dump({"v": Tagged("plain"), "m": TaggedMap({"k": "yes"}), "e": TaggedMap()},
                tags={Tagged: "!unsafe", TaggedMap: "!unsafe"})
    assert text == "e: !unsafe {}\nm: !unsafe\n  k: 'yes'\nv: !unsafe 'plain'\n"


def test_ruby_reads_every_string_back_the_same():
    """Capistrano reads the servers file with Ruby's Psych (YAML 1.1, like PyYAML)."""
    ruby = need("ruby")
    document = {f"k{i}": text for i, text in enumerate(TRICKY)}
    program = "require 'yaml'; require 'json'; print JSON.generate(YAML.safe_load(STDIN.read))"
    result = subprocess.run([ruby, "-e", program], input=dump(document), capture_output=True, text=True,
                            encoding="utf-8", check=True)
    assert json.loads(result.stdout) == document
