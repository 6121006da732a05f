"""`step-ca certificates list` at scale: one filtered page from a 1,000,000-row SQLite table.

Not a test: fills a SQLite database (schema at head, through the migrations) with `--rows`
certificates issued over a year (a quarter of them under one of five provisioners each, a
name under one of 200 teams, a second name for one in five, 1% revoked, 5% with 90-day
lifetimes, the rest 24 hours), then times `Inventory.page` for realistic filters on a
read-only connection, as the CLI opens it. The fill is a bulk load (indexes built after the
rows, no journal); no ANALYZE is run, as none runs on an appliance. Target: under 100 ms a page.

    .venv/bin/python -m bench.inventory                # 1,000,000 rows in a temporary folder
    .venv/bin/python -m bench.inventory --rows 20000 --db /tmp/inv.db --keep
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import make_url

from appliance.db.engine import migrate, open_engine
from appliance.inventory import Filters, Inventory, Page, inventory_engine

PROVISIONERS = ["admin", "acme", "k8s", "x5c-renew", "ops@example.com"]
TEAMS = 200
HOSTS = 50_000
TARGET_MS = 100.0


def _ders(count: int) -> list[bytes]:
    """A few real certificates whose DER the rows share (a page's rows are not parsed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.example.com")])
    return [
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(i + 1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(hours=24))
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
        for i in range(count)
    ]


def _ts(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text (UTC)."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def fill(path: Path, rows: int, now: datetime, seed: int = 1) -> None:
    """The database at `path`: schema by the migrations, then `rows` certificates."""
    engine = open_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    rnd = random.Random(seed)
    ders = _ders(64)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
        " AND tbl_name IN ('x509_certs', 'x509_cert_names')"
    ).fetchall()
    db.execute("BEGIN")
    for name, _ in indexes:
        db.execute(f'DROP INDEX "{name}"')
    step = timedelta(days=365) / rows
    start = now - timedelta(days=365)
    serials = list({rnd.getrandbits(127) | 1 << 126: None for _ in range(rows)})
    names: list[tuple[str, str, str]] = []
    revoked: list[tuple[object, ...]] = []

    def certs() -> Iterator[tuple[object, ...]]:
        for i, serial in enumerate(serials):
            issued = start + step * i
            life = timedelta(days=90) if rnd.random() < 0.05 else timedelta(hours=24)
            host = f"host{rnd.randrange(HOSTS)}.team{rnd.randrange(TEAMS)}.svc.example.com"
            s = str(serial)
            names.append((s, host, host[::-1]))
            if rnd.random() < 0.2:
                ip = f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(256)}"
                names.append((s, ip, ip[::-1]))
            if rnd.random() < 0.01:
                revoked.append(
                    (s, 1, "key compromise", _ts(issued + timedelta(hours=1)),
                     _ts(issued + life), "admin", f"rev-{i}", False)
                )  # fmt: skip
            yield (
                s, ders[i % len(ders)], rnd.choice(PROVISIONERS), f"CN={host}",
                _ts(issued - timedelta(minutes=1)), _ts(issued + life), _ts(issued), f"jti-{i}",
            )  # fmt: skip

    db.executemany(
        "INSERT INTO x509_certs (serial, der, provisioner, subject, not_before, not_after,"
        " issued_at, token_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        certs(),
    )
    db.executemany("INSERT INTO x509_cert_names (serial, name, rname) VALUES (?, ?, ?)", names)
    db.executemany(
        "INSERT INTO revoked_x509_certs (serial, reason_code, reason, revoked_at, expires_at,"
        " provisioner, token_id, mtls) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        revoked,
    )
    for _, sql in indexes:
        db.execute(sql)
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def scenarios(now: datetime, serial: str) -> list[tuple[str, Filters]]:
    """Filters an operator runs (see the module docstring for the data)."""
    return [
        ("newest, no filter", Filters()),
        ("provisioner acme, valid", Filters(provisioner="acme", state="valid")),
        ("name *.team42.svc.example.com", Filters(name="*.team42.svc.example.com")),
        ("name *.team42.svc.example.com, valid", Filters(name="*.team42.svc.example.com",
                                                          state="valid")),
        ("name host123.*", Filters(name="host123.*")),
        ("name 10.1.2.*", Filters(name="10.1.2.*")),
        ("name *.example.com, valid", Filters(name="*.example.com", state="valid")),
        ("expiring within 7 days, valid", Filters(expires_after=now,
                                                  expires_before=now + timedelta(days=7),
                                                  state="valid")),
        ("issued in the last 24h", Filters(issued_after=now - timedelta(hours=24))),
        ("issued in March, provisioner k8s", Filters(
            provisioner="k8s", issued_after=now - timedelta(days=270),
            issued_before=now - timedelta(days=240))),
        ("revoked", Filters(state="revoked")),
        ("expired, provisioner admin", Filters(provisioner="admin", state="expired")),
        ("serial", Filters(serial=int(serial))),
    ]  # fmt: skip


def _time(run: Callable[[], Page], repeat: int) -> tuple[float, float, Page]:
    """Median and worst milliseconds of `repeat` runs, and the page."""
    times = []
    page = run()  # warm the page cache: the timings are of a running system
    for _ in range(repeat):
        t0 = time.perf_counter()
        page = run()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times), page


def measure(
    path: Path, now: datetime, limit: int, repeat: int
) -> list[tuple[str, float, float, int]]:
    """(scenario, median ms, worst ms, rows on the page) for each scenario and a deep page."""
    inv = Inventory(inventory_engine(make_url(f"sqlite:///{path}")))
    try:
        with sqlite3.connect(path) as db:
            serial = db.execute("SELECT serial FROM x509_certs LIMIT 1").fetchone()[0]
        out = []
        for label, filters in scenarios(now, serial):
            med, worst, page = _time(partial(inv.page, filters, limit=limit, now=now), repeat)
            out.append((label, med, worst, len(page.entries)))
        deep = Filters(provisioner="admin", state="expired")
        cursor: str | None = None
        for _ in range(100):  # up to the 101st page (fewer on a small table)
            following = inv.page(deep, limit=limit, cursor=cursor, now=now).cursor
            if following is None:
                break
            cursor = following
        med, worst, page = _time(
            lambda: inv.page(deep, limit=limit, cursor=cursor, now=now), repeat
        )
        out.append(("deep page of expired, admin", med, worst, len(page.entries)))
        return out
    finally:
        inv.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=50, help="rows a page")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per scenario")
    parser.add_argument("--db", type=Path, help="the SQLite file (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="reuse --db if it exists")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-inventory-") as tmp:
        path = args.db or Path(tmp) / "ca.db"
        now = datetime.now(UTC).replace(microsecond=0)
        if not (args.keep and path.exists()):
            path.unlink(missing_ok=True)
            t0 = time.perf_counter()
            fill(path, args.rows, now)
            print(f"filled {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
        results = measure(path, now, args.limit, args.repeat)
    slow = 0
    for label, med, worst, n in results:
        flag = "" if med < TARGET_MS else f"  over {TARGET_MS:.0f} ms"
        slow += med >= TARGET_MS
        print(f"{label:40} {med:8.2f} ms median {worst:8.2f} ms worst {n:4} rows{flag}")
    under = len(results) - slow
    print(f"{under}/{len(results)} pages under {TARGET_MS:.0f} ms ({args.rows:,} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
