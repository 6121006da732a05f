"""write_atomic: private from the first byte, all-or-nothing, no temp files left behind."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from keystores import write_atomic


def test_creates_file_and_private_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "secret"
    old_umask = os.umask(0o022)
    try:
        write_atomic(target, b"data")
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


def test_existing_parent_mode_untouched(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    write_atomic(tmp_path / "f", b"x", mode=0o644)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_mode_is_set_before_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Watch every write: the temp file must already have `mode` when bytes go in."""
    seen: list[int] = []
    real_fchmod = os.fchmod

    def spy_fchmod(fd: int, mode: int) -> None:
        assert os.fstat(fd).st_size == 0
        real_fchmod(fd, mode)
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))

    monkeypatch.setattr(os, "fchmod", spy_fchmod)
    write_atomic(tmp_path / "f", b"secret", mode=0o640)
    assert seen == [0o640]


def test_replaces_existing(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["f"]


def test_failed_replace_leaves_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"original")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "simulated I/O error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"original"
    assert os.listdir(tmp_path) == ["f"]


def test_failed_fsync_leaves_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"original")

    def broken_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"original"
    assert os.listdir(tmp_path) == ["f"]


def test_interrupt_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "f", b"new")
    assert os.listdir(tmp_path) == []


def test_no_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_atomic(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_atomic(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["f"]


def test_no_overwrite_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Filesystems without link() (vfat sticks in ceremonies) fall back to check-then-rename."""

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "f"
    write_atomic(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_atomic(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["f"]
