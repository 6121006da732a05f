"""The audit log's chain (appliance/db/audit.py): appends in the change's transaction, and
`verify` naming the first entry edited, inserted or deleted directly in SQL, on SQLite and
PostgreSQL; two processes appending at once on PostgreSQL keep one linear chain."""

from __future__ import annotations

import itertools
import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import Engine, delete, insert, select, update

from appliance.db.audit import (
    GENESIS,
    AuditEntry,
    AuditEvent,
    AuditLog,
    Verdict,
    entries,
    entry_hash,
    record,
    verify,
)
from appliance.db.engine import migrate, open_engine
from appliance.db.models import audit, x509_certs
from appliance.db.rawtx import RawTransaction
from appliance.db.repository import Repository, Revocation
from appliance.logs import REQUEST_ID
from pki.errors import CAError, ErrorKind
from tests.appliance.db.conftest import Builder, count, fresh_pg_database, make_token
from tests.appliance.db.test_issuance import Batches


def _chain(engine: Engine) -> list[AuditEntry]:
    return list(entries(engine))


def _intact(verdict: Verdict, n: int) -> None:
    assert verdict.problem is None, verdict.problem
    assert verdict.entries == n
    assert (verdict.head.seq if verdict.head else 0) == n


def _five(engine: Engine) -> list[AuditEntry]:
    """Five entries of a small history: three issuances, a revocation, a reload."""
    repo = Repository(engine)
    for serial in (10, 11, 12):
        repo.issue(make_token(f"t{serial}"), "admin", Builder(serial))
    repo.revoke(Revocation(11, 1, "key compromise", "admin", "", True, datetime.now(UTC)), None)
    record(engine, [AuditEvent("config.reload", "local:root")])
    chain = _chain(engine)
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    return chain


# --- appending -----------------------------------------------------------------------------


def test_each_change_appends_one_chained_entry(engine: Engine) -> None:
    chain = _five(engine)
    assert [e.kind for e in chain] == [
        "certificate.sign",
        "certificate.sign",
        "certificate.sign",
        "certificate.revoke",
        "config.reload",
    ]
    assert [e.serial for e in chain[:4]] == ["10", "11", "12", "11"]
    assert chain[0].subject == "CN=s10.test" and chain[3].subject == "CN=s11.test"
    assert chain[0].actor == "admin"  # Repository.issue without an event: the provisioner
    assert chain[0].prev_hash == GENESIS
    for before, entry in itertools.pairwise(chain):
        assert entry.prev_hash == before.hash
    assert all(e.hash == e.expected_hash() for e in chain)
    _intact(verify(engine), 5)


def test_the_event_and_the_request_id_are_stored(engine: Engine) -> None:
    repo = Repository(engine)
    event = AuditEvent("certificate.renew", "admin:CN=old", details={"from_serial": "9"})
    token = REQUEST_ID.set("req-42")
    try:
        repo.issue(None, "admin", Builder(20), event)
    finally:
        REQUEST_ID.reset(token)
    (entry,) = _chain(engine)
    assert (entry.kind, entry.actor, entry.request_id, entry.serial) == (
        "certificate.renew",
        "admin:CN=old",
        "req-42",
        "20",
    )
    assert entry.to_json()["details"] == {"from_serial": "9"}


def test_a_refused_change_appends_nothing(engine: Engine) -> None:
    repo = Repository(engine)
    repo.issue(make_token("t"), "admin", Builder(10))
    with pytest.raises(CAError):
        repo.issue(make_token("t"), "admin", Builder(11))  # replay
    with pytest.raises(RuntimeError):
        repo.issue(make_token("u"), "admin", Builder(12, fail=RuntimeError("HSM unplugged")))
    rev = Revocation(99, 0, "", "admin", "", True, datetime.now(UTC))
    with pytest.raises(CAError) as err:
        repo.revoke(rev, None)  # unknown serial
    assert err.value.kind is ErrorKind.NOT_FOUND
    assert count(repo, audit) == 1
    _intact(verify(engine), 1)


def test_revocation_entry_names_the_reason(engine: Engine) -> None:
    repo = Repository(engine)
    repo.issue(None, "admin", Builder(10))
    event = AuditEvent("certificate.revoke", "admin:10", details={"provisioner": "admin"})
    repo.revoke(
        Revocation(10, 4, "superseded", "admin", "jti-9", False, datetime.now(UTC)),
        make_token("jti-9"),
        event,
    )
    entry = _chain(engine)[-1]
    assert (entry.kind, entry.actor, entry.serial) == ("certificate.revoke", "admin:10", "10")
    assert entry.to_json()["details"] == {
        "mtls": False,
        "provisioner": "admin",
        "reason": "superseded",
        "reason_code": 4,
        "token_id": "jti-9",
    }


