"""The inventory's queries (appliance/inventory.py) on SQLite and PostgreSQL: every filter,
name globs (prefix, suffix, infix, exact, case, LIKE's % and _ taken literally, both plans),
states, keyset pages without gaps or repeats in both orders, and bad cursors and limits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, insert

import appliance.inventory as inventory_module
from appliance.db.certrow import cert_row, name_rows
from appliance.db.models import revoked_x509_certs, x509_cert_names, x509_certs
from appliance.inventory import Filters, Inventory, InventoryError, glob_to_like
from tests.appliance.db.conftest import engine, pg_server  # noqa: F401 (fixtures)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
_KEY = ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Spec:
    serial: int
    cn: str
    sans: tuple[str, ...] = ()
    provisioner: str = "admin"
    issued: timedelta = timedelta(0)  # before NOW
    life: timedelta = timedelta(hours=24)
    revoked: bool = False


def _cert(spec: Spec) -> x509.Certificate:
    issued = NOW - spec.issued
    general: list[x509.GeneralName] = []
    for san in spec.sans:
        if "@" in san:
            general.append(x509.RFC822Name(san))
        elif "://" in san:
            general.append(x509.UniformResourceIdentifier(san))
        elif san.replace(".", "").isdigit():
            general.append(x509.IPAddress(ip_address(san)))
        else:
            general.append(x509.DNSName(san))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, spec.cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Issuer")]))
        .public_key(_KEY.public_key())
        .serial_number(spec.serial)
        .not_valid_before(issued - timedelta(minutes=1))
        .not_valid_after(issued + spec.life)
    )
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    return builder.sign(_KEY, hashes.SHA256())


def store(db: Engine, specs: list[Spec]) -> None:
    """Rows as the issuance writes them (certrow), with chosen issue times."""
    with db.begin() as conn:
        for spec in specs:
            cert = _cert(spec)
            row = cert_row(cert, spec.provisioner, f"jti-{spec.serial}", NOW - spec.issued)
            conn.execute(insert(x509_certs).values(**row))
            names = name_rows(row["serial"], cert)
            if names:
                conn.execute(insert(x509_cert_names), names)
            if spec.revoked:
                conn.execute(
                    insert(revoked_x509_certs).values(
                        serial=row["serial"], reason_code=1, reason="lost", revoked_at=NOW,
                        expires_at=cert.not_valid_after_utc, provisioner="admin",
                        token_id="rev-1", mtls=False,
                    )
                )  # fmt: skip


SPECS = [
    Spec(1, "web-1.example.com", ("web-1.example.com", "10.0.0.1"), issued=timedelta(hours=1)),
    Spec(2, "WEB-2.Example.COM", ("WEB-2.Example.COM",), "acme", timedelta(hours=2)),
    Spec(3, "db.internal.test", ("db.internal.test", "ops@example.com"), "k8s",
         timedelta(days=2)),
    Spec(4, "api.example.com", ("spiffe://example.com/api",), "acme", timedelta(hours=3),
         revoked=True),
    Spec(5, "100%_sure.test", ("100%_sure.test",), "admin", timedelta(days=3)),
    Spec(6, "1000xsure.test", ("1000xsure.test",), "admin", timedelta(days=4)),
    Spec(7, "old.example.com", (), "k8s", timedelta(days=10), life=timedelta(days=30)),
    Spec(8, "gone.example.com", (), "acme", timedelta(days=20), revoked=True),
]  # fmt: skip


@pytest.fixture
def inv(engine: Engine) -> Iterator[Inventory]:  # noqa: F811 (the imported fixture)
    store(engine, SPECS)
    yield Inventory(engine)


def serials(inv: Inventory, filters: Filters, **kw: object) -> list[int]:
    page = inv.page(filters, now=NOW, limit=100, **kw)  # type: ignore[arg-type]
    assert page.cursor is None
    return [e.serial for e in page.entries]


def test_newest_first_by_default_and_each_entry_is_complete(inv: Inventory) -> None:
    assert serials(inv, Filters()) == [1, 2, 4, 3, 5, 6, 7, 8]
    entry = inv.get(4)
    assert entry is not None
    assert (entry.provisioner, entry.token_id, entry.issued_at) == (
        "acme",
        "jti-4",
        NOW - timedelta(hours=3),
    )
    assert entry.cert.serial_number == 4
    assert entry.not_after == NOW - timedelta(hours=3) + timedelta(hours=24)
    assert entry.revoked is not None
    assert (entry.revoked.reason_code, entry.revoked.reason, entry.revoked.token_id) == (
        1,
        "lost",
        "rev-1",
    )
    assert inv.get(99) is None


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("web-1.example.com", [1]),  # exact
        ("web-*", [1, 2]),  # prefix; stored lowercase
        ("WEB-?.EXAMPLE.COM", [1, 2]),  # the glob's case does not matter either
        ("*.example.com", [1, 2, 4, 7, 8]),  # suffix
        ("*internal*", [3]),  # neither end literal
        ("10.0.0.*", [1]),  # an IP SAN
        ("ops@*", [3]),  # an email SAN
        ("spiffe://example.com/*", [4]),  # a URI SAN
        ("*", [1, 2, 4, 3, 5, 6, 7, 8]),
        ("nothing*", []),
    ],
)
def test_name_globs(inv: Inventory, glob: str, expected: list[int]) -> None:
    assert serials(inv, Filters(name=glob)) == expected


@pytest.mark.parametrize(
    ("glob", "expected"), [("100%_sure.test", [5]), ("100%*", [5]), ("*_sure.test", [5])]
)
def test_percent_and_underscore_are_literal(inv: Inventory, glob: str, expected: list[int]) -> None:
    """As LIKE wildcards, '100%_sure' would match 1000xsure.test too."""
    assert serials(inv, Filters(name=glob)) == expected
    assert glob_to_like("a%b_c\\d*e?") == "a\\%b\\_c\\\\d%e_"


def test_both_plans_of_a_name_glob_agree(inv: Inventory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Few matches: serials first; many: a check per row (forced here with a limit of 0)."""
    globs = ["*.example.com", "web-*", "*internal*", "100%_sure.test", "*"]
    sparse = [serials(inv, Filters(name=g, state="valid")) for g in globs]
    monkeypatch.setattr(inventory_module, "SPARSE_NAMES", 0)
    assert [serials(inv, Filters(name=g, state="valid")) for g in globs] == sparse
    monkeypatch.setattr(inventory_module, "PROBE_NAMES", 1)
    assert [serials(inv, Filters(name=g, state="valid")) for g in globs] == sparse


