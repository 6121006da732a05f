"""`Repository.issue` under load without HTTP: the database's share of a certificate's CPU.

Not a test and not `make bench`: a micro-benchmark for work on appliance/db. Certificates are
signed before the clock starts; `build` and the rest of a request are stood in for by fixed
amounts of Python work (`--build-us`, `--request-us`, holding the GIL as the real work does),
so what differs between variants is the database path. The repository is made, then the
worker processes are forked from it, as gunicorn does; each runs `--threads` threads.

SQLite is a file with the appliance's pragmas (WAL, synchronous=FULL); PostgreSQL is a private
durable server on loopback (its own CPU is not counted, as in bench.load). Variants: `raw`
(one transaction per issuance), `group` (group commit and the writer lock), `nolock` (group
commit alone).

    .venv/bin/python -m bench.db_issue --databases sqlite --processes 2 --threads 4
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, text

from appliance.db.engine import migrate, open_engine
from appliance.db.repository import Repository, UsedToken
from tests.postgres import postgres_server

VARIANTS = {"raw": False, "group": True, "nolock": True}


def certificates(count: int, first_serial: int) -> list[x509.Certificate]:
    """Leaf-like certificates (CN + SAN) with consecutive serials."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench Intermediate CA")])
    out = []
    for i in range(count):
        host = f"host{first_serial + i}.bench.test"
        out.append(
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(first_serial + i)
            .not_valid_before(now)
            .not_valid_after(now + timedelta(hours=24))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), False)
            .sign(key, hashes.SHA256())
        )
    return out


def python_work(microseconds: int) -> Callable[[], None]:
    """A callable that spends about `microseconds` of CPU in the interpreter (GIL held)."""
    if microseconds <= 0:
        return lambda: None
    n = 1000
    start = time.process_time()
    for _ in range(200):
        sum(range(n))
    per_loop = (time.process_time() - start) / 200 / n
    loops = max(1, int(microseconds * 1e-6 / max(per_loop, 1e-9)))

    def spin() -> None:
        sum(range(loops))

    return spin


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def worker(
    repo: Repository,
    certs: list[x509.Certificate],
    threads: int,
    tag: str,
    build_work: Callable[[], None],
    request_work: Callable[[], None],
) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=5)

    def run(part: list[x509.Certificate], n: int) -> None:
        for j, cert in enumerate(part):
            request_work()

            def build(c: x509.Certificate = cert) -> x509.Certificate:
                build_work()
                return c

            repo.issue(UsedToken(f"{tag}-{n}-{j}", "bench", expires), "bench", build)

    pool = [threading.Thread(target=run, args=(certs[i::threads], i)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def run_once(
    engine: Engine, group: bool, certs: list[x509.Certificate], args: argparse.Namespace, tag: str
) -> tuple[float, float]:
    """CPU and wall microseconds per certificate, over every process."""
    repo = Repository(engine, group_commit=group)
    if tag.startswith("nolock"):  # group commit without the writer lock
        repo._issuance._writer_lock = None
    build_work, request_work = python_work(args.build_us), python_work(args.request_us)
    parts = [certs[i :: args.processes] for i in range(args.processes)]
    engine.dispose()  # as gunicorn's master does before it forks
    cpu0, wall0 = _cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    pids = []
    for p, part in enumerate(parts):
        pid = os.fork()
        if pid == 0:  # pragma: no cover
            code = 1
            try:
                engine.dispose(close=False)
                worker(repo, part, args.threads, f"{tag}p{p}", build_work, request_work)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status):
            raise SystemExit("a worker process failed")
    cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    wall = time.perf_counter() - wall0
    return 1e6 * cpu / len(certs), 1e6 * wall / len(certs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="certificates per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant (interleaved)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--build-us", type=int, default=150, help="stand-in for signing")
    parser.add_argument("--request-us", type=int, default=1000, help="the rest of a request")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--variants", default="raw,group")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for name in args.databases.split(","):
            if name == "sqlite":
                url = f"sqlite:///{work / 'bench.db'}"
            else:
                pg = stack.enter_context(postgres_server(durable=True))
                url = pg.replace("postgresql://", "postgresql+psycopg://")
            engine = open_engine(url)
            migrate(engine)
            serial = 1 << 60
            results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
            for r in range(args.repeat):
                for v in variants:
                    certs = certificates(args.count, serial)
                    serial += args.count
                    results[v].append(run_once(engine, VARIANTS[v], certs, args, f"{v}{r}"))
            for v in variants:
                cpu = statistics.median(c for c, _ in results[v])
                wall = statistics.median(w for _, w in results[v])
                runs = " ".join(f"{c:.0f}" for c, _ in results[v])
                print(
                    f"{name:<10} {v:<6} {args.processes}x{args.threads}: CPU {cpu:5.0f} µs/cert"
                    f"  ({1e6 / wall:5.0f}/s)  runs: {runs}"
                )
            with engine.begin() as conn:  # keep the next database's figures apart
                conn.execute(text("DELETE FROM x509_certs"))
                conn.execute(text("DELETE FROM used_tokens"))
            engine.dispose()


if __name__ == "__main__":
    main()
