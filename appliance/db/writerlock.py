"""Issuance batches of the appliance's worker processes take turns on SQLite, fairly.

SQLite has one writer at a time, and a process that finds the database locked sleeps in
SQLite's busy handler: 1, 2, 5, 10, 15, 20, 25... ms between tries, so under load one worker
keeps winning and the other's requests wait tens of milliseconds (the p99 of a signing load
with two workers was 80-180 ms). Issuance transactions (with group commit, the workers'
batches, see groupcommit.py) queue on an flock(2) instead, polled every 0.1-1 ms.

The lock is an anonymous file (O_TMPFILE) opened where the repository is made, in the
gunicorn master before it forks: nothing is left in the database's folder. Each thread of
each process reopens it through /proc/self/fd, because flock belongs to an open file
description: one inherited through fork would be shared with the parent. A process that dies
holding the lock releases it.

The lock only orders issuance batches; SQLite's own locking still guards every write. So it
is best effort: without it (no /proc, a file system without O_TMPFILE, an in-memory
database), or after waiting as long as SQLite's busy timeout, a batch goes ahead and SQLite
decides, as before.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

from sqlalchemy import Engine

log = logging.getLogger(__name__)

#: As long as SQLite's busy timeout (engine.py): after that, SQLite reports the lock.
PATIENCE_SECONDS = 10.0
_FIRST_NAP, _LONGEST_NAP = 0.0001, 0.001


class _Description:
    """One open description of the anchor, for one thread of one process."""

    __slots__ = ("fd", "pid")

    def __init__(self, fd: int, pid: int) -> None:
        self.fd, self.pid = fd, pid

    def __del__(self) -> None:  # its thread ended, or this is a copy inherited through fork
        with suppress(OSError):
            os.close(self.fd)


class WriterLock:
    """An exclusive flock on an anonymous file, through one open description per thread."""

    def __init__(self, directory: str) -> None:
        self._anchor: IO[bytes] | None = None
        try:
            self._anchor = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed below)
        except OSError as exc:
            log.warning("no writer lock (%s); SQLite alone orders the writers", exc)
        else:
            weakref.finalize(self, self._anchor.close)
        self._own = threading.local()

    @classmethod
    def for_engine(cls, engine: Engine) -> WriterLock | None:
        """The lock of a SQLite file database; None for anything else."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or url.query.get("uri"):
            return None
        if not url.database or url.database == ":memory:":
            return None
        return cls(os.path.dirname(os.path.abspath(url.database)))

    def _file(self) -> int | None:
        """This thread's own open description of the anchor (flock excludes between them)."""
        own: _Description | None = getattr(self._own, "description", None)
        pid = os.getpid()
        if own is None or own.pid != pid:
            anchor = self._anchor
            if anchor is None:
                return None
            try:
                own = _Description(
                    os.open(f"/proc/self/fd/{anchor.fileno()}", os.O_RDWR | os.O_CLOEXEC), pid
                )
            except OSError as exc:
                log.warning("no writer lock (%s); SQLite alone orders the writers", exc)
                self._anchor = None
                return None
            self._own.description = own
        return own.fd

    @contextmanager
    def held(self) -> Iterator[bool]:
        """Hold the lock for the block; yields whether it is held (see the module's note)."""
        fd = self._file()
        got = fd is not None and _take(fd)
        try:
            yield got
        finally:
            if got and fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)


def _take(fd: int) -> bool:
    nap = _FIRST_NAP
    deadline = 0.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError:  # no locks on this file system: SQLite alone orders the writers
            return False
        now = time.monotonic()
        if not deadline:
            deadline = now + PATIENCE_SECONDS
        elif now > deadline:
            return False
        time.sleep(nap)
        nap = min(nap * 1.5, _LONGEST_NAP)
