"""Appliances for the crash and multi-appliance tests: a database prepared before the server
starts (SQLite, or a fresh database on the tests' PostgreSQL server), the whole process tree
SIGKILLed, a second appliance on the same keys, and what the database holds.

The schema is brought to head here with `appliance.db.engine.migrate`, so these tests do not
depend on whether `step-ca` migrates at start or refuses a schema behind head.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import delete, select

from appliance.db.engine import database_url, migrate, open_engine
from appliance.db.models import crls, revoked_x509_certs, used_tokens, x509_certs
from bench.load import process_tree
from tests.e2e.harness import CA, HOST, free_port

KILL_TIMEOUT = 30.0


def create_pg_database(server_url: str) -> str:
    """A new, empty database on the server at `server_url`; its postgresql:// URL."""
    name = f"stepstone_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


def use_database(ca: CA, pg_url: str | None = None) -> str:
    """Point ca.json's `db` at `pg_url` (if given) and migrate that database to head.

    Returns the SQLAlchemy URL the appliance will use (read it with `Record`).
    """
    if pg_url is not None:
        ca.edit_config(lambda cfg: cfg.__setitem__("db", {"type": "postgresql",
                                                          "dataSource": pg_url}))
    url = database_url(ca.config().get("db"), ca.steppath)
    engine = open_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return url


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its parent counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_appliance(ca: CA) -> list[int]:
    """SIGKILL the appliance's master and every worker at once; wait until all are gone.

    The server runs in its own session (harness: start_new_session), so its process group is
    its PID; every PID of its tree is also killed by number, in case one left the group.
    Returns the PIDs killed. Afterwards `ca.start()` may be called again (same port).
    """
    assert ca.proc is not None, "server not running"
    master = ca.proc.pid
    tree = process_tree(master)
    os.killpg(master, signal.SIGKILL)
    for pid in tree:
        with suppress(ProcessLookupError):  # already gone with its group
            os.kill(pid, signal.SIGKILL)
    ca.proc.wait(timeout=KILL_TIMEOUT)
    deadline = time.monotonic() + KILL_TIMEOUT
    while any(_alive(pid) for pid in tree):
        assert time.monotonic() < deadline, f"processes {tree} survived SIGKILL"
        time.sleep(0.01)
    ca.stop()  # closes the log; the process is already reaped
    return tree


def twin(ca: CA, base: Path) -> CA:
    """A second appliance of the same CA (same keys, provisioners and database) on its own
    port: a copy of the STEPPATH with another `address`. Its TLS certificate is issued at
    start for ca.json's dnsNames, which cover 127.0.0.1."""
    assert ca.proc is None, "copy the STEPPATH of a stopped appliance"
    shutil.copytree(ca.base, base, ignore=shutil.ignore_patterns("server-*.log"))
    other = CA(base=base, port=free_port(), name=ca.name)
    other.edit_config(lambda cfg: cfg.__setitem__("address", f"{HOST}:{other.port}"))
    return other


@dataclass(frozen=True)
class StoredCert:
    serial: str
    der: bytes
    subject: str


class Record:
    """Read-only views of the appliance's database (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _rows(self, query: Any) -> list[Any]:
        engine = open_engine(self.url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(query).all())
        finally:
            engine.dispose()

    def certificates(self) -> list[StoredCert]:
        rows = self._rows(select(x509_certs.c.serial, x509_certs.c.der, x509_certs.c.subject))
        return [StoredCert(str(r.serial), bytes(r.der), str(r.subject)) for r in rows]

    def used_tokens(self) -> set[str]:
        return {str(r.id) for r in self._rows(select(used_tokens.c.id))}

    def revoked_serials(self) -> set[int]:
        return {int(r.serial) for r in self._rows(select(revoked_x509_certs.c.serial))}

    def crl_number(self) -> int | None:
        rows = self._rows(select(crls.c.number).where(crls.c.id == 1))
        return int(rows[0].number) if rows else None


def forget_crl(url: str) -> None:
    """Delete the stored CRL, as in a database no appliance has published a CRL to yet."""
    engine = open_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(crls))
    finally:
        engine.dispose()
