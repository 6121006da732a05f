"""`step-ca audit verify|list`: the operator's side of the audit log (beyond step-ca).

Both read the database of CONFIG read-only: the CA need not run and no password is needed.
What is recorded and what the chain proves: docs/audit.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from appliance.audit import AuditError, open_read_only
from appliance.config import CAConfig, ConfigError
from appliance.db.audit import AuditEntry, entries, verify
from appliance.db.state import error_line
from cli.common import CLIError, step_path
from cli.helptext import StepTyper
from cli.stepca_certificates import parse_when

__all__ = ["audit_app", "register"]

audit_app = StepTyper(
    help="The tamper-evident audit log (beyond step-ca): verify its hash chain, list entries."
)

_CONFIG_HELP = "The CA's ca.json (default $(step path)/config/ca.json)."
_TIME_HELP = "an RFC 3339 time or a duration from now such as -24h"
_ANCHOR = re.compile(r"([0-9]+):([0-9a-fA-F]{64})")


class ListFormat(StrEnum):
    table = "table"
    json = "json"


def register(app: StepTyper) -> None:
    """Add `audit verify|list` to the `step-ca` operator commands."""
    app.add_typer(audit_app, name="audit")


@contextmanager
def _database(config: Path | None, command: str) -> Iterator[Engine]:
    """The read-only engine of CONFIG's database; every failure one line naming `command`."""
    path = config if config is not None else step_path() / "config" / "ca.json"
    try:
        engine = open_read_only(CAConfig.load(path))
    except (ConfigError, AuditError) as exc:
        raise CLIError(f"step-ca audit {command}: {exc}") from None
    try:
        yield engine
    except SQLAlchemyError as exc:
        reason = error_line(exc)
        raise CLIError(f"step-ca audit {command}: cannot read the database: {reason}") from None
    finally:
        engine.dispose()


@audit_app.command(name="verify")
def verify_command(
    config: Path | None = typer.Argument(None, metavar="CONFIG", help=_CONFIG_HELP),
    anchor: str | None = typer.Option(
        None,
        "--anchor",
        metavar="SEQ:SHA256",
        help="An entry's hash written down earlier (the 'Head:' line of a past verify): it "
        "must still be there, unchanged. Catches a truncated or rewritten log.",
    ),
) -> None:
    """Walk the audit log's hash chain and report the first entry edited, inserted or deleted.

    Prints 'N entries, chain intact' and the head (its number and SHA-256) and exits 0; or
    names the first bad entry and what is wrong with it, and exits 1. Without --anchor, an
    entry deleted from the end, or a log rewritten as a whole, cannot be told from a shorter
    log: keep the head line somewhere else and pass it back with --anchor (docs/audit.md).

    Examples:

      $ step-ca audit verify $(step path)/config/ca.json

      $ step-ca audit verify --anchor 1042:3f0c...e9
    """
    pinned: tuple[int, str] | None = None
    if anchor is not None:
        found = _ANCHOR.fullmatch(anchor.strip())
        if found is None:
            raise CLIError(f"--anchor: '{anchor}' is not SEQ:SHA256 (an entry number, 64 hex)")
        pinned = (int(found.group(1)), found.group(2).lower())
    with _database(config, "verify") as engine:
        verdict = verify(engine, pinned)
    if verdict.problem is not None:
        raise CLIError(
            f"step-ca audit verify: entry {verdict.problem.seq}: {verdict.problem.what} "
            f"({verdict.entries} entries before it are intact)"
        )
    typer.echo(f"{verdict.entries} entries, chain intact")
    if verdict.head is not None:
        typer.echo(f"Head: {verdict.head.seq}:{verdict.head.hash}")


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_HEADERS = ["SEQ", "TIME", "KIND", "ACTOR", "SERIAL", "SUBJECT", "REQUEST ID"]


def _cells(entry: AuditEntry) -> list[str]:
    values = [str(entry.seq), _rfc3339(entry.at), entry.kind, entry.actor, entry.serial,
              entry.subject, entry.request_id]  # fmt: skip
    return [json.dumps(v)[1:-1] if any(c < " " for c in v) else v for v in values]


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )


@audit_app.command(name="list")
def list_command(
    config: Path | None = typer.Argument(None, metavar="CONFIG", help=_CONFIG_HELP),
    since: str | None = typer.Option(
        None, "--since", metavar="TIME", help=f"Entries at or after TIME ({_TIME_HELP})."
    ),
    until: str | None = typer.Option(
        None, "--until", metavar="TIME", help="Entries at or before TIME."
    ),
    kind: list[str] = typer.Option(
        [],
        "--kind",
        metavar="KIND",
        help="Only this kind, or its sub-kinds ('certificate' is certificate.sign, .renew, "
        ".rekey, .revoke); repeat for several.",
    ),
    fmt: ListFormat = typer.Option(ListFormat.table, "--format", help="table or json."),
) -> None:
    """List the audit log's entries in chain order.

    Kinds: certificate.sign, certificate.renew, certificate.rekey, certificate.revoke,
    config.reload, provisioner.add, provisioner.update, provisioner.remove, ceremony.init.
    The JSON form has every field, the hashes included: the last entry's `seq` and `hash`
    are the head to keep elsewhere as an anchor (see 'step-ca audit verify --anchor').

    Examples:

      $ step-ca audit list $(step path)/config/ca.json --since -24h

      $ step-ca audit list --kind certificate.revoke --kind provisioner --format json
    """
    now = datetime.now(UTC)
    start, end = parse_when(since, "--since", now), parse_when(until, "--until", now)
    with _database(config, "list") as engine:
        found = list(entries(engine, since=start, until=end, kinds=kind))
    if fmt is ListFormat.json:
        typer.echo(json.dumps([e.to_json() for e in found], indent=2))
        return
    typer.echo(_table([_HEADERS, *(_cells(e) for e in found)]), nl=False)
