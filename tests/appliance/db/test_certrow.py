"""What the database keeps of an issued certificate for the inventory (appliance/db/certrow.py,
migration 0003): validity start, burned token id and lowercase names, written by the issuance
in its transaction, and backfilled from the DER for rows stored before 0003."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine, insert, select

from appliance.db.certrow import NAME_MAX, cert_names
from appliance.db.engine import migrate, open_engine
from appliance.db.models import x509_cert_names, x509_certs
from appliance.db.repository import Repository
from tests.appliance.db.conftest import DATABASES, fresh_pg_database, make_token

_KEY = ec.generate_private_key(ec.SECP256R1())


def _cert(serial: int, cn: str | None, sans: list[x509.GeneralName]) -> x509.Certificate:
    now = datetime.now(UTC)
    attrs = [x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)] if cn else []
    attrs.append(x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Org"))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "CA")]))
        .public_key(_KEY.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(_KEY, hashes.SHA256())


MIXED = [
    x509.DNSName("Web.Example.COM"),
    x509.DNSName("web.example.com"),  # the same name once lowercased: kept once
    x509.IPAddress(ip_address("2001:DB8::1")),
    x509.RFC822Name("Ops@Example.com"),
    x509.UniformResourceIdentifier("spiffe://Example.com/API"),
    x509.DirectoryName(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "dir")])),
]


def test_names_are_the_cn_and_sans_lowercase_once() -> None:
    names = cert_names(_cert(1, "WEB.example.com", MIXED))
    assert names == [
        "web.example.com",
        "ops@example.com",
        "2001:db8::1",
        "spiffe://example.com/api",
    ]
    assert cert_names(_cert(2, None, [])) == []
    long_uri = "https://example.com/" + "a" * 2000
    assert cert_names(_cert(3, None, [x509.UniformResourceIdentifier(long_uri)])) == [
        long_uri[:NAME_MAX]
    ]


def test_issuance_stores_names_token_and_validity(engine: Engine) -> None:
    repo = Repository(engine)
    cert = _cert(
        77, "Host.Example.com", [x509.DNSName("host.example.com"), x509.DNSName("alt.test")]
    )
    repo.issue(make_token("jti-77"), "admin", lambda: cert)
    repo.issue(None, "renewal", lambda: _cert(78, "r.test", []))  # no token: no id
    with engine.connect() as conn:
        row = conn.execute(select(x509_certs).where(x509_certs.c.serial == "77")).one()
        names = conn.execute(
            select(x509_cert_names.c.name, x509_cert_names.c.rname)
            .where(x509_cert_names.c.serial == "77")
            .order_by(x509_cert_names.c.name)
        ).all()
        other = conn.execute(select(x509_certs.c.token_id).where(x509_certs.c.serial == "78"))
        assert other.scalar_one() is None
    assert row.token_id == "jti-77"
    assert row.not_before.replace(tzinfo=UTC) == cert.not_valid_before_utc
    assert row.der == cert.public_bytes(Encoding.DER)
    assert [tuple(n) for n in names] == [
        ("alt.test", "tset.tla"),
        ("host.example.com", "moc.elpmaxe.tsoh"),
    ]


def test_a_serial_clash_writes_no_names(engine: Engine) -> None:
    """The names follow the certificate row: a clash signs again, names of the retry only."""
    repo = Repository(engine)
    repo.issue(make_token("a"), "admin", lambda: _cert(5, "first.test", []))
    attempts = iter([_cert(5, "clash.test", []), _cert(6, "retry.test", [])])
    repo.issue(make_token("b"), "admin", lambda: next(attempts))
    with engine.connect() as conn:
        rows = conn.execute(
            select(x509_cert_names.c.serial, x509_cert_names.c.name).order_by(
                x509_cert_names.c.serial
            )
        ).all()
    assert [tuple(r) for r in rows] == [("5", "first.test"), ("6", "retry.test")]


@pytest.mark.parametrize("database", DATABASES)
def test_migration_backfills_rows_stored_before_it(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if database == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
    else:
        url = fresh_pg_database(request.getfixturevalue("pg_server"))
    engine = open_engine(url)
    try:
        assert migrate(engine, "0002")[1] == "0002"
        certs = [
            _cert(
                1000 + i,
                f"Old-{i}.Example.com",
                [x509.DNSName(f"old-{i}.example.com"), x509.DNSName(f"x{i}.test")],
            )
            for i in range(1203)
        ]  # fmt: skip  (more than one batch of the backfill)
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(  # the 0002 columns only
                insert(x509_certs),
                [
                    {"serial": str(c.serial_number), "der": c.public_bytes(Encoding.DER),
                     "provisioner": "admin", "subject": c.subject.rfc4514_string(),
                     "not_after": c.not_valid_after_utc, "issued_at": now}
                    for c in certs
                ],
            )  # fmt: skip
        migrate(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                select(x509_certs.c.serial, x509_certs.c.not_before, x509_certs.c.token_id)
            ).all()
            names = conn.execute(select(x509_cert_names.c.serial, x509_cert_names.c.name)).all()
        by_serial = {str(c.serial_number): c for c in certs}
        assert len(rows) == len(certs)
        for serial, not_before, token_id in rows:
            assert token_id is None  # not recorded before 0003
            assert not_before.replace(tzinfo=UTC) == by_serial[serial].not_valid_before_utc
        expected = {(s, n) for s, c in by_serial.items() for n in cert_names(c)}
        assert {tuple(r) for r in names} == expected
        assert ("1005", "old-5.example.com") in expected
        # After the backfill, new rows go through the issuance as usual.
        Repository(engine).issue(make_token(), "admin", lambda: _cert(9, "new.test", []))
    finally:
        engine.dispose()
