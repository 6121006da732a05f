"""The CA's reads and writes, each in one transaction.

A taken key is never guessed from an error message: issuance inserts with `ON CONFLICT (key)
DO NOTHING` and reads the row count (appliance/db/rawtx.py); revocation tells unique
violations apart by the table the database names: on used_tokens a replay, on
revoked_x509_certs a second revocation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography import x509
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError

from appliance.db.audit import AuditEvent
from appliance.db.audit import append as append_audit
from appliance.db.issuance import SERIAL_ATTEMPTS as SERIAL_ATTEMPTS
from appliance.db.issuance import DeferredCommit, Issuance, TokenAlreadyUsed
from appliance.db.issuance import UsedToken as UsedToken
from appliance.db.models import crls, revoked_x509_certs, used_tokens, x509_certs
from appliance.metrics import TOKEN_REPLAYS
from pki.errors import CAError, ErrorKind, bad_request, unauthorized, unavailable

_PG_UNIQUE_VIOLATION = "23505"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the placeholder CRL row's times (never committed)
_SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"})
_SQLITE_UNIQUE_MESSAGE = re.compile(r"UNIQUE constraint failed: (\w+)\.")


@dataclass(frozen=True)
class Revocation:
    """Who revoked which serial, when and why."""

    serial: int
    reason_code: int
    reason: str
    provisioner: str
    token_id: str
    mtls: bool
    revoked_at: datetime


@dataclass(frozen=True)
class RevokedEntry:
    """One CRL / OCSP entry."""

    serial: int
    revoked_at: datetime
    reason_code: int


@dataclass(frozen=True)
class StoredCRL:
    """The current CRL."""

    number: int
    der: bytes
    this_update: datetime
    next_update: datetime


class Repository:
    """Certificates and single-use tokens over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, *, group_commit: bool | None = None) -> None:
        self.engine = engine
        self._issuance = Issuance(engine, group_commit=group_commit)

    @contextmanager
    def _connection(self, *, write: bool = False) -> Iterator[Connection]:
        """A connection, in a transaction when `write`. A database that cannot be reached or
        stays locked past its timeout is `unavailable` (a 503), for reads as for writes."""
        try:
            with self.engine.begin() if write else self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise unavailable(f"database unavailable: {exc.orig}") from None

    @staticmethod
    def _replayed(token: UsedToken) -> CAError:
        """A token burned before (here or on another appliance): counted, and unauthorized."""
        TOKEN_REPLAYS.labels(token.provisioner).inc()
        return unauthorized("authority.Authorize: token already used")

    @classmethod
    def _burn(cls, conn: Connection, token: UsedToken | None, now: datetime) -> None:
        """Insert the token's row: a primary-key conflict means it was used before (unauthorized).

        On PostgreSQL a concurrent INSERT of the same id waits for the first transaction to
        end and then fails, so a replay racing the first use never gets past this line.
        """
        if token is None:
            return
        try:
            conn.execute(insert(used_tokens).values(token.row(now)))
        except IntegrityError as exc:
            if unique_violation_table(exc) != used_tokens.name:
                raise
            raise cls._replayed(token) from None

    def expecting(self) -> AbstractContextManager[None]:
        """Around a request that will `issue` unless it is refused first (a signing request
        checking its token and CSR): an issuance batch about to start waits a little for it,
        so the two share one durable commit (appliance/db/groupcommit.py). A no-op without
        group commit."""
        return self._issuance.expecting()

    def deferred(self) -> AbstractContextManager[DeferredCommit]:
        """Around requests run one after the other on one thread (the worker's event loop)
        that are answered only once it ends: their issuances share one transaction, committed
        at the end; the batch's `error` is set if that failed, and then none of them was
        stored. On PostgreSQL each issuance commits by itself and the batch is empty."""
        return self._issuance.deferred()

    def issue(
        self,
        token: UsedToken | None,
        provisioner: str,
        build: Callable[[], x509.Certificate],
        audit: AuditEvent | None = None,
    ) -> x509.Certificate:
        """Burn the token, then sign (`build`) and store the certificate, in one transaction.

        The token row is written first, so a replay (here, or on another appliance sharing
        the database) is refused as unauthorized before any (HSM) signature is made: on
        PostgreSQL a concurrent burn of the same id waits for the first transaction to end,
        so a replay racing the first use never gets past it. The certificate row joins the
        same transaction: both commit together or not at all, and the certificate is returned
        only after the commit. A failure or crash after the burn rolls the token back and no
        certificate leaves the CA unrecorded. A serial already stored is signed again with a
        new serial, the burn kept; it is never reported as a replay.

        The hot path (appliance/db/issuance.py): both inserts run on the pooled DB-API
        connection, and on SQLite concurrent issuances of a worker share one durable commit.

        The audit entry (`audit`, its subject and serial the certificate's; by default a
        `certificate.sign` by the provisioner) is appended in the same transaction.
        """
        try:
            return self._issuance.issue(token, provisioner, build, audit)
        except TokenAlreadyUsed:
            assert token is not None
            raise self._replayed(token) from None

    def revoke(
        self, rev: Revocation, token: UsedToken | None, audit: AuditEvent | None = None
    ) -> None:
        """Record a revocation in the transaction that burns the token and checks the serial.

        Token replayed: unauthorized (checked first, as step-ca authorises before it looks the
        serial up). Unknown serial: not found. Already revoked: step-ca's bad request. Any
        failure writes nothing; a database that cannot be reached is `unavailable`. The audit
        entry (`audit`'s kind, actor and request id; by default the provisioner's) joins the
        same transaction.
        """
        serial = str(rev.serial)
        with self._connection(write=True) as conn:
            self._burn(conn, token, rev.revoked_at)
            found = conn.execute(
                select(x509_certs.c.not_after, x509_certs.c.subject).where(
                    x509_certs.c.serial == serial
                )
            ).first()
            if found is None:
                raise CAError(
                    ErrorKind.NOT_FOUND,
                    f"revoke: serial {serial} not found",
                    public=f"certificate with serial number '{serial}' was not found",
                )
            try:
                conn.execute(
                    insert(revoked_x509_certs).values(
                        serial=serial,
                        reason_code=rev.reason_code,
                        reason=rev.reason[:1024],
                        revoked_at=rev.revoked_at,
                        expires_at=found.not_after,
                        provisioner=rev.provisioner,
                        token_id=rev.token_id,
                        mtls=rev.mtls,
                    )
                )
            except IntegrityError as exc:
                if unique_violation_table(exc) != revoked_x509_certs.name:
                    raise
                raise bad_request(
                    f"certificate with serial number '{serial}' is already revoked"
                ) from None
            event = audit or AuditEvent("certificate.revoke", rev.provisioner)
            details = {
                "reason_code": rev.reason_code,
                "reason": rev.reason,
                "token_id": rev.token_id,
                "mtls": rev.mtls,
                **event.details,
            }
            append_audit(
                conn,
                replace(event, subject=found.subject, serial=serial, details=details),
                rev.revoked_at,
            )

    def revocation(self, serial: int) -> RevokedEntry | None:
        """The revocation of a serial, or None."""
        with self._connection() as conn:
            row = conn.execute(
                select(revoked_x509_certs.c.revoked_at, revoked_x509_certs.c.reason_code).where(
                    revoked_x509_certs.c.serial == str(serial)
                )
            ).first()
        if row is None:
            return None
        return RevokedEntry(serial, _aware(row.revoked_at), int(row.reason_code))

    def is_revoked(self, serial: int) -> bool:
        return self.revocation(serial) is not None

    def is_issued(self, serial: int) -> bool:
        """Whether this CA issued (and stored) a certificate with this serial."""
        with self._connection() as conn:
            found = conn.execute(
                select(x509_certs.c.serial).where(x509_certs.c.serial == str(serial))
            ).first()
        return found is not None

    def revoked_since(self, expired_after: datetime) -> list[RevokedEntry]:
        """Revocations of certificates that expired after `expired_after` (CRL entries)."""
        with self._connection() as conn:
            rows = conn.execute(
                select(
                    revoked_x509_certs.c.serial,
                    revoked_x509_certs.c.revoked_at,
                    revoked_x509_certs.c.reason_code,
                )
                .where(revoked_x509_certs.c.expires_at > expired_after)
                .order_by(revoked_x509_certs.c.revoked_at)
            ).all()
        return [RevokedEntry(int(r.serial), _aware(r.revoked_at), int(r.reason_code)) for r in rows]

    def current_crl(self) -> StoredCRL | None:
        with self._connection() as conn:
            row = conn.execute(select(crls).where(crls.c.id == 1)).first()
        if row is None:
            return None
        return StoredCRL(
            int(row.number), bytes(row.der), _aware(row.this_update), _aware(row.next_update)
        )

    def replace_crl(self, build: Callable[[int], StoredCRL]) -> StoredCRL:
        """Take the next CRL number and store the CRL `build(number)` makes, atomically.

        The row is made first if missing (`ON CONFLICT DO NOTHING`, a placeholder this same
        transaction overwrites), then the number is bumped by an UPDATE, which takes the write
        lock (SQLite) or the row lock (PostgreSQL): concurrent generators, on one appliance or
        several, even the very first ones, queue there and get distinct, growing numbers.
        """
        with self._connection(write=True) as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(
                dialect.insert(crls)
                .values(id=1, number=0, der=b"", this_update=_EPOCH, next_update=_EPOCH)
                .on_conflict_do_nothing(index_elements=[crls.c.id])
            )
            conn.execute(update(crls).where(crls.c.id == 1).values(number=crls.c.number + 1))
            number = int(conn.execute(select(crls.c.number).where(crls.c.id == 1)).scalar_one())
            crl = build(number)
            conn.execute(
                update(crls)
                .where(crls.c.id == 1)
                .values(
                    number=crl.number,
                    der=crl.der,
                    this_update=crl.this_update,
                    next_update=crl.next_update,
                )
            )
        return crl

    def certificate(self, serial: int) -> x509.Certificate | None:
        """An issued certificate by serial, or None."""
        with self._connection() as conn:
            der = conn.execute(
                select(x509_certs.c.der).where(x509_certs.c.serial == str(serial))
            ).scalar_one_or_none()
        return x509.load_der_x509_certificate(der) if der is not None else None

    def purge_tokens(self, before: datetime) -> int:
        """Forget token ids whose tokens expired before `before` (they fail the time check)."""
        with self._connection(write=True) as conn:
            result = conn.execute(delete(used_tokens).where(used_tokens.c.expires_at < before))
        return int(result.rowcount or 0)


def unique_violation_table(exc: IntegrityError) -> str | None:
    """The table whose primary key or unique constraint `exc` violated, from the driver's
    report (PostgreSQL's SQLSTATE and diagnostics, SQLite's extended error code); None for any
    other integrity error, so a NOT NULL or foreign-key failure is never mistaken for one."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:  # psycopg
        if sqlstate != _PG_UNIQUE_VIOLATION:
            return None
        table = getattr(getattr(orig, "diag", None), "table_name", None)
        return str(table) if table else None
    if getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE:
        found = _SQLITE_UNIQUE_MESSAGE.match(str(orig))
        return found.group(1) if found else None
    return None


def _aware(value: datetime) -> datetime:
    """In UTC (datetime.UTC): SQLite hands back naive datetimes (they were stored as UTC),
    psycopg aware ones in the session's TimeZone (e.g. ZoneInfo('Etc/UTC')), which
    email.utils.format_datetime(usegmt=True) refuses."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
