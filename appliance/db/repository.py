"""The CA's reads and writes, each in one short transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from appliance.db.models import used_tokens, x509_certs
from provisioners.errors import unauthorized, unavailable


@dataclass(frozen=True)
class UsedToken:
    """A token id to burn together with the certificate it paid for."""

    id: str
    provisioner: str
    expires_at: datetime


class Repository:
    """Certificates and single-use tokens over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_issuance(self, token: UsedToken, cert: x509.Certificate, provisioner: str) -> None:
        """Burn the token and store the certificate atomically.

        The token row is a plain INSERT on a primary key, so two appliances sharing the
        database cannot both accept one token: the loser gets a unique violation (401) and its
        certificate is never returned. Nothing is written when anything fails.
        """
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(used_tokens).values(
                        id=token.id,
                        provisioner=token.provisioner,
                        used_at=now,
                        expires_at=token.expires_at,
                    )
                )
                conn.execute(
                    insert(x509_certs).values(
                        serial=str(cert.serial_number),
                        der=cert.public_bytes(Encoding.DER),
                        provisioner=provisioner,
                        subject=cert.subject.rfc4514_string()[:1024],
                        not_after=cert.not_valid_after_utc,
                        issued_at=now,
                    )
                )
        except IntegrityError:
            raise unauthorized("authority.Authorize: token already used") from None
        except OperationalError as exc:
            raise unavailable(f"database unavailable: {exc.orig}") from None

    def certificate(self, serial: int) -> x509.Certificate | None:
        """An issued certificate by serial, or None."""
        with self.engine.connect() as conn:
            der = conn.execute(
                select(x509_certs.c.der).where(x509_certs.c.serial == str(serial))
            ).scalar_one_or_none()
        return x509.load_der_x509_certificate(der) if der is not None else None

    def token_used(self, token_id: str) -> bool:
        """Whether a token id has been spent."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(used_tokens.c.id).where(used_tokens.c.id == token_id)
            ).first()
        return found is not None

    def purge_tokens(self, before: datetime) -> int:
        """Forget token ids whose tokens expired before `before` (they fail the time check)."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(used_tokens).where(used_tokens.c.expires_at < before))
        return int(result.rowcount or 0)
