"""The issuance's inserts on the DB-API connection inside SQLAlchemy's pool.

A Core `insert()` through `Connection.execute` costs far more CPU than the database's own
work: the statement is coerced, cache-keyed and given an execution context on every call, and
`Engine.begin` adds events and savepoint bookkeeping. Here each insert is compiled once for the
engine's dialect (its paramstyle: sqlite3's `?`, psycopg's `%(name)s`; its bind processing:
SQLite's datetime text, PostgreSQL's casts), so the rows stored are the ones Core would store,
and a transaction is a checkout from the engine's pool (pre-ping, fork and dispose handling as
for every other query), the driver's BEGIN/COMMIT, and the pool's checkin.

Driver errors leave here as SQLAlchemy's exceptions (`IntegrityError`, `OperationalError`,
...), the ones `Connection.execute` raises, so callers tell them apart as before; a
connection the dialect finds broken is invalidated, so the pool does not hand it out again.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Column, Engine, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import Pool, PoolProxiedConnection

from appliance.db.engine import DatabaseConfigError

#: Connections kept by a writer in a process that then forked: the child holds them, never
#: closes them (closing a SQLite connection in a child can disturb its parent's file locks).
_INHERITED: list[PoolProxiedConnection] = []


class InsertNew:
    """`INSERT ... ON CONFLICT (key) DO NOTHING` of every column, compiled for one engine.

    A taken key is reported by the row count, not by an error: the transaction stays usable
    on every database (PostgreSQL aborts a transaction on any error, so an error would need a
    savepoint, and a round trip, per insert), and only a conflict on that key is swallowed:
    NOT NULL and other constraint failures still raise.
    """

    def __init__(self, table: Table, key: Column[Any], engine: Engine) -> None:
        dialect = engine.dialect
        if dialect.name == "sqlite":
            statement: Any = sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
        elif dialect.name == "postgresql":
            statement = postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
        else:
            raise DatabaseConfigError(f"db.dataSource: {dialect.name} is not supported")
        self._compile(statement, table, dialect)

    def _compile(self, statement: Any, table: Table, dialect: Any) -> None:
        keys = [c.key for c in table.c]
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        self.sql: str = compiled.string
        self.positional = bool(compiled.positional)
        self.keys = tuple(compiled.positiontup or keys)
        processors = {c.key: c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.c}
        self.processors: dict[str, Callable[[Any], Any]] = {
            k: _last_one(p) for k, p in processors.items() if p is not None
        }
        # In parameter order: (key, its bind processor or None), walked once per row.
        self._order = tuple((k, self.processors.get(k)) for k in self.keys)

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The DB-API parameters for one row (every column must be given)."""
        if self.positional:
            return tuple([values[k] if p is None else p(values[k]) for k, p in self._order])
        return {k: values[k] if p is None else p(values[k]) for k, p in self._order}


