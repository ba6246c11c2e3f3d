"""Daemon helpers: user, group and umask parsing, and the flock-held pidfile."""

import os

import pytest

from evtools.daemon import PidFile, PidfileLocked, parse_gid, parse_uid, parse_umask
from evtools.errors import ConfigurationError


def test_uid_and_gid_from_names_or_numbers():
    assert parse_uid("root") == 0 and parse_uid("0") == 0 and parse_uid(None) is None
    assert parse_uid("nobody") == 65534
    assert parse_gid("nogroup") == 65534 and parse_gid("12") == 12
    assert parse_gid(None, uid=0) == 0 and parse_gid(None) is None
    with pytest.raises(ConfigurationError, match="unknown user 'no-such-user-x'"):
        parse_uid("no-such-user-x")
    with pytest.raises(ConfigurationError, match="unknown group"):
        parse_gid("no-such-group-x")


@pytest.mark.parametrize("text, mask", [(None, 0), ("0", 0), ("022", 0o22), ("0o27", 0o27),
                                        ("777", 0o777)])
def test_umask_is_octal(text, mask):
    assert parse_umask(text) == mask


@pytest.mark.parametrize("text", ["999", "abc", "-1", "1000"])
def test_bad_umask_is_a_clear_error(text):
    with pytest.raises(ConfigurationError, match="--umask"):
        parse_umask(text)


def test_a_held_pidfile_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / "cam.pid"
    holder = PidFile(str(path)).acquire()
    holder.write_pid()
    with pytest.raises(PidfileLocked, match=f"held by pid {os.getpid()}"):
        PidFile(str(path)).acquire()
    holder.release()
    assert not path.exists()


def test_a_stale_pidfile_is_reclaimed(tmp_path):
    path = tmp_path / "cam.pid"
    path.write_text("999999\n")
    with PidFile(str(path)) as pidfile:
        assert pidfile.reclaimed_pid == "999999"
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()


def test_an_unwritable_pidfile_location_is_one_line(tmp_path):
    with pytest.raises(Exception, match="cannot open pidfile .*/missing/dir/cam.pid"):
        PidFile(str(tmp_path / "missing" / "dir" / "cam.pid")).acquire()
