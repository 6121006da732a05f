"""The audit log (beyond step-ca): every change to the CA's record, chained by SHA-256.

Each entry is appended in the transaction of the change it records (an issuance, a
revocation, a reload), so the two commit together or not at all. Entry `seq` (1, 2, 3...)
holds `hash = SHA-256(prev_hash || canonical JSON of [seq, at, kind, actor, request_id,
subject, serial, details])`, `prev_hash` being entry `seq - 1`'s hash (64 zeros for entry 1).
`verify` walks the chain and names the first entry that was edited, inserted or deleted.

The chain stays linear with several appliances: on PostgreSQL an append takes a transaction
advisory lock on a fixed key before it reads the head, so appends queue until the holder
commits; on SQLite the write transaction already excludes every other writer. `seq` is the
primary key, so a head read twice could only fail an insert, never fork the chain.

What a chain without an external anchor proves, and does not, is in docs/audit.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, insert, or_, select, text

from appliance.db.models import audit
from appliance.db.rawtx import InsertNew, RawTransaction, RawWriter
from appliance.logs import REQUEST_ID
from pki.errors import internal

GENESIS = "0" * 64
#: pg_advisory_xact_lock's key for the head of the chain ("STPAUDIT" as a 64-bit integer).
LOCK_KEY = int.from_bytes(b"STPAUDIT", "big")
_LOCK_SQL = f"SELECT pg_advisory_xact_lock({LOCK_KEY})"
_HEAD_SQL = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
_PAGE = 1000
_HEAD_MEMO = "audit.head"  # RawTransaction.memo: (seq, hash) of the transaction's last append
# `canonical`'s encoder, made once (json.dumps with options makes one per call).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
).encode


@dataclass(frozen=True)
class AuditEvent:
    """What happened and who did it; `append` gives it its place in the chain."""

    kind: str
    actor: str
    subject: str = ""
    serial: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    """None: the id of the request being served (appliance.logs.REQUEST_ID), if any."""


@dataclass(frozen=True)
class AuditEntry:
    """One stored entry, as hashed."""

    seq: int
    at: datetime
    kind: str
    actor: str
    request_id: str
    subject: str
    serial: str
    details: str
    prev_hash: str
    hash: str

    def row(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "actor": self.actor,
            "request_id": self.request_id,
            "subject": self.subject,
            "serial": self.serial,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    def expected_hash(self) -> str:
        """The hash of this entry's fields chained to its `prev_hash`."""
        return entry_hash(
            self.prev_hash,
            self.seq,
            self.at,
            self.kind,
            self.actor,
            self.request_id,
            self.subject,
            self.serial,
            self.details,
        )

    def to_json(self) -> dict[str, Any]:
        """For `step-ca audit list --format json`: details parsed, time in RFC 3339."""
        try:
            details: Any = json.loads(self.details)
        except ValueError:
            details = self.details
        return {**self.row(), "at": iso(self.at), "details": details}


def canonical(value: Any) -> str:
    """Compact JSON with sorted keys and ASCII only: one text for one value (anything JSON
    has no type for, a datetime say, as its str)."""
    return _CANONICAL(value)


def iso(at: datetime) -> str:
    """UTC to the microsecond, as both databases store it (SQLite hands back naive UTC)."""
    global _last_iso
    seen, text = _last_iso
    if at is seen:  # the entries of one batch share their time
        return text
    utc = at.astimezone(UTC) if at.tzinfo is not None else at
    text = utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _last_iso = (at, text)
    return text


_last_iso: tuple[object, str] = (object(), "")


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    kind: str,
    actor: str,
    request_id: str,
    subject: str,
    serial: str,
    details: str,
) -> str:
    """SHA-256 (hex) over the previous hash and the canonical encoding of the fields."""
    payload = canonical([seq, iso(at), kind, actor, request_id, subject, serial, details])
    return hashlib.sha256((prev_hash + payload).encode("ascii")).hexdigest()


def _text(value: str, size: int) -> str:
    """A value as its column stores it: no NUL (PostgreSQL refuses it), cut to the size."""
    return value.replace("\x00", "\\x00")[:size]


def _entry(event: AuditEvent, seq: int, prev_hash: str, now: datetime) -> AuditEntry:
    at = now.astimezone(UTC)
    rid = event.request_id if event.request_id is not None else REQUEST_ID.get() or ""
    fields = (
        _text(event.kind, 64),
        _text(event.actor, 1024),
        _text(rid, 128),
        _text(event.subject, 1024),
        _text(event.serial, 64),
        canonical(dict(event.details)),
    )
    return AuditEntry(seq, at, *fields, prev_hash, entry_hash(prev_hash, seq, at, *fields))


def _next(head: Any) -> tuple[int, str]:
    return (int(head[0]) + 1, str(head[1])) if head is not None else (1, GENESIS)


