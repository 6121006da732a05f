"""SSH certificates in the database: burn the token, sign, record, audit, in one transaction
(as Repository.issue does for X.509), and the host lookups `/ssh/check-host` and
`/ssh/hosts` answer from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from cryptography.hazmat.primitives.serialization import SSHCertificate, SSHCertificateType
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from appliance.db import audit
from appliance.db.audit import AuditEvent
from appliance.db.issuance import UsedToken
from appliance.db.models import revoked_ssh_certs, ssh_certs, ssh_principals, used_tokens
from appliance.db.repository import unique_violation_table
from appliance.ssh_keys import cert_wire
from pki.errors import bad_request, unauthorized, unavailable

# Signatures tried before giving up on a free serial (64 random bits: a clash is rare).
SERIAL_ATTEMPTS = 3


def cert_type_name(cert: SSHCertificate) -> str:
    return "user" if cert.type == SSHCertificateType.USER else "host"


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(min(seconds, 253402300799), UTC)  # uint64 "forever" clamps


class SSHStore:
    """SSH certificates and their principals over the CA's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _connection(self, *, write: bool = False) -> Iterator[Connection]:
        try:
            with self.engine.begin() if write else self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise unavailable(f"database unavailable: {exc.orig}") from None

    def issue(
        self,
        token: UsedToken | None,
        provisioner: str,
        build: Callable[[], SSHCertificate],
        event: AuditEvent,
    ) -> SSHCertificate:
        """Burn the token (a replay is 401 before anything is signed), then sign and record
        the certificate and append `event` to the audit log: all or nothing."""
        now = datetime.now(UTC)
        with self._connection(write=True) as conn:
            if token is not None:
                self._burn(conn, token, now)
            cert = self._record(conn, build, provisioner, token, now)
            audit.append(
                conn,
                AuditEvent(
                    event.kind,
                    event.actor,
                    subject=cert.key_id.decode(errors="replace"),
                    serial=str(cert.serial),
                    details=event.details,
                ),
                now,
            )
        return cert

    @staticmethod
    def _burn(conn: Connection, token: UsedToken, now: datetime) -> None:
        """The token's row; a primary-key conflict is a replay (401)."""
        try:
            with conn.begin_nested():
                conn.execute(insert(used_tokens).values(token.row(now)))
        except IntegrityError as exc:
            if unique_violation_table(exc) != used_tokens.name:
                raise
            raise unauthorized("authority.Authorize: token already used") from None

    def _record(
        self,
        conn: Connection,
        build: Callable[[], SSHCertificate],
        provisioner: str,
        token: UsedToken | None,
        now: datetime,
    ) -> SSHCertificate:
        for attempt in range(SERIAL_ATTEMPTS):
            cert = build()
            serial = str(cert.serial)
            kind = cert_type_name(cert)
            before = _at(cert.valid_before)
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(ssh_certs).values(
                            serial=serial,
                            cert_type=kind,
                            key_id=cert.key_id.decode(errors="replace"),
                            cert=cert_wire(cert),
                            provisioner=provisioner,
                            valid_after=_at(cert.valid_after),
                            valid_before=before,
                            issued_at=now,
                            token_id=token.id if token else None,
                        )
                    )
                    names = {p.decode(errors="replace").lower() for p in cert.valid_principals}
                    for name in sorted(names):
                        conn.execute(
                            insert(ssh_principals).values(
                                serial=serial, principal=name, cert_type=kind, valid_before=before
                            )
                        )
                return cert
            except IntegrityError as exc:
                if unique_violation_table(exc) not in (ssh_certs.name, ssh_principals.name):
                    raise
                if attempt == SERIAL_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def revoke(
        self,
        serial: int,
        reason_code: int,
        reason: str,
        provisioner: str,
        token: UsedToken | None,
        event: AuditEvent,
    ) -> None:
        """Record a passive revocation, burn its token and audit it, in one transaction; a
        serial revoked already is step-ca's 400."""
        now = datetime.now(UTC)
        with self._connection(write=True) as conn:
            if token is not None:
                self._burn(conn, token, now)
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(revoked_ssh_certs).values(
                            serial=str(serial),
                            reason_code=reason_code,
                            reason=reason,
                            revoked_at=now.replace(microsecond=0),
                            provisioner=provisioner,
                            token_id=token.id if token else "",
                        )
                    )
            except IntegrityError as exc:
                if unique_violation_table(exc) != revoked_ssh_certs.name:
                    raise
                raise bad_request("certificate with serial number "
                                  f"'{serial}' is already revoked") from None  # fmt: skip
            audit.append(
                conn,
                AuditEvent(event.kind, event.actor, serial=str(serial), details=event.details),
                now,
            )

    def is_revoked(self, serial: int) -> bool:
        query = select(revoked_ssh_certs.c.serial).where(revoked_ssh_certs.c.serial == str(serial))
        with self._connection() as conn:
            return conn.execute(query).first() is not None

    def is_host(self, principal: str) -> bool:
        """step-ca's IsSSHHost: a host certificate was ever issued for `principal`."""
        query = (
            select(ssh_principals.c.serial)
            .where(ssh_principals.c.cert_type == "host")
            .where(ssh_principals.c.principal == principal.lower())
            .limit(1)
        )
        with self._connection() as conn:
            return conn.execute(query).first() is not None

    def host_principals(self, now: datetime | None = None) -> list[str]:
        """step-ca's GetSSHHostPrincipals: principals of host certificates still valid."""
        when = now or datetime.now(UTC)
        query = (
            select(ssh_principals.c.principal)
            .where(ssh_principals.c.cert_type == "host")
            .where(ssh_principals.c.valid_before > when)
            .distinct()
            .order_by(ssh_principals.c.principal)
        )
        with self._connection() as conn:
            return [str(row[0]) for row in conn.execute(query)]

    def certificate(self, serial: int) -> bytes | None:
        """A recorded certificate's wire format."""
        query = select(ssh_certs.c.cert).where(ssh_certs.c.serial == str(serial))
        with self._connection() as conn:
            row = conn.execute(query).first()
        return bytes(row[0]) if row is not None else None
