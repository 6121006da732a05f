"""Deferred batches (Repository.deferred, appliance/db/issuance.py): issuances run one after
the other on one thread share one transaction, each undone alone when it fails; a database
failure or a failed commit leaves nothing of the batch stored and says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from appliance.db.engine import migrate, open_engine
from appliance.db.models import used_tokens, x509_certs
from appliance.db.rawtx import RawTransaction
from appliance.db.repository import Repository
from pki.errors import CAError, ErrorKind
from tests.appliance.db.conftest import Builder, count, make_token


def test_a_batch_commits_once_and_spares_the_others_of_a_failure(
    engine: Engine, commits: list[int]
) -> None:
    repo = Repository(engine)
    with repo.deferred() as batch:
        first = repo.issue(make_token("a"), "admin", Builder(10))
        with pytest.raises(RuntimeError):
            repo.issue(make_token("b"), "admin", Builder(11, fail=RuntimeError("HSM gone")))
        with pytest.raises(CAError) as replay:
            repo.issue(make_token("a"), "admin", Builder(12))
        second = repo.issue(make_token("c"), "admin", Builder(13))
        if engine.dialect.name == "sqlite":
            assert commits == [], "nothing is committed before the batch ends"
    assert batch.error is None
    assert (first.serial_number, second.serial_number) == (10, 13)
    assert replay.value.kind is ErrorKind.UNAUTHORIZED
    # SQLite: one commit for the batch; PostgreSQL: each issuance commits by itself.
    assert len(commits) == (1 if engine.dialect.name == "sqlite" else 2)
    assert (count(repo, x509_certs), count(repo, used_tokens)) == (2, 2)
    assert repo.is_issued(10) and repo.is_issued(13)
    assert not repo.is_issued(11) and not repo.is_issued(12)
    # The failed request's token was rolled back with it: it is still good.
    assert repo.issue(make_token("b"), "admin", Builder(14)).serial_number == 14


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """Only SQLite batches issuances: PostgreSQL commits each one (the test above)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'ca.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def test_a_failed_commit_stores_nothing_and_says_so(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repository(sqlite_engine)

    def fails(_tx: RawTransaction) -> None:
        raise OperationalError("COMMIT", None, Exception("disk I/O error"))

    monkeypatch.setattr(RawTransaction, "_commit", fails)
    with repo.deferred() as batch:
        cert = repo.issue(make_token("a"), "admin", Builder(10))
    assert isinstance(cert, x509.Certificate)
    assert isinstance(batch.error, CAError) and batch.error.kind is ErrorKind.UNAVAILABLE
    monkeypatch.undo()
    assert (count(repo, x509_certs), count(repo, used_tokens)) == (0, 0)
    # The writer lock and the connection were given back: the next batch works.
    with repo.deferred() as batch:
        repo.issue(make_token("a"), "admin", Builder(11))
    assert batch.error is None and repo.is_issued(11)


def test_a_database_failure_fails_the_rest_of_the_batch(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repository(sqlite_engine)
    real = RawTransaction.insert_new

    def broken(tx: RawTransaction, statement: object, values: object) -> bool:
        if getattr(values, "get", lambda _k: None)("id") == "b":
            raise OperationalError("INSERT", None, Exception("database is locked"))
        return real(tx, statement, values)  # type: ignore[arg-type]

    monkeypatch.setattr(RawTransaction, "insert_new", broken)
    with repo.deferred() as batch:
        repo.issue(make_token("a"), "admin", Builder(10))
        for token in ("b", "c"):
            with pytest.raises(CAError) as failed:
                repo.issue(make_token(token), "admin", Builder(11))
            assert failed.value.kind is ErrorKind.UNAVAILABLE
    assert batch.error is not None
    monkeypatch.undo()
    assert count(repo, x509_certs) == 0, "the batch's first issuance was rolled back too"


def test_outside_a_batch_each_issuance_commits_alone(engine: Engine, commits: list[int]) -> None:
    repo = Repository(engine)
    with repo.deferred():
        pass
    repo.issue(make_token("a"), "admin", Builder(10))
    assert len(commits) == 1 and repo.is_issued(10)