def test_batch_failure_under_its_savepoint_leaves_no_entry(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: a request that fails after its audit append is undone with it (its
    savepoint); the batch's other entries still form one chain."""
    real = AuditLog.append

    def fail_for_11(self: AuditLog, tx: RawTransaction, event: AuditEvent, now: Any) -> Any:
        entry = real(self, tx, event, now)
        if event.serial == "11":
            raise RuntimeError("after the append")
        return entry

    monkeypatch.setattr(AuditLog, "append", fail_for_11)
    repo = Repository(engine, group_commit=True)
    batches = Batches(repo)
    batches.run(
        {
            "a": (make_token("a"), Builder(10)),
            "b": (make_token("b"), Builder(11)),
            "c": (make_token("c"), Builder(12)),
        }
    )
    assert isinstance(batches.outcomes["b"], RuntimeError)
    assert all(isinstance(batches.outcomes[n], x509.Certificate) for n in ("first", "a", "c"))
    chain = _chain(engine)
    assert sorted(e.serial for e in chain) == ["1", "10", "12"]
    assert not repo.is_issued(11)
    _intact(verify(engine), 3)


def test_list_filters_by_time_and_kind(engine: Engine) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    record(engine, [AuditEvent("certificate.sign", "a")], t0)
    record(engine, [AuditEvent("certificate.revoke", "b")], t0 + timedelta(days=1))
    record(engine, [AuditEvent("config.reload", "c")], t0 + timedelta(days=2))
    record(engine, [AuditEvent("certificate_x", "d")], t0 + timedelta(days=3))
    assert [e.actor for e in entries(engine, kinds=["certificate"])] == ["a", "b"]
    assert [e.actor for e in entries(engine, kinds=["config.reload", "certificate.sign"])] == [
        "a",
        "c",
    ]
    since = t0 + timedelta(hours=12)
    until = t0 + timedelta(days=2)
    assert [e.actor for e in entries(engine, since=since, until=until)] == ["b", "c"]
    assert _chain(engine)[0].at == t0


def test_many_entries_are_walked_page_by_page(engine: Engine) -> None:
    record(engine, [AuditEvent("config.reload", str(i)) for i in range(2100)])
    _intact(verify(engine), 2100)
    assert [e.actor for e in entries(engine)][-1] == "2099"


# --- tampering -----------------------------------------------------------------------------


def _forge(entry: AuditEntry, **changes: Any) -> dict[str, Any]:
    """`entry` changed, with the hash recomputed as an attacker who knows the scheme would."""
    row = {**entry.row(), **changes}
    row["hash"] = entry_hash(
        row["prev_hash"],
        row["seq"],
        row["at"],
        row["kind"],
        row["actor"],
        row["request_id"],
        row["subject"],
        row["serial"],
        row["details"],
    )
    return row


def _tamper(engine: Engine, how: str, chain: list[AuditEntry]) -> None:
    with engine.begin() as conn:
        if how == "edit":
            conn.execute(update(audit).where(audit.c.seq == 3).values(actor="mallory"))
        elif how == "edit-details":
            conn.execute(update(audit).where(audit.c.seq == 4).values(details='{"reason":""}'))
        elif how == "edit-and-rehash":
            conn.execute(delete(audit).where(audit.c.seq == 2))
            conn.execute(insert(audit).values(_forge(chain[1], actor="mallory")))
        elif how == "delete":
            conn.execute(delete(audit).where(audit.c.seq == 3))
        elif how == "delete-first":
            conn.execute(delete(audit).where(audit.c.seq == 1))
        elif how == "insert-middle":  # renumber 3..5 to 4..6, forge a 3 that chains to 2
            for seq in (5, 4, 3):
                conn.execute(update(audit).where(audit.c.seq == seq).values(seq=seq + 1))
            conn.execute(insert(audit).values(_forge(chain[2], actor="mallory")))
        elif how == "insert-end":
            conn.execute(insert(audit).values({**chain[4].row(), "seq": 6, "actor": "mallory"}))
        elif how == "insert-before":
            conn.execute(insert(audit).values({**chain[0].row(), "seq": 0}))


@pytest.mark.parametrize(
    ("how", "seq", "words"),
    [
        ("edit", 3, "hash does not match"),
        ("edit-details", 4, "hash does not match"),
        ("edit-and-rehash", 3, "prev_hash does not match entry 2's hash"),
        ("delete", 3, "entry 3 missing: deleted"),
        ("delete-first", 1, "entry 1 missing: deleted"),
        ("insert-middle", 4, "hash does not match"),
        ("insert-end", 6, "hash does not match"),
        ("insert-before", 0, "numbered before entry 1: inserted"),
    ],
)
def test_verify_names_the_first_tampered_entry(
    engine: Engine, how: str, seq: int, words: str
) -> None:
    chain = _five(engine)
    _tamper(engine, how, chain)
    verdict = verify(engine)
    assert verdict.problem is not None, how
    assert verdict.problem.seq == seq, verdict.problem
    assert words in verdict.problem.what


def test_a_truncated_tail_is_caught_only_against_an_anchor(engine: Engine) -> None:
    chain = _five(engine)
    with engine.begin() as conn:
        conn.execute(delete(audit).where(audit.c.seq >= 4))
    _intact(verify(engine), 3)  # what a chain alone cannot see
    verdict = verify(engine, anchor=(5, chain[4].hash))
    assert verdict.problem is not None and verdict.problem.seq == 5
    assert "truncated" in verdict.problem.what
    assert verify(engine, anchor=(3, chain[2].hash)).problem is None
    wrong = verify(engine, anchor=(2, chain[2].hash))
    assert wrong.problem is not None and wrong.problem.seq == 2


# --- two appliances --------------------------------------------------------------------------


def _appender(url: str, first: int, n: int, errors: Any) -> None:
    engine = open_engine(url)
    repo = Repository(engine, group_commit=False)
    try:
        for i in range(first, first + n):
            if i % 2:
                repo.issue(make_token(f"t{i}"), "admin", Builder(i))
            else:
                record(engine, [AuditEvent("config.reload", f"p{first}")])
    except Exception as exc:
        errors.put(repr(exc))
    finally:
        engine.dispose()


def test_two_processes_appending_on_postgresql_keep_one_chain(pg_server: str) -> None:
    url = fresh_pg_database(pg_server)
    engine = open_engine(url)
    migrate(engine)
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_appender, args=(url, first, 60, errors)) for first in (1000, 2000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    assert errors.empty(), errors.get()
    _intact(verify(engine), 120)
    with engine.connect() as conn:
        assert len(conn.execute(select(x509_certs.c.serial)).all()) == 60
    engine.dispose()
