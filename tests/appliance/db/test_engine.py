"""ca.json's `db` block to a database URL: SQLite under STEPPATH, or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.db.engine import DatabaseConfigError, database_url


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
