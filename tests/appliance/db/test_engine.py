"""ca.json's `db` block to a database URL: SQLite under STEPPATH, or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.db.engine import DatabaseConfigError, database_url, open_engine


def test_badger_directory_becomes_a_sqlite_file(tmp_path: Path) -> None:
    url = database_url({"type": "badgerv2", "dataSource": "db"}, tmp_path)
    assert url == f"sqlite:///{tmp_path / 'db' / 'stepstone.db'}"


def test_postgresql_url_uses_psycopg(tmp_path: Path) -> None:
    url = database_url({"dataSource": "postgresql://ca@127.0.0.1:5432/ca"}, tmp_path)
    assert url == "postgresql+psycopg://ca@127.0.0.1:5432/ca"


@pytest.mark.parametrize("source", ["mysql://ca@127.0.0.1/ca", "oracle://ca@127.0.0.1/ca"])
def test_other_databases_are_a_config_error(tmp_path: Path, source: str) -> None:
    with pytest.raises(DatabaseConfigError, match=r"^db\.dataSource: \w+ is not supported"):
        database_url({"dataSource": source}, tmp_path)


def test_sqlite_is_durable_and_keeps_statement_journals_in_memory(tmp_path: Path) -> None:
    engine = open_engine(database_url({}, tmp_path))
    try:
        with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
            assert pragma("PRAGMA temp_store").scalar() == 2  # MEMORY
    finally:
        engine.dispose()
    assert (tmp_path / "db" / "stepstone.db").stat().st_mode & 0o777 == 0o600
