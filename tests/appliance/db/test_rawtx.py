"""The issuance's raw transactions (appliance/db/rawtx.py): a group-commit writer keeps its
connection between batches, and lets go of it when it must (engine disposed, connection
broken, process forked)."""

from __future__ import annotations

import os
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from appliance.db.engine import migrate, open_engine
from appliance.db.models import used_tokens
from appliance.db.rawtx import InsertNew, RawWriter
from appliance.db.repository import Repository
from tests.appliance.db.conftest import Builder, count, make_token


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    engine = open_engine(f"sqlite:///{tmp_path / 'ca.db'}")
    migrate(engine)
    return engine


def _connection_of(writer: RawWriter) -> object:
    with writer.transaction() as tx:
        return tx._proxied.dbapi_connection


def test_a_kept_connection_serves_the_next_transaction(sqlite_engine: Engine) -> None:
    kept = RawWriter(sqlite_engine, keep_connection=True)
    assert _connection_of(kept) is _connection_of(kept)
    pool = sqlite_engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedout() == 1, "kept out of the pool"
    pooled = RawWriter(sqlite_engine)
    assert _connection_of(pooled) is not _connection_of(kept)
    assert pool.checkedout() == 1, "the other writer's went back"


def test_disposing_of_the_engine_closes_the_kept_connection(sqlite_engine: Engine) -> None:
    writer = RawWriter(sqlite_engine, keep_connection=True)
    old = _connection_of(writer)
    assert isinstance(old, sqlite3.Connection)
    sqlite_engine.dispose()
    with pytest.raises(sqlite3.ProgrammingError):
        old.execute("SELECT 1")
    assert _connection_of(writer) is not old, "a new connection from the new pool"


def test_a_broken_connection_is_not_kept(sqlite_engine: Engine) -> None:
    """A connection the dialect found broken (invalidated by `wrap`) goes, a new one comes."""
    writer = RawWriter(sqlite_engine, keep_connection=True)
    with pytest.raises(RuntimeError), writer.transaction() as tx:
        broken = tx._proxied.dbapi_connection
        tx._proxied.invalidate()
        raise RuntimeError("disk gone")
    assert _connection_of(writer) is not broken
    statement = InsertNew(used_tokens, used_tokens.c.id, sqlite_engine)
    now = datetime.now(UTC)
    with writer.transaction() as tx:
        assert tx.insert_new(
            statement, {"id": "x", "provisioner": "p", "used_at": now, "expires_at": now}
        )


def test_issuances_on_a_kept_connection_after_a_fork(sqlite_engine: Engine) -> None:
    """The child issues on a connection of its own; the parent's stays usable in the parent."""
    repo = Repository(sqlite_engine, group_commit=True)
    repo.issue(make_token("parent-1"), "admin", Builder(1))
    parent_conn = repo._issuance._raw._kept
    assert parent_conn is not None
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        signal.alarm(20)
        code = 1
        try:
            sqlite_engine.dispose(close=False)
            repo.issue(make_token("child"), "admin", Builder(2))
            kept = repo._issuance._raw._kept
            code = 0 if kept is not None and kept[2] is not parent_conn[2] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    repo.issue(make_token("parent-2"), "admin", Builder(3))
    kept = repo._issuance._raw._kept
    assert kept is not None and kept[2] is parent_conn[2]
    assert count(repo, used_tokens) == 3
