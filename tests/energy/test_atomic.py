"""One atomic write for the project: whole or absent, umask honoured without touching it."""

import os
import stat

import numpy as np
import pytest

import energy
from energy._atomic import atomic_write, atomic_write_bytes


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_file_gets_the_permissions_of_a_plain_open(tmp_path, umask, monkeypatch):
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_bytes(b"x")
        # The write itself never reads or sets the process-wide umask.
        monkeypatch.setattr(os, "umask", lambda *_: pytest.fail("os.umask was called"))
        atomic_write_bytes(tmp_path / "atomic.txt", b"x")
        m = energy.EnergyMap.from_grid(np.zeros((3, 3)), [(0, 1), (0, 1)])
        m.save(tmp_path / "map.npz")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert _mode(tmp_path / "atomic.txt") == _mode(plain) == 0o666 & ~umask
    assert _mode(tmp_path / "map.npz") == 0o666 & ~umask


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def boom(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_replaces_whole_and_makes_parents_when_asked(tmp_path):
    target = tmp_path / "a" / "b" / "out.bin"
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(target, b"x")
    atomic_write_bytes(target, b"first", make_parents=True)
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_temporary_names_are_recognised_and_hidden(tmp_path):
    from energy._atomic import _open_temporary, is_temporary

    fd, tmp = _open_temporary(tmp_path / "part-0001.npz")
    os.close(fd)
    assert tmp.name.startswith(".") and is_temporary(tmp.name)
    for name in ("part-0001.npz", ".hidden", ".notes.tmp", "x.0123456789ab.tmp"):
        assert not is_temporary(name)
