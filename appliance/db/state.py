"""A read-only look at the CA's database: which one ca.json names, and its schema revision.

For `step-ca --check`, `step-ca db status` and the server's start and reload (none of which
may change the database): nothing is created, migrated or written. A SQLite file is opened
read-only; one that does not exist yet is reported as new (no schema).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from appliance.db.engine import SQLITE_FILE, DatabaseConfigError, database_url
from pki.steppath import resolve

CONNECT_TIMEOUT = 10  # seconds, for a database server that does not answer


class DatabaseError(RuntimeError):
    """The database cannot be reached or read; one line for the operator."""


class SchemaState(enum.Enum):
    """Where the schema stands against this build's migrations."""

    CURRENT = "current"
    NEW = "new"  # no schema yet: `step-ca db upgrade` makes it
    BEHIND = "behind"  # an older revision: `step-ca db upgrade` brings it to head
    UNKNOWN = "unknown"  # a revision this build does not have: a newer Stepstone made it


@dataclass(frozen=True)
class DatabaseState:
    """The database ca.json names and where its schema stands."""

    driver: str
    location: str
    revision: str | None
    head: str
    state: SchemaState

    @property
    def upgrade_needed(self) -> bool:
        return self.state in (SchemaState.NEW, SchemaState.BEHIND)

    def problem(self, config_path: Path | str) -> str | None:
        """Why step-ca cannot serve from this schema, in one line naming the way out; None
        when it can. The server never changes the schema itself (several appliances may
        share the database, or it may be a read-only replica)."""
        upgrade = f"run 'step-ca db upgrade {config_path}'"
        if self.state is SchemaState.NEW:
            return (
                f"the database {self.location} has no schema yet (this step-ca needs "
                f"{self.head}): {upgrade}"
            )
        if self.state is SchemaState.BEHIND:
            return (
                f"the database schema is at {self.revision} but this step-ca needs "
                f"{self.head}: {upgrade}"
            )
        if self.state is SchemaState.UNKNOWN:
            return (
                f"the database schema is at {self.revision}, newer than this step-ca knows "
                f"(its newest is {self.head}): a newer Stepstone upgraded it; run that version"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "location": self.location,
            "revision": self.revision,
            "head": self.head,
            "state": self.state.value,
        }


def read_only_url(db: dict[str, Any] | None, base: Path) -> URL:
    """The URL `database_url` gives for ca.json's `db` block, without creating the SQLite
    file's folder (for readers that must not change anything)."""
    source = str((db or {}).get("dataSource") or "")
    if "://" in source:
        return make_url(database_url(db, base))
    path = resolve(source, base) if source else base / "db"
    if path.suffix not in (".db", ".sqlite", ".sqlite3"):
        path = path / SQLITE_FILE
    return make_url(f"sqlite:///{path}")


def _migrations() -> tuple[str, set[str]]:
    """This build's head revision and every revision it knows."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic.script import ScriptDirectory

    import migrations

    scripts = ScriptDirectory(str(Path(migrations.__file__).parent))
    head = scripts.get_current_head()
    assert head is not None, "the migrations have one head"
    return head, {script.revision for script in scripts.walk_revisions()}


def read_only_engine(url: URL) -> Engine:
    """An engine that reads `url` and never writes (a SQLite file opened read-only)."""
    if url.get_backend_name() == "sqlite":
        # With no write-ahead log beside it, the file holds everything and nobody is writing:
        # `immutable` reads it without making the -wal/-shm files a reader otherwise leaves.
        # With one (a server is running), read through it as any reader does.
        wal = Path(f"{url.database}-wal").exists()
        mode = "mode=ro" if wal else "immutable=1"
        return create_engine(f"sqlite:///file:{quote(str(url.database))}?{mode}&uri=true")
    args = {"connect_timeout": CONNECT_TIMEOUT} if url.get_backend_name() == "postgresql" else {}
    return create_engine(url, connect_args=args)


def error_line(exc: SQLAlchemyError) -> str:
    """The driver's own first line ("connection refused", "file is not a database")."""
    reason = str(getattr(exc, "orig", None) or exc).strip()
    return reason.splitlines()[0] if reason else type(exc).__name__


def current_revision(engine: Engine) -> str | None:
    """The alembic revision the database is at (None: no schema); reads, writes nothing."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        conn.rollback()
    return revision


def inspect_database(db: dict[str, Any] | None, base: Path) -> DatabaseState:
    """Where the database of ca.json's `db` block stands; DatabaseError if unreachable."""
    try:
        url = read_only_url(db, base)
    except DatabaseConfigError as exc:
        raise DatabaseError(str(exc)) from None
    sqlite = url.get_backend_name() == "sqlite"
    location = str(url.database) if sqlite else url.render_as_string(hide_password=True)
    driver = f"{url.get_backend_name()}+{url.get_driver_name()}"
    head, known = _migrations()
    if sqlite and not Path(str(url.database)).exists():
        return DatabaseState(driver, location, None, head, SchemaState.NEW)
    engine = read_only_engine(url)
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot read {location}: {error_line(exc)}") from None
    finally:
        engine.dispose()
    if revision is None:
        state = SchemaState.NEW
    elif revision == head:
        state = SchemaState.CURRENT
    elif revision in known:
        state = SchemaState.BEHIND
    else:
        state = SchemaState.UNKNOWN
    return DatabaseState(driver, location, revision, head, state)
