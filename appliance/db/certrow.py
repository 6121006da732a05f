"""What the database stores for one issued certificate: its x509_certs row and its names.

Shared by the issuance hot path and migration 0003's backfill, so a name glob finds old and
new certificates alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine, Table

from appliance.db.models import x509_cert_names, x509_certs
from appliance.db.rawtx import InsertNew, RawTransaction

# Longest name kept (the column's size); a longer URI is cut, and a glob sees the cut form.
NAME_MAX = 1024


def cert_names(cert: x509.Certificate) -> list[str]:
    """The subject's common names and the DNS, email, IP and URI SANs: lowercase, unique.

    Lowercase because DNS names and email domains compare without case, and a lowercase glob
    can then use a plain index on every database.
    """
    found: list[str] = []
    for attr in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        value = attr.value
        found.append(value if isinstance(value, str) else value.decode(errors="replace"))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        found += san.get_values_for_type(x509.DNSName)
        found += san.get_values_for_type(x509.RFC822Name)
        found += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        found += san.get_values_for_type(x509.UniformResourceIdentifier)
    return list(dict.fromkeys(n.lower()[:NAME_MAX] for n in found if n))


def name_rows(serial: str, cert: x509.Certificate) -> list[dict[str, Any]]:
    """The x509_cert_names rows; `rname` (the name reversed) serves suffix globs."""
    return [{"serial": serial, "name": n, "rname": n[::-1]} for n in cert_names(cert)]


def cert_row(
    cert: x509.Certificate,
    provisioner: str,
    token_id: str | None,
    issued_at: datetime,
    subject: str | None = None,
) -> dict[str, Any]:
    """The x509_certs row of a certificate issued at `issued_at` for `token_id`'s token;
    `subject`: the certificate's `subject.rfc4514_string()` when the caller has it."""
    if subject is None:
        subject = cert.subject.rfc4514_string()
    return {
        "serial": str(cert.serial_number),
        "der": cert.public_bytes(Encoding.DER),
        "provisioner": provisioner,
        "subject": subject[:1024],
        "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc,
        "issued_at": issued_at,
        "token_id": token_id,
    }


class InsertRows(InsertNew):
    """A plain `INSERT` of every column, compiled once (InsertNew without ON CONFLICT).

    For the names of a certificate whose serial was just inserted: no conflict is possible.
    """

    def __init__(self, table: Table, engine: Engine) -> None:
        self._compile(table.insert(), table, engine.dialect)


class CertInsert:
    """The inserts of one certificate, compiled once per engine: its row, then its names."""

    def __init__(self, engine: Engine) -> None:
        self._cert = InsertNew(x509_certs, x509_certs.c.serial, engine)
        self._name = InsertRows(x509_cert_names, engine)

    def insert(self, tx: RawTransaction, row: dict[str, Any], cert: x509.Certificate) -> bool:
        """Insert `row` (from `cert_row`) and the names; False if the serial was taken."""
        if not tx.insert_new(self._cert, row):
            return False
        tx.insert_rows(self._name, name_rows(row["serial"], cert))
        return True
