"""Writing files: atomic, change-only, mode kept; the managed block; known_hosts pruning."""

from __future__ import annotations

import os

import pytest

from helper.errors import OutputError
from helper.write import (
    BEGIN,
    END,
    merge_managed_block,
    prune_known_hosts,
    unified_diff,
    write_atomic,
)

# An mtime far in the past, so "unchanged" cannot pass by the clock's resolution.
OLD_MTIME_NS = 1_000_000_000 * 10**9


def _age(path) -> int:
    os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    return os.stat(path).st_mtime_ns


# --- write_atomic ------------------------------------------------------------------


def test_new_file_is_written_with_default_mode_and_missing_parents(tmp_path):
    path = tmp_path / "out" / "deep" / "ssh_config"
    assert write_atomic(path, "Host a\n") is True
    assert path.read_bytes() == b"Host a\n"
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_unchanged_content_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "inventory.yml"
    write_atomic(path, "all: {}\n")
    mtime_ns = _age(path)
    inode = os.stat(path).st_ino
    assert write_atomic(path, "all: {}\n") is False
    assert os.stat(path).st_mtime_ns == mtime_ns
    assert os.stat(path).st_ino == inode


def test_changed_content_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "inventory.yml"
    write_atomic(path, "old\n")
    old_inode = os.stat(path).st_ino
    old_mtime_ns = _age(path)
    assert write_atomic(path, "new\n") is True
    assert path.read_text() == "new\n"
    # A new inode: the file was renamed over, not rewritten in place.
    assert os.stat(path).st_ino != old_inode
    assert os.stat(path).st_mtime_ns != old_mtime_ns
    assert os.listdir(tmp_path) == ["inventory.yml"]


def test_text_is_written_byte_for_byte(tmp_path):
    path = tmp_path / "f"
    write_atomic(path, "a\r\nb ünï\n\nc")
    assert path.read_bytes() == "a\r\nb ünï\n\nc".encode()


@pytest.mark.parametrize("first_mode", [None, 0o644])
def test_mode_0600_is_honoured_on_create_rewrite_and_unchanged(tmp_path, first_mode):
    path = tmp_path / "known_hosts"
    if first_mode is not None:
        path.write_text("old\n")
        os.chmod(path, first_mode)
    old_umask = os.umask(0)
    try:
        write_atomic(path, "x\n", mode=0o600)
        assert os.stat(path).st_mode & 0o777 == 0o600
        os.chmod(path, 0o644)
        assert write_atomic(path, "x\n", mode=0o600) is False
        assert os.stat(path).st_mode & 0o777 == 0o600
    finally:
        os.umask(old_umask)


def test_symlinked_target_is_written_through_and_stays_a_link(tmp_path):
    real = tmp_path / "dotfiles" / "config"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "config"
    link.symlink_to(real)
    assert write_atomic(link, "new\n") is True
    assert link.is_symlink()
    assert real.read_text() == "new\n"


def test_failed_replace_keeps_the_old_file_and_removes_the_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "ssh_config"
    path.write_text("old\n")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match=f"cannot write {path}: No space left on device"):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["ssh_config"]


