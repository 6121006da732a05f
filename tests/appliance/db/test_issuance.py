"""The issuance hot path (appliance/db/issuance.py, rawtx.py, groupcommit.py): the rows it
stores, replays, serial collisions, rollbacks, and batches sharing one commit, on SQLite and on
PostgreSQL (the writer lock: test_writerlock.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import REGISTRY
from sqlalchemy import Engine, create_engine, insert, select
from sqlalchemy.exc import OperationalError

from appliance.db.engine import migrate, open_engine
from appliance.db.groupcommit import GroupCommit, Job
from appliance.db.models import used_tokens, x509_certs
from appliance.db.rawtx import RawTransaction
from appliance.db.repository import Repository, UsedToken
from pki.errors import CAError, ErrorKind
from tests.appliance.db.conftest import Builder, count, fresh_pg_database, make_cert, make_token
from tests.postgres import free_port

Outcome = x509.Certificate | BaseException


def _replays(provisioner: str = "admin") -> float:
    return (
        REGISTRY.get_sample_value("stepstone_token_replays_total", {"provisioner": provisioner})
        or 0.0
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- one issuance -----------------------------------------------------------------------


def test_rows_are_the_ones_core_reads_back(engine: Engine) -> None:
    repo = Repository(engine)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    before = datetime.now(UTC)
    cert = repo.issue(UsedToken("jti-1", "admin", expires), "admin", Builder(10))
    with engine.connect() as conn:
        row = conn.execute(select(x509_certs)).one()
        tok = conn.execute(select(used_tokens)).one()
    assert (row.serial, bytes(row.der), row.provisioner) == (
        "10",
        cert.public_bytes(Encoding.DER),
        "admin",
    )
    assert row.subject == cert.subject.rfc4514_string() == "CN=s10.test"
    assert _aware(row.not_after) == cert.not_valid_after_utc
    assert before <= _aware(row.issued_at) <= datetime.now(UTC)
    assert (tok.id, tok.provisioner, _aware(tok.expires_at)) == ("jti-1", "admin", expires)
    assert _aware(tok.used_at) == _aware(row.issued_at)
    # The cold paths compare these columns in SQL: a token that expired is purged, not ours.
    assert repo.purge_tokens(expires - timedelta(seconds=1)) == 0
    assert repo.purge_tokens(expires + timedelta(seconds=1)) == 1


def test_sqlite_stores_datetimes_as_core_does(tmp_path: Path) -> None:
    """Same text format as SQLAlchemy's DateTime, so SQL comparisons with Core rows hold."""
    engine = open_engine(f"sqlite:///{tmp_path / 'ca.db'}")
    migrate(engine)
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    Repository(engine).issue(UsedToken("hot", "p", when), "p", Builder(10))
    with engine.begin() as conn:
        conn.execute(
            insert(used_tokens).values(id="core", provisioner="p", used_at=when, expires_at=when)
        )
    engine.dispose()
    with sqlite3.connect(tmp_path / "ca.db") as raw:
        stored = dict(raw.execute("SELECT id, expires_at FROM used_tokens").fetchall())
    assert stored == {"hot": "2030-01-02 03:04:05.000000", "core": "2030-01-02 03:04:05.000000"}


def test_replay_is_refused_before_signing_and_counted(engine: Engine) -> None:
    repo = Repository(engine)
    repo.issue(make_token(), "admin", Builder(10))
    replays = _replays()
    again = Builder(11)
    with pytest.raises(CAError) as err:
        repo.issue(make_token(), "admin", again)
    assert err.value.kind is ErrorKind.UNAUTHORIZED
    assert err.value.reason == "authority.Authorize: token already used"
    assert again.calls == 0, "a replay must cost no signature"
    assert _replays() == replays + 1
    assert (count(repo, x509_certs), count(repo, used_tokens)) == (1, 1)


def test_forced_duplicate_serial_is_signed_again(engine: Engine) -> None:
    repo = Repository(engine)
    repo.issue(None, "", Builder(10))
    build = Builder(10, 12)
    replays = _replays()
    cert = repo.issue(make_token(), "admin", build)
    assert (cert.serial_number, build.calls) == (12, 2)
    assert repo.certificate(12) == cert and repo.certificate(10) != cert
    assert (count(repo, x509_certs), count(repo, used_tokens)) == (2, 1)
    assert _replays() == replays, "a serial collision is not a replay"


def test_failed_build_burns_no_token(engine: Engine) -> None:
    repo = Repository(engine)
    with pytest.raises(RuntimeError, match="HSM unplugged"):
        repo.issue(make_token(), "admin", Builder(10, fail=RuntimeError("HSM unplugged")))
    assert (count(repo, x509_certs), count(repo, used_tokens)) == (0, 0)
    assert repo.issue(make_token(), "admin", Builder(10)).serial_number == 10


def test_unreachable_postgresql_is_503_and_signs_nothing() -> None:
    engine = create_engine(f"postgresql+psycopg://ca@127.0.0.1:{free_port()}/ca")
    build = Builder(10)
    with pytest.raises(CAError) as err:
        Repository(engine).issue(make_token(), "admin", build)
    assert err.value.kind is ErrorKind.UNAVAILABLE
    assert err.value.reason.startswith("database unavailable: ")
    assert build.calls == 0


# --- group commit -----------------------------------------------------------------------


