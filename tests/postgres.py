"""A private PostgreSQL server for tests: initdb in a temp dir, loopback only, stopped by PID."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (make test installs it)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _user() -> dict[str, Any]:
    # initdb and postgres refuse to run as root: run them as the `postgres` system user.
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


@contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh server; the server is stopped and its files removed.

    Tests run it with fsync off (nothing to keep); benchmarks ask for a `durable` one, so a
    commit costs what it costs in production.

    The data directory is made with mkdtemp (not pytest's root-only tmp dirs) because the
    server runs as the `postgres` user when the tests run as root.
    """
    base = Path(tempfile.mkdtemp(prefix="stepstone-pg-"))
    data = base / "pgdata"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    subprocess.run(
        [_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
        **_user(),
    )
    port = free_port()
    server = [_bin("postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1"]
    proc = subprocess.Popen(
        [*server, "-k", str(base), *([] if durable else ["-c", "fsync=off"])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **_user(),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            )
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.2)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)
