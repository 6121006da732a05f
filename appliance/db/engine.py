"""Open the CA's database from ca.json's `db` block, and bring its schema up to date.

Only `step-ca db upgrade` and `step ca init` call `migrate`: the server never changes the
schema (see appliance.db.schema).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pki.steppath import resolve

SQLITE_FILE = "stepstone.db"


class DatabaseConfigError(ValueError):
    """A `db` block we cannot turn into a database URL."""


class MigrationError(RuntimeError):
    """Alembic could not migrate (e.g. the database is at a revision this build lacks)."""


def database_url(db: dict[str, Any] | None, base: Path) -> str:
    """The SQLAlchemy URL for a `db` block; SQLite under STEPPATH by default.

    `dataSource` takes any SQLAlchemy URL. step's badger/bbolt configs name a directory: we
    keep a SQLite file there, so a step-ca ca.json works unchanged.
    """
    source = str((db or {}).get("dataSource") or "")
    if "://" in source:
        if source.startswith("postgresql://"):
            source = "postgresql+psycopg://" + source[len("postgresql://") :]
        try:
            backend = make_url(source).get_backend_name()
        except ArgumentError as exc:
            raise DatabaseConfigError(f"db.dataSource: {exc}") from None
        if backend not in ("sqlite", "postgresql"):
            raise DatabaseConfigError(
                f"db.dataSource: {backend} is not supported (use SQLite or PostgreSQL)"
            )
        return source
    path = resolve(source, base) if source else base / "db"
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return f"sqlite:///{path}"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{path / SQLITE_FILE}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, issue BEGIN: savepoints (used to tell a replayed token from
    # other conflicts) need it. See SQLAlchemy's notes on the pysqlite driver.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Statement journals (one per savepoint: each issuance has one) stay in memory. SQLite
    # otherwise opens, writes and unlinks a file in /var/tmp per transaction once a journal
    # passes 64 KiB: copies of the database's pages on disk outside STEPPATH, and 40% of the
    # write system calls of a signing load (make bench: system CPU per certificate 0.26 ->
    # 0.21 ms).
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def open_engine(url: str) -> Engine:
    """An engine with SQLite in WAL mode and durable commits; files made 0600."""
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        db_file = engine.url.database
        if db_file and db_file != ":memory:":
            p = Path(db_file)
            if not p.exists():
                p.touch(mode=0o600)
            p.chmod(0o600)
    return engine


#: pg_advisory_xact_lock key held while migrating: several appliances sharing one PostgreSQL
#: database may each run `step-ca db upgrade` (the packaged unit does, at every start); the
#: first migrates, the others wait and then find the schema at head.
SCHEMA_LOCK_KEY = 0x5354_4550_4442  # "STEPDB"


def migrate(engine: Engine, target: str = "head") -> tuple[str | None, str | None]:
    """Apply the alembic migrations up to `target` (idempotent); the revisions before and
    after. Only tests ask for a target other than head (a schema from an older release).

    One transaction (PostgreSQL's DDL is transactional: an upgrade that fails leaves the old
    schema), taken under an advisory lock on PostgreSQL so concurrent upgrades queue.
    """
    # Before the import: alembic logs its plugin set-up at INFO while it is being imported.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError

    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, target)
        except CommandError as exc:
            raise MigrationError(str(exc)) from None
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after
