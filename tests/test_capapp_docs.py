"""docs/capistrano.md shows the app tests/test_real_ssh.py deploys with: the same code, line for line
(comments aside), so the pattern users copy is the tested one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "capistrano.md"
CAPAPP = ROOT / "tests" / "capapp"
TRAILING_COMMENT = re.compile(r"\s+# .*$")


def code(ruby: str) -> list[str]:
    lines = (TRAILING_COMMENT.sub("", line).rstrip() for line in ruby.splitlines())
    return [line for line in lines if line and not line.lstrip().startswith("#")]


def doc_block(heading: str) -> str:
    section = DOC.read_text().split(f"## {heading}\n", 1)[1]
    return section.split("```ruby\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("path", ["Capfile", "config/deploy.rb"])
def test_the_documented_file_is_the_tested_one(path):
    assert code(doc_block(path)) == code((CAPAPP / path).read_text())


def test_nothing_in_the_app_switches_host_key_checking_off():
    ruby = "\n".join("\n".join(code(p.read_text())) for p in CAPAPP.rglob("*") if p.is_file())
    assert "StrictHostKeyChecking" not in ruby and "verify_host_key" not in ruby