def _last_one(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`process` remembering its last value: an issuance binds the same `now` several times
    (the token's use, the certificate's issue, the audit entry), SQLite's datetime text
    costs a few µs each. Values are compared by identity, so nothing mutable is at risk."""
    last: tuple[Any, Any] = (object(), None)

    def remembered(value: Any) -> Any:
        nonlocal last
        seen, out = last
        if value is seen:
            return out
        out = process(value)
        last = (value, out)
        return out

    return remembered


class RawTransaction:
    """One transaction on a pooled DB-API connection; see `RawWriter.transaction`."""

    def __init__(self, writer: RawWriter, proxied: PoolProxiedConnection) -> None:
        self._writer = writer
        self._proxied = proxied
        self._cursor: Any = None
        self.memo: dict[str, Any] = {}
        """What a writer learnt in this transaction (the audit chain's head), forgotten when
        a savepoint is rolled back: it may have been undone."""

    def _run(self, sql: str, params: Any = None) -> Any:
        try:
            if self._cursor is None:
                self._cursor = self._proxied.cursor()
            if params is None:
                self._cursor.execute(sql)
            else:
                self._cursor.execute(sql, params)
        except self._writer.dbapi_error as exc:
            raise self._writer.wrap(exc, sql, params, self._proxied, self._cursor) from exc
        return self._cursor

    def insert_new(self, statement: InsertNew, values: Mapping[str, Any]) -> bool:
        """Insert one row; False if its key was taken (nothing written, transaction usable).

        On PostgreSQL an insert of a key that another open transaction has just inserted
        waits for that transaction to end, then reports it taken if that one committed.
        """
        return bool(self._run(statement.sql, statement.params(values)).rowcount == 1)

    def insert_rows(self, statement: InsertNew, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows` with one `executemany` (keys that cannot conflict)."""
        if not rows:
            return
        many = [statement.params(r) for r in rows]
        try:
            if self._cursor is None:
                self._cursor = self._proxied.cursor()
            self._cursor.executemany(statement.sql, many)
        except self._writer.dbapi_error as exc:
            raise self._writer.wrap(exc, statement.sql, many, self._proxied, self._cursor) from exc

    def execute(self, sql: str) -> None:
        """Run a statement compiled elsewhere that takes no parameters (a lock, say)."""
        self._run(sql)

    def fetch_one(self, sql: str) -> tuple[Any, ...] | None:
        """The first row of a query that takes no parameters (raw driver values), or None."""
        row = self._run(sql).fetchone()
        return tuple(row) if row is not None else None

    def savepoint(self) -> None:
        """Start a nested unit, ended by `release_savepoint` or `rollback_to_savepoint`."""
        self._run("SAVEPOINT unit")

    def release_savepoint(self) -> None:
        self._run("RELEASE SAVEPOINT unit")

    def rollback_to_savepoint(self) -> None:
        """Undo what the unit wrote, keep the rest of the transaction."""
        self.memo.clear()
        self._run("ROLLBACK TO SAVEPOINT unit")
        self._run("RELEASE SAVEPOINT unit")

    def _begin(self, immediate: bool) -> None:
        if self._writer.explicit_begin:
            self._run("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def _commit(self) -> None:
        try:
            self._proxied.commit()
        except self._writer.dbapi_error as exc:
            raise self._writer.wrap(exc, "COMMIT", None, self._proxied, self._cursor) from exc

    def _rollback(self) -> None:
        """Best effort: a connection that cannot even roll back is dropped from the pool."""
        if not self._proxied.is_valid:
            return
        try:
            self._proxied.rollback()
        except self._writer.dbapi_error as exc:
            self._proxied.invalidate(exc)


class RawWriter:
    """Transactions of compiled inserts on the engine's pooled DB-API connections.

    `keep_connection`: between transactions, keep the last connection out of the pool
    instead of checking it in (a checkout and a checkin, with the pool's reset, cost more
    than a short issuance's own statements). For a writer whose transactions follow one
    another (group commit's batches); a concurrent one simply takes another from the pool.
    The kept connection is dropped when invalidated, when the engine is disposed (its pool
    replaced), and in a forked child, which never touches its parent's connection.
    """

    def __init__(self, engine: Engine, *, keep_connection: bool = False) -> None:
        self.engine = engine
        dialect = engine.dialect
        self.dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        # pysqlite runs with isolation_level=None (engine.py): BEGIN is ours to send; psycopg
        # (not in autocommit) opens a transaction with the first statement by itself.
        self.explicit_begin = dialect.name == "sqlite"
        self._keep = keep_connection
        self._kept: tuple[int, Pool, PoolProxiedConnection] | None = None
        self._kept_lock = threading.Lock()
        if keep_connection:  # disposing of the engine closes every connection it made
            release = weakref.WeakMethod(self.release)
            event.listen(engine, "engine_disposed", lambda _e: (m := release()) and m())

    def _checkout(self) -> tuple[Pool, PoolProxiedConnection]:
        """A connection and the pool it came from (the kept one, or the engine's)."""
        with self._kept_lock:
            kept, self._kept = self._kept, None
        if kept is not None:
            pid, pool, proxied = kept
            if pid != os.getpid():
                _INHERITED.append(proxied)  # the parent's: never used nor closed here
            elif pool is self.engine.pool and proxied.is_valid:
                return pool, proxied
            else:
                proxied.invalidate()  # its pool was disposed of meanwhile: close it
        pool = self.engine.pool
        try:
            return pool, pool.connect()  # what engine.raw_connection() does
        except self.dbapi_error as exc:
            raise self.wrap(exc, None, None, None, None) from exc

    def _checkin(self, pool: Pool, proxied: PoolProxiedConnection) -> None:
        if self._keep and proxied.is_valid and pool is self.engine.pool:
            with self._kept_lock:
                if self._kept is None:
                    self._kept = (os.getpid(), pool, proxied)
                    return
        proxied.close()  # back to the pool (which replaces an invalidated connection)

    def release(self) -> None:
        """Close the kept connection (a parent's, inherited through fork, is left alone)."""
        with self._kept_lock:
            kept, self._kept = self._kept, None
        if kept is None:
            return
        if kept[0] != os.getpid():
            _INHERITED.append(kept[2])
            return
        kept[2].invalidate()  # closed now: its pool may already be gone

    def wrap(
        self,
        exc: Exception,
        sql: str | None,
        params: Any,
        proxied: PoolProxiedConnection | None,
        cursor: Any,
    ) -> BaseException:
        """The SQLAlchemy exception `Connection.execute` would raise for a driver error."""
        dialect = self.engine.dialect
        conn = proxied.dbapi_connection if proxied is not None else None
        broken = dialect.is_disconnect(exc, conn, cursor)  # type: ignore[arg-type]
        if broken and proxied is not None:
            proxied.invalidate(exc)
        return DBAPIError.instance(
            sql,
            params,
            exc,
            self.dbapi_error,
            connection_invalidated=broken,
            dialect=dialect,
        )

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[RawTransaction]:
        """A transaction that commits when the block ends and rolls back if it raises.

        `immediate`: on SQLite take the write lock at BEGIN, for a transaction that reads
        before it writes what it read (a deferred one could not upgrade past a new commit).
        """
        pool, proxied = self._checkout()
        tx = RawTransaction(self, proxied)
        try:
            tx._begin(immediate)
            yield tx
            tx._commit()
        except BaseException:
            tx._rollback()
            raise
        finally:
            # The cursor is left to reference counting: closing it is local to the driver.
            self._checkin(pool, proxied)
