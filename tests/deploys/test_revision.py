"""Issue 9 items 19 and 17 (the revision file): revisions are checked by the helper, and a bad
revision file is one line, never a traceback or a hang."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from helper.deploys import revision
from helper.errors import ConfigError
from tests.units import HELPER_BIN

# The helper answers in well under a second; this only turns a hang (a FIFO) into a failure.
CLI_TIMEOUT_S = 30


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HELPER_BIN), *argv], capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


GOOD = ["v1.4.2", "0123456789abcdef0123456789abcdef01234567", "release/2024-05", "a" * 200, "feature/x+y_1"]
BAD = {
    "too-long": "a" * 201,
    "parent-segment": "../../etc/passwd",
    "inner-parent-segment": "release/../../x",
    "trailing-parent-segment": "release/..",
    "git-range": "v1..v2",
    "option-like": "-rf",
    "empty": "",
    "shell": "main;touch x",
    "newline": "v1\n",
    "space": "v1 v2",
}


@pytest.mark.parametrize("good", GOOD)
def test_revision_check_prints_a_good_revision(good):
    result = run_cli("revision", "check", "--revision", good)
    assert (result.returncode, result.stdout, result.stderr) == (0, good + "\n", "")


@pytest.mark.parametrize("name", sorted(BAD))
def test_revision_check_refuses_a_bad_revision_in_one_line(name):
    result = run_cli("revision", "check", f"--revision={BAD[name]}")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("aws-deploy-helper: revision ")


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_revision_is_never_recorded(tmp_path, name):
    with pytest.raises(ConfigError):
        revision.record(str(tmp_path), "web", BAD[name])
    assert list(tmp_path.iterdir()) == []


def config_with_revisions(tmp_path: Path) -> tuple[Path, Path]:
    revisions = tmp_path / "revisions"
    revisions.mkdir()
    config = tmp_path / "deploy.yml"
    config.write_text(yaml.safe_dump({"path": {"revision_dir": str(revisions)}, "sites": {"web": {"elb": "web"}}}))
    return config, revisions / "web.revision"


@pytest.mark.parametrize("content, problem", [
    (b"v1\xff\n", "is not UTF-8 text"),
    (b"../../etc\n", "revision '../../etc'"),
    (b"v" * 5000, "bytes, more than"),
])
def test_a_bad_revision_file_is_one_line_naming_it(tmp_path, content, problem):
    config, record = config_with_revisions(tmp_path)
    record.write_bytes(content)
    result = run_cli("revision", "get", "-c", str(config), "--site", "web")
    assert result.returncode in (1, 2) and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert str(record) in result.stderr and problem in result.stderr


def test_a_fifo_as_the_revision_file_is_one_line_not_a_hang(tmp_path):
    config, record = config_with_revisions(tmp_path)
    os.mkfifo(record)
    try:
        result = run_cli("revision", "get", "-c", str(config), "--site", "web")
    except subprocess.TimeoutExpired:
        pytest.fail("revision get waited on a FIFO")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"aws-deploy-helper: {record}: is a FIFO, not a regular file"]


def test_a_recorded_revision_reads_back(tmp_path):
    config, record = config_with_revisions(tmp_path)
    assert run_cli("revision", "set", "-c", str(config), "--site", "web", "--revision", "v2").returncode == 0
    assert record.read_text() == "v2\n"
    assert run_cli("revision", "get", "-c", str(config), "--site", "web").stdout == "v2\n"


# --- history and rollbacks (issue 21) -----------------------------------------------------------

def test_history_keeps_the_last_revisions_and_a_rollback_never_returns_to_the_one_it_left(tmp_path):
    from datetime import datetime, timezone

    from helper.errors import HelperError

    now = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
    for rev in ("v1", "v2", "v3"):
        revision.record_with_history(str(tmp_path), "web", rev, now)
    entries = revision.history(str(tmp_path), "web")
    assert [e.revision for e in entries] == ["v1", "v2", "v3"] and revision.read(str(tmp_path), "web") == "v3"
    assert revision.rollback_target(entries, "v3", None) == "v2"
    revision.record_with_history(str(tmp_path), "web", "v2", now, rollback_from="v3")
    entries = revision.history(str(tmp_path), "web")
    assert revision.rollback_target(entries, "v2", None) == "v1"  # v3 was rolled back from: never again
    assert revision.rollback_target(entries, "v2", "v3") == "v3"  # unless a person names it
    with pytest.raises(ConfigError, match="not in the site's history"):
        revision.rollback_target(entries, "v2", "v9")
    with pytest.raises(HelperError, match="no earlier good revision"):
        revision.rollback_target(entries[:1], "v1", None)
    for n in range(revision.HISTORY_MAX + 5):
        revision.record_with_history(str(tmp_path), "web", f"r{n}", now)
    assert len(revision.history(str(tmp_path), "web")) == revision.HISTORY_MAX


@pytest.mark.parametrize("line", ["v1", "2026-12-05T12:00:00Z v1 extra", "2026-12-05T12:00:00Z ../etc",
                                  "yesterday v1", "2026-12-05T12:00:00Z v1 rollback-from=a;b"])
def test_a_history_line_that_is_not_one_names_the_file_and_line(tmp_path, line):
    from helper.errors import HelperError

    (tmp_path / "web.history").write_text(f"2026-12-05T11:00:00Z v0\n{line}\n")
    with pytest.raises(HelperError, match=r"web\.history:2: not '<time> <revision>"):
        revision.history(str(tmp_path), "web")
