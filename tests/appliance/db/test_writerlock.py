"""The writer lock (appliance/db/writerlock.py): issuance transactions of every thread and
process take turns on one flock, and nothing of it is left beside the database."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from appliance.db import writerlock
from appliance.db.engine import migrate, open_engine
from appliance.db.repository import Repository
from appliance.db.writerlock import WriterLock
from tests.appliance.db.conftest import Builder, make_token


def _lock_of(repo: Repository) -> WriterLock:
    lock = repo._issuance._writer_lock
    assert lock is not None
    return lock


def test_writer_lock_leaves_nothing_beside_the_database(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'ca.db'}")
    migrate(engine)
    repo = Repository(engine)
    repo.issue(make_token(), "admin", Builder(10))
    with _lock_of(repo).held() as got:
        assert got
    engine.dispose()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.db"]
    assert WriterLock.for_engine(create_engine("sqlite://")) is None
    assert WriterLock.for_engine(create_engine("postgresql+psycopg://ca@127.0.0.1/ca")) is None


def test_writer_lock_excludes_a_forked_process(tmp_path: Path) -> None:
    """Each process takes the lock through its own open description, not the inherited one."""
    engine = open_engine(f"sqlite:///{tmp_path / 'ca.db'}")
    lock = _lock_of(Repository(engine))
    with lock.held() as got:
        assert got
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            code = 1
            try:
                writerlock.PATIENCE_SECONDS = 0.0
                with lock.held() as child_got:
                    code = 0 if not child_got else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child took the lock the parent held"
    engine.dispose()


def test_writer_lock_excludes_another_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without group commit every issuing thread takes the lock, through its own description."""
    monkeypatch.setattr(writerlock, "PATIENCE_SECONDS", 0.0)
    engine = open_engine(f"sqlite:///{tmp_path / 'ca.db'}")
    lock = _lock_of(Repository(engine, group_commit=False))
    seen: list[bool] = []

    def other() -> None:
        with lock.held() as got:
            seen.append(got)

    with lock.held() as got:
        assert got
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(30)
    other()
    assert seen == [False, True]
    engine.dispose()


def test_a_lock_held_elsewhere_delays_but_never_blocks_issuance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock only orders batches: past its patience, SQLite's own locking decides."""
    monkeypatch.setattr(writerlock, "PATIENCE_SECONDS", 0.0)
    engine = open_engine(f"sqlite:///{tmp_path / 'ca.db'}")
    migrate(engine)
    repo = Repository(engine)
    lock = _lock_of(repo)
    assert lock._anchor is not None
    other = os.open(f"/proc/self/fd/{lock._anchor.fileno()}", os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        with lock.held() as got:
            assert not got
        assert repo.issue(make_token(), "admin", Builder(10)).serial_number == 10
        fcntl.flock(other, fcntl.LOCK_UN)
        with lock.held() as got:
            assert got
    finally:
        os.close(other)
        engine.dispose()
