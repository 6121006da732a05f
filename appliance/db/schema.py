"""The database schema as an explicit step: `step-ca db upgrade` changes it, the server checks it.

DDL when a server starts is a hazard with several appliances on one PostgreSQL database (each
would migrate at once) or on a read-only replica, so `step-ca` never creates or alters a
table: at start and on every reload it only reads the schema's revision and refuses anything
but this build's head, naming the command to run. `step-ca db upgrade` (and `step ca init`,
for the SQLite database it configures) applies the migrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from appliance.config import CAConfig
from appliance.db.engine import (
    DatabaseConfigError,
    MigrationError,
    database_url,
    migrate,
    open_engine,
)
from appliance.db.state import (
    DatabaseError,
    DatabaseState,
    SchemaState,
    error_line,
    inspect_database,
)


class SchemaError(RuntimeError):
    """The schema is not one this step-ca can serve from, or cannot be upgraded: one line."""


def _db(config: CAConfig) -> dict[str, Any] | None:
    return config.db.as_json() if config.db else None


def database_state(config: CAConfig) -> DatabaseState:
    """Where the database of `config` stands (read-only); SchemaError if it cannot be read."""
    try:
        return inspect_database(_db(config), config.base_dir)
    except DatabaseError as exc:
        raise SchemaError(str(exc)) from None


def require_current(config: CAConfig) -> DatabaseState:
    """The database's state when its schema is at this build's head, else SchemaError saying
    what to run. Reads one row; creates and changes nothing (a missing SQLite file stays so)."""
    state = database_state(config)
    problem = state.problem(config.path)
    if problem is not None:
        raise SchemaError(problem)
    return state


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade` did: the revision before (None: no schema) and after."""

    database: DatabaseState
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def to_json(self) -> dict[str, Any]:
        return {
            "driver": self.database.driver,
            "location": self.database.location,
            "from": self.before,
            "to": self.after,
            "head": self.database.head,
            "upgraded": self.changed,
        }


def upgrade(config: CAConfig) -> Upgrade:
    """Apply the migrations up to head, creating the schema (and a SQLite file) if needed.

    Refuses a schema newer than this build (it cannot be downgraded here). A schema already
    at head is only read (a read-only replica is fine). Safe to run on several appliances
    sharing PostgreSQL at once: see `migrate`'s lock."""
    state = database_state(config)
    if state.state is SchemaState.UNKNOWN:
        raise SchemaError(
            f"the database schema is at {state.revision}, newer than this step-ca knows (its "
            f"newest is {state.head}): a newer Stepstone upgraded it; it cannot go back"
        )
    if state.state is SchemaState.CURRENT:  # the usual case at each start: no write at all
        return Upgrade(state, state.revision, state.revision)
    where = f"cannot upgrade {state.location}"
    try:
        engine = open_engine(database_url(_db(config), config.base_dir))
    except DatabaseConfigError as exc:
        raise SchemaError(str(exc)) from None
    except OSError as exc:
        raise SchemaError(f"{where}: {exc.strerror or exc}") from None
    try:
        before, after = migrate(engine)
    except SQLAlchemyError as exc:
        raise SchemaError(f"{where}: {error_line(exc)}") from None
    except MigrationError as exc:
        raise SchemaError(f"{where}: {exc}") from None
    finally:
        engine.dispose()
    return Upgrade(state, before, after)
