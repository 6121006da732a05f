"""What the CA issued: filtered, keyset-paged reads of x509_certs for `step-ca certificates`.

Reads only, on a read-only connection: the CA need not run, and nothing needs its password.
Pages follow an index (migration 0003): newest first by (issued_at, serial), or soonest
expiry first by (not_after, serial); the cursor is the last row's key, so page N costs what
page 1 costs (no OFFSET), and rows issued meanwhile neither shift nor repeat a page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography import x509
from sqlalchemy import Engine, case, event, func, or_, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from appliance.config import CAConfig
from appliance.db.certrow import NAME_MAX
from appliance.db.models import revoked_x509_certs, x509_cert_names, x509_certs
from appliance.db.schema import SchemaError, require_current
from appliance.db.state import error_line, read_only_engine, read_only_url

State = Literal["valid", "expired", "revoked"]
Sort = Literal["issued", "expiry"]
STATES: tuple[State, ...] = ("valid", "expired", "revoked")
SORTS: tuple[Sort, ...] = ("issued", "expiry")
MAX_LIMIT = 10_000
# A name glob is planned by a probe of at most PROBE_NAMES index entries of its range (see
# `Inventory._names`): a range that holds at most SPARSE_NAMES matches is resolved to serials
# first (then that few rows are read and sorted); more matches, or a range too long to probe,
# and each row along the page's index is checked instead, where matches are dense enough for
# a page to fill quickly. The crossover of the two costs is near sqrt(50 * rows).
SPARSE_NAMES = 7_000
PROBE_NAMES = 20_000
SQLITE_MMAP = 1 << 30  # bytes of address space, not memory
SQLITE_CACHE_KIB = 64 * 1024

_c = x509_certs.c
_r = revoked_x509_certs.c
_n = x509_cert_names.c


class InventoryError(ValueError):
    """A bad filter or cursor, or a database that cannot be read: one line."""


@dataclass(frozen=True)
class Filters:
    """What to list; every filter given must hold. Times are aware; after is inclusive."""

    name: str | None = None  # glob over the subject's common name and the SANs
    provisioner: str | None = None
    serial: int | None = None
    issued_after: datetime | None = None
    issued_before: datetime | None = None
    expires_after: datetime | None = None
    expires_before: datetime | None = None
    state: State | None = None

    def default_sort(self) -> Sort:
        """Soonest expiry first when asked about expiry, else newest first."""
        expiring = self.expires_after is not None or self.expires_before is not None
        return "expiry" if expiring else "issued"


@dataclass(frozen=True)
class Revoked:
    """A revocation as recorded."""

    revoked_at: datetime
    reason_code: int
    reason: str
    provisioner: str
    token_id: str
    mtls: bool


@dataclass(frozen=True)
class Entry:
    """One issued certificate and what the CA recorded about it."""

    serial: int
    der: bytes
    provisioner: str
    issued_at: datetime
    not_after: datetime
    token_id: str | None
    revoked: Revoked | None

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    def state(self, now: datetime) -> State:
        """Revoked wins over expired."""
        if self.revoked is not None:
            return "revoked"
        return "expired" if self.not_after <= now else "valid"


@dataclass(frozen=True)
class Page:
    """A page of entries and the cursor of the next one (None: this was the last)."""

    entries: list[Entry]
    cursor: str | None


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; every stored one is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def glob_to_like(glob: str) -> str:
    """`*` and `?` to LIKE's `%` and `_`; a literal `%`, `_` or `\\` escaped with `\\`."""
    out = []
    for ch in glob:
        if ch in "\\%_":
            out.append("\\" + ch)
        else:
            out.append({"*": "%", "?": "_"}.get(ch, ch))
    return "".join(out)