class AuditLog:
    """Appends on the issuance's raw transactions, the statements made once per engine."""

    def __init__(self, engine: Engine) -> None:
        self._insert = InsertNew(audit, audit.c.seq, engine)
        self._lock = _LOCK_SQL if engine.dialect.name == "postgresql" else None

    def append(self, tx: RawTransaction, event: AuditEvent, now: datetime) -> AuditEntry:
        """Chain `event` to the head in `tx`: (lock,) one read of the head, one insert.

        Later appends in the same transaction (a batch's) chain to the entry it appended
        last, without a read: nobody else can append before it ends (the lock, or SQLite's
        one writer). A rolled-back savepoint makes it forget that entry, and read again.
        """
        head = tx.memo.get(_HEAD_MEMO)
        if head is None:
            if self._lock is not None:
                tx.execute(self._lock)  # held until tx ends: the next append reads our entry
            seq, prev = _next(tx.fetch_one(_HEAD_SQL))
        else:
            seq, prev = head[0] + 1, head[1]
        entry = _entry(event, seq, prev, now)
        if not tx.insert_new(self._insert, entry.row()):
            raise internal(f"audit entry {seq} was appended by another writer")
        tx.memo[_HEAD_MEMO] = (seq, entry.hash)
        return entry


def append(conn: Connection, event: AuditEvent, now: datetime) -> AuditEntry:
    """`AuditLog.append` on a SQLAlchemy transaction (revocation). On SQLite the transaction
    must have written already, so that it holds the database's write lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(_LOCK_SQL))
    seq, prev = _next(conn.execute(text(_HEAD_SQL)).first())
    entry = _entry(event, seq, prev, now)
    conn.execute(insert(audit).values(entry.row()))
    return entry


def record(
    engine: Engine, events: Iterable[AuditEvent], now: datetime | None = None
) -> list[AuditEntry]:
    """Append `events` in a transaction of their own (a reload, a ceremony step)."""
    when = now or datetime.now(UTC)
    log = AuditLog(engine)
    with RawWriter(engine).transaction(immediate=True) as tx:
        return [log.append(tx, event, when) for event in events]


# --- reading -------------------------------------------------------------------------------


def _stored(row: Any) -> AuditEntry:
    at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
    return AuditEntry(
        int(row.seq),
        at,
        row.kind,
        row.actor,
        row.request_id,
        row.subject,
        row.serial,
        row.details,
        row.prev_hash,
        row.hash,
    )


def _pages(conn: Connection, query: Select[Any]) -> Iterator[AuditEntry]:
    """Rows in chain order, a page at a time by keyset (no offset, no whole-table fetch)."""
    last: int | None = None
    while True:
        page = query if last is None else query.where(audit.c.seq > last)
        rows = conn.execute(page.order_by(audit.c.seq).limit(_PAGE)).all()
        for row in rows:
            yield _stored(row)
        if len(rows) < _PAGE:
            return
        last = int(rows[-1].seq)


def entries(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: Iterable[str] = (),
) -> Iterator[AuditEntry]:
    """Entries in chain order, `since <= at <= until`; a kind matches itself and its
    sub-kinds (`certificate` matches `certificate.sign`)."""
    query = select(audit)
    if since is not None:
        query = query.where(audit.c.at >= since)
    if until is not None:
        query = query.where(audit.c.at <= until)
    wanted = list(kinds)
    if wanted:
        query = query.where(
            or_(
                *(
                    or_(audit.c.kind == k, audit.c.kind.startswith(k + ".", autoescape=True))
                    for k in wanted
                )
            )
        )
    with engine.connect() as conn:
        yield from _pages(conn, query)


@dataclass(frozen=True)
class Problem:
    """The first entry where the chain breaks, and how."""

    seq: int
    what: str


@dataclass(frozen=True)
class Verdict:
    """What `verify` found: the entries walked, the last one, the first problem if any."""

    entries: int
    head: AuditEntry | None
    problem: Problem | None


def _check(entry: AuditEntry, seq: int, prev: str) -> Problem | None:
    """The first thing wrong with `entry` where entry `seq` chained to `prev` was due."""
    if entry.seq > seq:
        gone = f"entry {seq}" if entry.seq == seq + 1 else f"entries {seq} to {entry.seq - 1}"
        return Problem(seq, f"{gone} missing: deleted")
    if entry.seq < seq:  # only before entry 1: the rows come in seq order
        return Problem(entry.seq, "numbered before entry 1: inserted")
    if entry.expected_hash() != entry.hash:
        return Problem(seq, "hash does not match the entry's content: edited or inserted")
    if entry.prev_hash != prev:
        return Problem(
            seq,
            f"prev_hash does not match entry {seq - 1}'s hash: entry {seq - 1} was rewritten "
            "or this entry was inserted",
        )
    return None


def verify(engine: Engine, anchor: tuple[int, str] | None = None) -> Verdict:
    """Walk the chain from entry 1; stop at the first problem. `anchor` (seq, hash): a head
    written down earlier, which must still be there unchanged (truncation, rewrites)."""
    count, prev, head = 0, GENESIS, None
    anchored = anchor is None
    with engine.connect() as conn:
        for entry in _pages(conn, select(audit)):
            problem = _check(entry, count + 1, prev)
            if problem is not None:
                return Verdict(count, head, problem)
            if anchor is not None and entry.seq == anchor[0]:
                if entry.hash != anchor[1].lower():
                    return Verdict(
                        count,
                        head,
                        Problem(entry.seq, f"hash {entry.hash} is not the anchored {anchor[1]}"),
                    )
                anchored = True
            count, prev, head = count + 1, entry.hash, entry
    if not anchored:
        assert anchor is not None
        return Verdict(
            count,
            head,
            Problem(anchor[0], f"anchored entry missing (the log ends at {count}): truncated"),
        )
    return Verdict(count, head, None)
