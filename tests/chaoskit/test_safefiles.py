"""chaoskit.safefiles: no output is written through a link, and private outputs are 0600."""

from __future__ import annotations

import os

import pytest

from chaoskit import safefiles
from chaoskit.safefiles import UnsafeOutput
from tests.files import OTHER_UID, as_root, mode


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# -- open_log: append-only logs --------------------------------------------------------------


def test_open_log_refuses_a_symlink_and_leaves_its_target_alone(tmp_path, victim):
    link = tmp_path / "access.log"
    link.symlink_to(victim)
    with pytest.raises(UnsafeOutput, match="is a symbolic link"):
        safefiles.open_log(link)
    assert victim.read_text() == "export PATH=/usr/bin\n" and mode(victim) == 0o644


def test_open_log_refuses_a_dangling_symlink_without_creating_its_target(tmp_path):
    link = tmp_path / "access.log"
    link.symlink_to(tmp_path / "planted")
    with pytest.raises(UnsafeOutput):
        safefiles.open_log(link)
    assert not (tmp_path / "planted").exists()


def test_open_log_refuses_a_fifo_without_blocking_a_folder_and_a_hard_link(tmp_path, victim):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeOutput, match="FIFO"):
        safefiles.open_log(fifo)
    with pytest.raises(OSError):  # EISDIR from open itself
        safefiles.open_log(tmp_path)
    hard = tmp_path / "hard.log"
    os.link(victim, hard)
    with pytest.raises(UnsafeOutput, match="2 hard links"):
        safefiles.open_log(hard)
    assert victim.read_text() == "export PATH=/usr/bin\n"


def test_a_new_log_is_0600_and_an_existing_one_of_ours_becomes_0600(tmp_path, umask022):
    new = tmp_path / "new.log"
    with safefiles.open_log(new) as f:
        f.write("one\n")
    assert mode(new) == 0o600
    old = tmp_path / "old.log"
    old.write_text("before\n")
    old.chmod(0o644)
    with safefiles.open_log(old) as f:
        f.write("after\n")
    assert mode(old) == 0o600
    assert old.read_text() == "before\nafter\n"  # appended, not truncated


@as_root
def test_an_existing_log_of_another_user_keeps_its_mode(tmp_path):
    theirs = tmp_path / "theirs.log"
    theirs.write_text("")
    theirs.chmod(0o644)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with safefiles.open_log(theirs) as f:
        f.write("line\n")
    assert mode(theirs) == 0o644


def test_a_log_escapes_what_its_encoding_cannot_carry(tmp_path):
    path = tmp_path / "a.log"
    with safefiles.open_log(path) as f:
        f.write("ua=\udcff\n")  # a surrogate-escaped byte: written, not raised
    assert path.read_bytes() == b"ua=\\udcff\n"


# -- write_file: whole files ---------------------------------------------------------------


def test_write_file_replaces_a_symlink_and_leaves_its_target_alone(tmp_path, victim):
    link = tmp_path / "journal.json"
    link.symlink_to(victim)
    safefiles.write_file(link, "{}\n", private=True)
    assert victim.read_text() == "export PATH=/usr/bin\n" and mode(victim) == 0o644
    assert not link.is_symlink() and link.read_text() == "{}\n"
    assert mode(link) == 0o600


def test_write_file_modes_private_and_shared(tmp_path, umask022):
    private = safefiles.write_file(tmp_path / "j.xml", "<x/>", private=True)
    shared = safefiles.write_file(tmp_path / "r.html", b"<html/>", private=False)
    assert mode(private) == 0o600
    assert mode(shared) == 0o644  # 0666 under the umask, like any new file
    shared.chmod(0o600)
    safefiles.write_file(shared, "again", private=True)
    assert mode(shared) == 0o600


def test_write_file_refuses_a_folder_or_a_fifo_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    for name, kind in (("dir", "a folder"), ("fifo", "a FIFO")):
        with pytest.raises(UnsafeOutput, match=kind):
            safefiles.write_file(tmp_path / name, "x", private=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "fifo"]


def test_write_file_is_atomic_for_readers(tmp_path):
    path = tmp_path / "index.json"
    safefiles.write_file(path, "old", private=True)
    with open(path) as reader:  # a reader that opened the old file keeps reading all of it
        safefiles.write_file(path, "new", private=True)
        assert reader.read() == "old"
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_describe_names_the_path_without_errno_numbers(tmp_path):
    with pytest.raises(OSError) as info:
        safefiles.write_file(tmp_path / "missing" / "j.json", "x", private=True)
    text = safefiles.describe(info.value)
    assert "No such file or directory" in text and "[Errno" not in text


# -- make_private ------------------------------------------------------------------------------


def test_make_private_never_follows_a_link(tmp_path, victim):
    link = tmp_path / "mitmproxy-ca-cert.pem"
    link.symlink_to(victim)
    assert safefiles.make_private(link) is False
    assert mode(victim) == 0o644
    mine = tmp_path / "mine.pem"
    mine.write_text("")
    mine.chmod(0o644)
    assert safefiles.make_private(mine) is True and mode(mine) == 0o600
    assert safefiles.make_private(tmp_path / "absent") is False


@as_root
def test_make_private_leaves_another_users_file_alone(tmp_path):
    theirs = tmp_path / "theirs.pem"
    theirs.write_text("")
    theirs.chmod(0o644)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    assert safefiles.make_private(theirs) is False and mode(theirs) == 0o644
