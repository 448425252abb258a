"""Writing files: atomic, change-only, mode kept; the managed block; known_hosts pruning."""

from __future__ import annotations

import os

import pytest

from helper.errors import OutputError
from helper.files.write import (
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

    def refuse(src, dst, **at):
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


# --- what a target may be: regular files only, links only when nobody else controls them ---------
#
# issue 9 items 7, 8, 9 and 10. These use `write` as a module so that each test fails on its own,
# and root (the CI runner) to plant links and files owned by another user.

import stat  # noqa: E402
import threading  # noqa: E402

import helper.files.write as write  # noqa: E402
from helper.files import safepath  # noqa: E402

# nobody: a user the test process is not.
OTHER_UID = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="planting files of another user needs root")


def char_device(path, major: int, minor: int):
    """A device node of our own (never the real /dev/null: a failing test would replace it)."""
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    return path


@needs_root
def test_a_device_output_is_refused_and_stays_a_device(tmp_path):
    null = char_device(tmp_path / "null", 1, 3)
    with pytest.raises(OutputError, match=f"^{null}: is a character device, not a regular file"):
        write_atomic(null, "Host a\n")
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert os.listdir(tmp_path) == ["null"]


@needs_root
@pytest.mark.parametrize("minor", [3, 5, 7], ids=["null", "zero", "full"])
def test_reading_a_device_is_refused_without_reading_it(tmp_path, minor):
    device = char_device(tmp_path / "dev", 1, minor)
    with pytest.raises(OutputError, match=f"^{device}: is a character device, not a regular file"):
        safepath.read_text(device)


def test_reading_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match=f"^{fifo}: is a FIFO, not a regular file"):
        safepath.read_text(fifo)


def test_writing_over_a_fifo_is_refused_and_it_stays_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Before the fix the helper opened the FIFO to read it and waited for a writer: be that writer
    # (opening the write end waits for a reader, so it only unblocks a helper that is reading).
    writer = threading.Thread(target=lambda: open(fifo, "wb").close(), daemon=True)
    writer.start()
    try:
        with pytest.raises(OutputError, match="is a FIFO, not a regular file"):
            write_atomic(fifo, "x\n")
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    finally:
        # Release the writer thread if nothing read the FIFO: a reader stays until it is gone.
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        writer.join(timeout=5)
        os.close(reader)


def test_reading_a_file_larger_than_the_limit_is_refused_with_its_size(tmp_path):
    big = tmp_path / "known_hosts"
    with open(big, "wb") as handle:
        handle.truncate(safepath.MAX_READ_BYTES + 1)  # sparse: no real 32 MiB on disk
    with pytest.raises(OutputError, match=rf"^{big}: is {safepath.MAX_READ_BYTES + 1} bytes, more than"):
        safepath.read_text(big)


def test_reading_non_utf8_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "config"
    path.write_bytes(b"Host caf\xe9\n")
    with pytest.raises(OutputError, match=f"^{path}: is not UTF-8 text"):
        safepath.read_text(path)
    assert safepath.read_text(tmp_path / "missing") is None


@needs_root
def test_a_link_owned_by_another_user_is_not_followed(tmp_path):
    victim = tmp_path / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA admin\n")
    planted = tmp_path / "ssh_config"
    planted.symlink_to(victim)
    os.lchown(planted, OTHER_UID, OTHER_UID)
    with pytest.raises(OutputError, match=f"^{planted}: is a symlink owned by uid {OTHER_UID}"):
        write_atomic(planted, "Host a\n")
    assert victim.read_text() == "ssh-ed25519 AAAA admin\n"
    assert planted.is_symlink()


@pytest.mark.parametrize("shared_mode", [0o1777, 0o777, 0o770], ids=["sticky-tmp", "world", "group"])
def test_a_link_in_a_directory_others_can_write_is_not_followed(tmp_path, shared_mode):
    victim = tmp_path / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA admin\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, shared_mode)
    planted = shared / "ssh_config"
    planted.symlink_to(victim)  # ours, but anyone who can write `shared` could have swapped it
    with pytest.raises(OutputError, match=f"^{planted}: is a symlink in {shared}, which others can write"):
        write_atomic(planted, "Host a\n")
    assert victim.read_text() == "ssh-ed25519 AAAA admin\n"


def test_a_directory_link_in_a_shared_directory_is_not_followed_either(tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    (private / "authorized_keys").write_text("ssh-ed25519 AAAA admin\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / "out").symlink_to(private)
    with pytest.raises(OutputError, match="is a symlink in .*which others can write"):
        write_atomic(shared / "out" / "authorized_keys", "Host a\n")
    assert (private / "authorized_keys").read_text() == "ssh-ed25519 AAAA admin\n"


def test_a_chain_of_own_links_in_private_directories_is_followed(tmp_path):
    real = tmp_path / "dotfiles" / "ssh" / "config"
    real.parent.mkdir(parents=True)
    real.write_text("old\n")
    (tmp_path / "current").symlink_to("dotfiles/ssh")
    link = tmp_path / "config"
    link.symlink_to(tmp_path / "current" / "config")
    assert write_atomic(link, "new\n") is True
    assert real.read_text() == "new\n" and link.is_symlink()


def test_an_output_directory_others_can_write_is_warned_about_once(tmp_path, caplog):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    write.write_all([write.NewFile(str(shared / "a"), "a\n", 0o600),
                     write.NewFile(str(shared / "b"), "b\n", 0o600)])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(shared) in warnings[0] and "others can write" in warnings[0]
    assert (shared / "a").read_text() == "a\n"


@needs_root
def test_replacing_a_users_file_as_root_keeps_its_owner_and_group(tmp_path):
    config = tmp_path / "config"
    config.write_text("Host mine\n")
    os.chown(config, OTHER_UID, OTHER_UID)
    assert write_atomic(config, "Host mine\nHost theirs\n", mode=0o600) is True
    assert (os.stat(config).st_uid, os.stat(config).st_gid) == (OTHER_UID, OTHER_UID)
    assert os.stat(config).st_mode & 0o777 == 0o600


def test_a_target_that_cannot_be_written_leaves_every_other_target_as_it_was(tmp_path):
    first = tmp_path / "ssh_config"
    first.write_text("old\n")
    inode = os.stat(first).st_ino
    # Nothing can create a file in /proc, root included.
    with pytest.raises(OutputError, match="^cannot write /proc/inventory.json"):
        write.write_all([write.NewFile(str(first), "new\n", 0o600),
                         write.NewFile("/proc/inventory.json", "{}\n", 0o600)])
    assert first.read_text() == "old\n" and os.stat(first).st_ino == inode
    assert os.listdir(tmp_path) == ["ssh_config"]  # no temp file left behind


def test_write_all_replaces_every_changed_file_and_reports_them(tmp_path):
    same = tmp_path / "same"
    same.write_text("same\n")
    os.chmod(same, 0o644)
    changed = write.write_all([write.NewFile(str(tmp_path / "new"), "new\n", 0o600),
                               write.NewFile(str(same), "same\n", 0o600)])
    assert changed == [str(tmp_path / "new")]
    assert os.stat(same).st_mode & 0o777 == 0o600  # unchanged text, mode still corrected


def test_an_output_directory_owned_by_another_user_is_warned_about(tmp_path, caplog):
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    shared = tmp_path / "theirs"
    shared.mkdir()
    os.chown(shared, 65534, 65534)
    with caplog.at_level("WARNING"):
        write_atomic(shared / "ssh_config", "x\n")
    assert any("event=foreign_output_directory" in r.getMessage() for r in caplog.records)