class Batches:
    """Issuances arranged into two batches: `first` alone (its signature waits until the
    others are queued behind it), then all the others in one transaction."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.outcomes: dict[str, Outcome] = {}

    def _run(
        self, name: str, token: UsedToken | None, build: Callable[[], x509.Certificate]
    ) -> None:
        try:
            self.outcomes[name] = self.repo.issue(token, "admin", build)
        except BaseException as exc:
            self.outcomes[name] = exc

    def _queued(self) -> int:
        group = self.repo._issuance._group
        assert group is not None
        with group._mutex:
            return len(group._queue)

    def run(
        self, others: dict[str, tuple[UsedToken | None, Callable[[], x509.Certificate]]]
    ) -> None:
        signing, release = threading.Event(), threading.Event()

        def held_build() -> x509.Certificate:
            signing.set()
            assert release.wait(30)
            return make_cert(1)

        threads = [
            threading.Thread(target=self._run, args=("first", make_token("first"), held_build))
        ]
        threads[0].start()
        assert signing.wait(30)
        for name, (token, build) in others.items():
            threads.append(threading.Thread(target=self._run, args=(name, token, build)))
            threads[-1].start()
        deadline = time.monotonic() + 30
        while self._queued() < len(others):
            assert time.monotonic() < deadline, "the others never queued"
            time.sleep(0.001)
        release.set()
        for t in threads:
            t.join(30)


def test_queued_issuances_share_one_commit(engine: Engine, commits: list[int]) -> None:
    repo = Repository(engine, group_commit=True)
    batches = Batches(repo)
    batches.run({f"r{i}": (make_token(f"r{i}"), Builder(10 + i)) for i in range(4)})
    assert all(isinstance(o, x509.Certificate) for o in batches.outcomes.values()), batches.outcomes
    assert len(commits) == 2, "the four queued requests were committed together"
    assert (count(repo, x509_certs), count(repo, used_tokens)) == (5, 5)


def test_a_failure_in_a_batch_spares_the_others(engine: Engine, commits: list[int]) -> None:
    repo = Repository(engine, group_commit=True)
    batches = Batches(repo)
    batches.run(
        {
            "ok": (make_token("shared"), Builder(10)),
            "broken": (make_token("broken"), Builder(11, fail=RuntimeError("HSM unplugged"))),
            "replay": (make_token("shared"), Builder(12)),
            "collides": (make_token("collides"), Builder(10, 13)),
        }
    )
    out = batches.outcomes
    assert isinstance(out["ok"], x509.Certificate) and out["ok"].serial_number == 10
    assert isinstance(out["broken"], RuntimeError)
    assert isinstance(out["replay"], CAError) and out["replay"].kind is ErrorKind.UNAUTHORIZED
    assert isinstance(out["collides"], x509.Certificate) and out["collides"].serial_number == 13
    assert len(commits) == 2
    assert not repo.is_issued(11) and not repo.is_issued(12)
    # The failed request's token was rolled back with it: it is still good.
    assert repo.issue(make_token("broken"), "admin", Builder(14)).serial_number == 14


def test_a_failed_commit_hands_out_no_certificate(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repository(engine, group_commit=True)
    real = RawTransaction._commit
    calls: list[int] = []

    def second_fails(tx: RawTransaction) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("COMMIT", None, Exception("disk I/O error"))
        real(tx)

    monkeypatch.setattr(RawTransaction, "_commit", second_fails)
    batches = Batches(repo)
    batches.run({"a": (make_token("a"), Builder(10)), "b": (make_token("b"), Builder(11))})
    assert isinstance(batches.outcomes["first"], x509.Certificate)
    for name in ("a", "b"):
        failed = batches.outcomes[name]
        assert isinstance(failed, CAError) and failed.kind is ErrorKind.UNAVAILABLE
        assert failed.reason == "database unavailable: disk I/O error"
    assert (count(repo, x509_certs), count(repo, used_tokens)) == (1, 1)


def test_a_broken_batch_runner_wakes_every_waiter() -> None:
    def broken(items: list[int], jobs: list[Job[int]]) -> None:
        raise RuntimeError("bug")

    group: GroupCommit[int, int] = GroupCommit(broken)
    with pytest.raises(RuntimeError, match="bug"):
        group.submit(1)
    assert not group._leading, "the lead was given up"

    def double(items: list[int], jobs: list[Job[int]]) -> None:
        for item, job in zip(items, jobs, strict=True):
            job.finish(item * 2, None)

    assert GroupCommit(double).submit(21) == 42


def test_a_child_process_does_not_wait_for_the_parents_batch(
    tmp_path: Path, pg_server: str
) -> None:
    """A batch the parent was running when it forked never ends in the child."""
    engine = open_engine(fresh_pg_database(pg_server))
    migrate(engine)
    repo = Repository(engine, group_commit=True)
    signing, release = threading.Event(), threading.Event()

    def held() -> x509.Certificate:
        signing.set()
        assert release.wait(30)
        return make_cert(1)

    parent = threading.Thread(target=repo.issue, args=(make_token("parent"), "admin", held))
    parent.start()
    assert signing.wait(30)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        signal.alarm(20)
        engine.dispose(close=False)
        code = 1
        try:
            code = (
                0 if repo.issue(make_token("child"), "admin", Builder(2)).serial_number == 2 else 1
            )
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    release.set()
    parent.join(30)
    assert os.waitstatus_to_exitcode(status) == 0
    assert repo.is_issued(1) and repo.is_issued(2)
    engine.dispose()
