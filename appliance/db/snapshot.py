"""An online snapshot of the CA's SQLite database, for backups (`appliance.backup`)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from appliance.db.models import revoked_x509_certs, x509_certs

__all__ = ["SnapshotError", "snapshot_sqlite"]


class SnapshotError(Exception):
    """The database could not be copied, or its copy is not sound; one line."""


def _count(conn: sqlite3.Connection, table: str) -> int | None:
    try:
        return int(conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])
    except sqlite3.Error:
        return None  # a database the CA never migrated


def snapshot_sqlite(source: Path, target: Path) -> dict[str, int | None]:
    """Copy the SQLite database `source` to the new file `target` (0600) while the CA may be
    writing to it; the copy's certificate and revocation counts.

    The whole copy is one `sqlite3_backup_step`, so one read transaction: in WAL mode the
    CA's writers go on meanwhile and the copy is the snapshot of that moment. The copy is put
    in rollback-journal mode, so that it is one self-contained file, then checked.
    """
    if not source.is_file():
        raise SnapshotError(f"database {source}: no such file")
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        # Read-write, but query-only: a read-only connection would leave a -wal and -shm
        # behind, owned by whoever ran the backup, that the CA may then be unable to open.
        src = sqlite3.connect(f"{source.absolute().as_uri()}?mode=rw", uri=True, timeout=30)
        dst = sqlite3.connect(target)
        try:
            src.execute("PRAGMA query_only=1")
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            counts = {
                "certificates": _count(dst, x509_certs.name),
                "revoked": _count(dst, revoked_x509_certs.name),
            }
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise SnapshotError(f"database {source}: {exc}") from None
    if check != "ok":
        raise SnapshotError(f"database {source}: the copy fails SQLite's integrity check: {check}")
    os.chmod(target, 0o600)
    return counts
