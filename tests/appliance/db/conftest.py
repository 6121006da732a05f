"""A migrated database for each test: a SQLite file, or a fresh database on a private
PostgreSQL server (one server per test session, one database per test)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, Table, func, select

from appliance.db.engine import migrate, open_engine
from appliance.db.rawtx import RawTransaction
from appliance.db.repository import Repository, UsedToken
from tests.postgres import postgres_server

DATABASES = ["sqlite", "postgresql"]
_names = itertools.count()
_KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(serial: int, days: float = 1) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"s{serial}.test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=3))
        .not_valid_after(now + timedelta(days=days))
        .sign(_KEY, hashes.SHA256())
    )


class Builder:
    """A `build` callable that hands out certificates with the given serials and counts calls
    (each call stands for one signature)."""

    def __init__(self, *serials: int, fail: Exception | None = None) -> None:
        self.serials = list(serials)
        self.fail = fail
        self.calls = 0

    def __call__(self) -> x509.Certificate:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return make_cert(self.serials.pop(0) if len(self.serials) > 1 else self.serials[0])


def make_token(id_: str = "jti-1") -> UsedToken:
    return UsedToken(id_, "admin", datetime.now(UTC) + timedelta(minutes=5))


def count(repo: Repository, table: Table) -> int:
    with repo.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def fresh_pg_database(server: str) -> str:
    """The SQLAlchemy URL of a new, empty database on `server`."""
    name = f"t{os.getpid()}_{next(_names)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The appliance's engine (engine.py's settings), schema at head."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ca.db'}"
    else:
        url = fresh_pg_database(request.getfixturevalue("pg_server"))
    engine = open_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per commit of the hot path."""
    done: list[int] = []
    real = RawTransaction._commit

    def counting(tx: RawTransaction) -> None:
        real(tx)
        done.append(1)

    monkeypatch.setattr(RawTransaction, "_commit", counting)
    return done