def test_unwritable_location_is_an_output_error_naming_the_path(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(OutputError, match=f"cannot write {blocker}/ssh_config"):
        write_atomic(blocker / "ssh_config", "x\n")


# --- merge_managed_block -----------------------------------------------------------


def block(body: str, ending: str = "\n") -> str:
    return f"{BEGIN}\n{body}Host *\n{END}{ending}"


def test_block_goes_to_the_top_of_a_new_file():
    assert merge_managed_block(None, "Host a\n") == block("Host a\n")
    assert merge_managed_block("", "Host a") == block("Host a\n")


@pytest.mark.parametrize(
    "existing",
    [
        "ServerAliveInterval 30\nHost x\n  User y\n",
        "User me\r\nHost x\r\n",
        "Host x",
    ],
)
def test_block_is_inserted_above_the_users_text_which_is_kept(existing):
    merged = merge_managed_block(existing, "Host a\n")
    assert merged == block("Host a\n") + existing


@pytest.mark.parametrize(
    "before, after, end_ending",
    [
        ("", "", "\n"),
        ("ServerAliveInterval 30\n", "Host x\n  User y\n", "\n"),
        ("User me\r\n\r\n", "Host x\r\n  Port 2\r\n", "\r\n"),
        ("Host x\n", "", ""),
        ("# top\n", "Host x\n  User y", "\n"),
        ("\n\n", "\n\n", "\n"),
    ],
)
def test_replacing_the_block_keeps_every_other_byte(before, after, end_ending):
    existing = before + block("Host old\n  HostName 10.0.0.1\n", end_ending) + after
    merged = merge_managed_block(existing, "Host new\n  HostName 10.0.0.2\n")
    assert merged == before + block("Host new\n  HostName 10.0.0.2\n", end_ending) + after
    assert merge_managed_block(merged, "Host new\n  HostName 10.0.0.2\n") == merged


def test_markers_with_surrounding_whitespace_are_found():
    existing = "Host x\n  " + BEGIN + " \nHost old\n" + END + "\t\n"
    assert merge_managed_block(existing, "Host new\n") == "Host x\n" + block("Host new\n")


@pytest.mark.parametrize(
    "existing, line, problem",
    [
        (f"Host x\n{BEGIN}\nHost a\n", 2, "without an"),
        (f"{BEGIN}\n{BEGIN}\n{END}\n", 2, "second '# BEGIN"),
        (f"{END}\n{BEGIN}\n{END}\n", 1, "without a"),
        (f"{BEGIN}\n{END}\n{END}\n", 3, "second '# END"),
    ],
)
def test_malformed_block_is_an_error_naming_file_and_line(existing, line, problem):
    with pytest.raises(OutputError, match=f"^/home/me/.ssh/config:{line}: .*{problem}"):
        merge_managed_block(existing, "Host a\n", path="/home/me/.ssh/config")


def test_body_containing_a_marker_is_refused():
    with pytest.raises(OutputError, match="contains"):
        merge_managed_block(None, f"Host a\n{END}\n")


# --- unified_diff ------------------------------------------------------------------


def test_diff_is_empty_when_nothing_changes():
    assert unified_diff("f", "a\n", "a\n") == ""


def test_diff_of_a_new_file_is_against_dev_null():
    diff = unified_diff("out/list", None, "web-i-1\n")
    assert diff.splitlines() == ["--- /dev/null", "+++ out/list", "@@ -0,0 +1 @@", "+web-i-1"]


def test_diff_shows_changed_lines_and_missing_final_newline():
    diff = unified_diff("f", "a\nb", "a\nc\n")
    assert "-b\n\\ No newline at end of file\n+c\n" in diff


# --- prune_known_hosts -------------------------------------------------------------

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def managed(host: str) -> bool:
    return host.startswith("web-i-")


@pytest.mark.parametrize(
    "line, kept",
    [
        (f"web-i-dead {KEY}\n", False),
        (f"web-i-live {KEY}\n", True),
        (f"[web-i-dead]:2222 {KEY}\n", False),
        (f"web-i-dead,web-i-gone {KEY} comment\n", False),
        (f"web-i-dead,web-i-live {KEY}\n", True),
        (f"web-i-dead,10.0.0.5 {KEY}\n", True),
        (f"github.com {KEY}\n", True),
        (f"  web-i-dead\t{KEY}\r\n", False),
        ("# web-i-dead was here\n", True),
        ("\n", True),
        (f"@cert-authority web-i-dead {KEY}\n", True),
        (f"@revoked web-i-dead {KEY}\n", True),
        (f"|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg= {KEY}\n", True),
        (f"web-i-* {KEY}\n", True),
        (f"web-i-live,!web-i-dead {KEY}\n", True),
        ("web-i-dead\n", True),
    ],
)
def test_prune_drops_only_entries_of_managed_hosts_no_longer_live(line, kept):
    text = f"github.com {KEY}\n{line}# end\n"
    expected = text if kept else f"github.com {KEY}\n# end\n"
    assert prune_known_hosts(text, {"web-i-live"}, managed) == expected


def test_prune_keeps_a_file_without_final_newline_byte_identical():
    text = f"a {KEY}\r\nweb-i-dead {KEY}\r\nb {KEY}"
    assert prune_known_hosts(text, set(), managed) == f"a {KEY}\r\nb {KEY}"
    assert prune_known_hosts(f"web-i-dead {KEY}", set(), managed) == ""