def _after_prefix(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix` (code point order,
    which is UTF-8 byte order); None when there is none."""
    while prefix:
        point = ord(prefix[-1]) + 1
        if 0xD800 <= point <= 0xDFFF:
            point = 0xE000
        if point <= 0x10FFFF:
            return prefix[:-1] + chr(point)
        prefix = prefix[:-1]
    return None


def _range(column: Any, prefix: str) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [column >= prefix]
    upper = _after_prefix(prefix)
    if upper is not None:
        conds.append(column < upper)
    return conds


def name_match(glob: str) -> ColumnElement[bool]:
    """The test of x509_cert_names.name against `glob` (lowercased, as names are stored)."""
    pattern = glob.lower()[:NAME_MAX]
    if "*" not in pattern and "?" not in pattern:
        return _n.name == pattern
    return _n.name.like(glob_to_like(pattern), escape="\\")


def name_condition(glob: str) -> tuple[ColumnElement[bool], list[ColumnElement[bool]]]:
    """x509_cert_names rows matching `glob`: the full test, and the index range that holds
    them (on the longer literal end: `name` for a prefix, `rname` for a suffix; none when
    both ends are wildcards). Both use only the columns of one index.

    Names are stored lowercase, so the glob is lowercased too (DNS names ignore case).
    """
    pattern = glob.lower()[:NAME_MAX]
    wild = [i for i, ch in enumerate(pattern) if ch in "*?"]
    if not wild:
        return _n.name == pattern, [_n.name == pattern]
    prefix, suffix = pattern[: wild[0]], pattern[wild[-1] + 1 :]
    if suffix and len(suffix) > len(prefix):
        # Tested on rname too (the glob reversed matches the name reversed): the index
        # (rname, serial) then answers alone, without reading the table's rows.
        return _n.rname.like(glob_to_like(pattern[::-1]), escape="\\"), _range(
            _n.rname, suffix[::-1]
        )
    return name_match(glob), _range(_n.name, prefix) if prefix else []


def encode_cursor(sort: Sort, key: datetime, serial: str) -> str:
    raw = json.dumps([sort, _aware(key).astimezone(UTC).isoformat(), serial])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[datetime, str]:
    """The key a cursor holds; InventoryError if it is not one of ours, or for another sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, when, serial = json.loads(raw)
        key = datetime.fromisoformat(when)
        if kind not in SORTS or not isinstance(serial, str) or key.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InventoryError(f"invalid cursor {cursor!r}") from None
    if kind != sort:
        raise InventoryError(f"the cursor is for the '{kind}' order, not '{sort}'")
    return key.astimezone(UTC), serial


class Inventory:
    """Listing and lookup over one engine (a read-only one from `open_inventory`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _base(self, filters: Filters, now: datetime) -> Any:
        revoked_only = filters.state == "revoked"
        joined = (
            x509_certs.join(revoked_x509_certs, _r.serial == _c.serial)
            if revoked_only
            else x509_certs.outerjoin(revoked_x509_certs, _r.serial == _c.serial)
        )
        stmt = select(_c.serial, _c.issued_at, _c.not_after).select_from(joined)
        conds: list[ColumnElement[bool]] = []
        if filters.provisioner is not None:
            conds.append(_c.provisioner == filters.provisioner)
        if filters.serial is not None:
            conds.append(_c.serial == str(filters.serial))
        if filters.issued_after is not None:
            conds.append(_c.issued_at >= filters.issued_after.astimezone(UTC))
        if filters.issued_before is not None:
            conds.append(_c.issued_at < filters.issued_before.astimezone(UTC))
        if filters.expires_after is not None:
            conds.append(_c.not_after >= filters.expires_after.astimezone(UTC))
        if filters.expires_before is not None:
            conds.append(_c.not_after < filters.expires_before.astimezone(UTC))
        if filters.state == "valid":
            conds += [_r.serial.is_(None), _c.not_after > now]
        elif filters.state == "expired":
            conds += [_r.serial.is_(None), _c.not_after <= now]
        return stmt.where(*conds)

    def _names(self, conn: Any, glob: str) -> ColumnElement[bool]:
        """The certificates with a name matching `glob`, planned by a bounded probe.

        Few matches: `serial IN (names matching)`, the database reads that few rows and
        sorts them. Many, or a range too long to probe: each row along the page's index is
        checked for a matching name (EXISTS), stopping when the page is full.
        """
        match, span = name_condition(glob)
        probe = select(match.label("hit")).where(*span).limit(PROBE_NAMES).subquery()
        seen, hits = conn.execute(
            select(func.count(), func.coalesce(func.sum(case((probe.c.hit, 1), else_=0)), 0))
        ).one()
        if seen < PROBE_NAMES and hits <= SPARSE_NAMES:
            return _c.serial.in_(select(_n.serial).where(match, *span))
        # Per row, the primary key (serial, name) holds all the test needs.
        return select(_n.serial).where(_n.serial == _c.serial, name_match(glob)).exists()

    def page(
        self,
        filters: Filters,
        *,
        limit: int = 50,
        cursor: str | None = None,
        sort: Sort | None = None,
        now: datetime | None = None,
    ) -> Page:
        """Up to `limit` entries after `cursor`, in `sort` order (default: see Filters)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InventoryError(f"the limit must be between 1 and {MAX_LIMIT}")
        sort = sort or filters.default_sort()
        now = (now or datetime.now(UTC)).astimezone(UTC)
        stmt = self._base(filters, now)
        key_col = _c.issued_at if sort == "issued" else _c.not_after
        if cursor is not None:
            key, serial = decode_cursor(cursor, sort)
            if sort == "issued":  # newest first
                stmt = stmt.where(key_col <= key, or_(key_col < key, _c.serial < serial))
            else:
                stmt = stmt.where(key_col >= key, or_(key_col > key, _c.serial > serial))
        if sort == "issued":
            stmt = stmt.order_by(key_col.desc(), _c.serial.desc())
        else:
            stmt = stmt.order_by(key_col.asc(), _c.serial.asc())
        try:
            with self.engine.connect() as conn:
                if filters.name is not None:
                    stmt = stmt.where(self._names(conn, filters.name))
                keys = conn.execute(stmt.limit(limit + 1)).all()
                rows = _rows(conn, [k.serial for k in keys[:limit]])
                conn.rollback()
        except SQLAlchemyError as exc:
            raise InventoryError(f"cannot read the database: {error_line(exc)}") from None
        entries = [_entry(rows[k.serial]) for k in keys[:limit]]
        next_cursor = None
        if len(keys) > limit:
            last = keys[limit - 1]
            last_key = last.issued_at if sort == "issued" else last.not_after
            next_cursor = encode_cursor(sort, last_key, last.serial)
        return Page(entries, next_cursor)

    def all(
        self, filters: Filters, *, sort: Sort | None = None, page_size: int = 500
    ) -> Iterator[Entry]:
        """Every matching entry, page by page (one short read transaction per page)."""
        cursor: str | None = None
        while True:
            page = self.page(filters, limit=page_size, cursor=cursor, sort=sort)
            yield from page.entries
            if page.cursor is None:
                return
            cursor = page.cursor

    def get(self, serial: int) -> Entry | None:
        """The entry of one serial number, or None."""
        pages = self.page(Filters(serial=serial), limit=1)
        return pages.entries[0] if pages.entries else None


def _rows(conn: Any, serials: list[str]) -> dict[str, Any]:
    """The full rows of a page, read once the page's serials are known: the sort above
    carried keys only, not DER."""
    if not serials:
        return {}
    stmt = select(
        _c.serial, _c.der, _c.provisioner, _c.issued_at, _c.not_after, _c.token_id,
        _r.serial.label("r_serial"), _r.revoked_at, _r.reason_code, _r.reason,
        _r.provisioner.label("r_provisioner"), _r.token_id.label("r_token_id"), _r.mtls,
    ).select_from(x509_certs.outerjoin(revoked_x509_certs, _r.serial == _c.serial))  # fmt: skip
    return {row.serial: row for row in conn.execute(stmt.where(_c.serial.in_(serials)))}


def _entry(row: Any) -> Entry:
    revoked = None
    if row.r_serial is not None:
        revoked = Revoked(
            _aware(row.revoked_at), row.reason_code, row.reason, row.r_provisioner,
            row.r_token_id, bool(row.mtls),
        )  # fmt: skip
    return Entry(
        int(row.serial), row.der, row.provisioner, _aware(row.issued_at), _aware(row.not_after),
        row.token_id, revoked,
    )  # fmt: skip


def inventory_engine(url: URL) -> Engine:
    """A read-only engine (state.py's); on SQLite, reads memory-mapped with a larger cache:
    a page that resolves a name glob to serials reads thousands of scattered rows."""
    engine = read_only_engine(url)
    if url.get_backend_name() == "sqlite":

        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute(f"PRAGMA mmap_size={SQLITE_MMAP}")
            dbapi_conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")

        event.listen(engine, "connect", _pragmas)
    return engine


def open_inventory(config: CAConfig) -> Inventory:
    """A read-only Inventory on the database `config` names; InventoryError if its schema is
    not this build's (the line names the command to run) or it cannot be reached."""
    db = config.db.as_json() if config.db else None
    try:
        require_current(config)
        return Inventory(inventory_engine(read_only_url(db, config.base_dir)))
    except SchemaError as exc:
        raise InventoryError(str(exc)) from None