def test_provisioner_and_serial(inv: Inventory) -> None:
    assert serials(inv, Filters(provisioner="acme")) == [2, 4, 8]
    assert serials(inv, Filters(provisioner="nobody")) == []
    assert serials(inv, Filters(serial=3)) == [3]
    assert serials(inv, Filters(serial=3, provisioner="acme")) == []


def test_issued_and_expiring_windows(inv: Inventory) -> None:
    """After is inclusive, before exclusive; the expiry filters sort soonest first."""
    assert serials(inv, Filters(issued_after=NOW - timedelta(hours=2))) == [1, 2]
    assert serials(inv, Filters(issued_before=NOW - timedelta(hours=2))) == [4, 3, 5, 6, 7, 8]
    window = Filters(issued_after=NOW - timedelta(days=3), issued_before=NOW - timedelta(hours=2))
    assert serials(inv, window) == [4, 3, 5]
    assert serials(inv, Filters(expires_after=NOW)) == [4, 2, 1, 7]
    assert serials(inv, Filters(expires_before=NOW)) == [8, 6, 5, 3]
    assert serials(inv, Filters(expires_before=NOW), sort="issued") == [3, 5, 6, 8]
    week = Filters(expires_after=NOW, expires_before=NOW + timedelta(days=7))
    assert serials(inv, week) == [4, 2, 1]


def test_states(inv: Inventory) -> None:
    """Revoked wins over expired; valid is neither."""
    assert serials(inv, Filters(state="valid")) == [1, 2, 7]
    assert serials(inv, Filters(state="expired")) == [3, 5, 6]
    assert serials(inv, Filters(state="revoked")) == [4, 8]
    states = {e.serial: e.state(NOW) for e in inv.page(Filters(), now=NOW, limit=100).entries}
    assert states == {1: "valid", 2: "valid", 3: "expired", 4: "revoked", 5: "expired",
                      6: "expired", 7: "valid", 8: "revoked"}  # fmt: skip
    assert serials(inv, Filters(state="revoked", provisioner="acme", name="api.*")) == [4]


def _walk(inv: Inventory, filters: Filters, limit: int, sort: str | None = None) -> list[int]:
    seen: list[int] = []
    cursor = None
    while True:
        page = inv.page(filters, limit=limit, cursor=cursor, sort=sort, now=NOW)  # type: ignore[arg-type]
        assert len(page.entries) <= limit
        seen += [e.serial for e in page.entries]
        if page.cursor is None:
            return seen
        assert len(page.entries) == limit
        cursor = page.cursor


@pytest.mark.parametrize("sort", ["issued", "expiry"])
@pytest.mark.parametrize("limit", [1, 3, 7, 50])
def test_pages_have_no_gaps_or_repeats(engine: Engine, sort: str, limit: int) -> None:  # noqa: F811
    """Ties on the sort key (same issue time, same expiry) are broken by serial."""
    specs = [
        Spec(100 + i, f"h{i}.tie.test", (f"h{i}.tie.test",), issued=timedelta(hours=i // 4),
             life=timedelta(hours=24 + (i % 3)))
        for i in range(23)
    ]  # fmt: skip
    store(engine, specs)
    inv = Inventory(engine)
    everything = serials(inv, Filters(), sort=sort)
    assert sorted(everything) == [s.serial for s in specs]
    assert _walk(inv, Filters(), limit, sort) == everything
    only = Filters(name="*.tie.test", state="valid")
    assert _walk(inv, only, limit, sort) == serials(inv, only, sort=sort)


def test_rows_issued_while_paging_do_not_shift_pages(inv: Inventory, engine: Engine) -> None:  # noqa: F811
    first = inv.page(Filters(), limit=3, now=NOW)
    store(engine, [Spec(50, "new.example.com", issued=timedelta(seconds=-10))])
    second = inv.page(Filters(), limit=3, cursor=first.cursor, now=NOW)
    assert [e.serial for e in first.entries + second.entries] == [1, 2, 4, 3, 5, 6]


def test_bad_cursor_and_limit(inv: Inventory) -> None:
    page = inv.page(Filters(), limit=2, now=NOW)
    assert page.cursor is not None
    with pytest.raises(InventoryError, match="the cursor is for the 'issued' order, not 'expiry'"):
        inv.page(Filters(), cursor=page.cursor, sort="expiry")
    for bad in ("nonsense", "", "eyJ4IjoxfQ", page.cursor[:-3]):
        with pytest.raises(InventoryError, match="invalid cursor"):
            inv.page(Filters(), cursor=bad)
    for limit in (0, -1, 10_001):
        with pytest.raises(InventoryError, match="between 1 and 10000"):
            inv.page(Filters(), limit=limit)
