"""`step-ca certificates list|show|export`: what the CA issued, read from its database.

Reads the database ca.json names (read-only): the CA need not run and no password is asked.
CONFIG comes first, as for the server, and may be left out for $(step path)/config/ca.json.
Results go to stdout; the next page's cursor and summaries to stderr, so a pipe gets data only.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.config import CAConfig, ConfigError
from appliance.inventory import MAX_LIMIT, Entry, Filters, Inventory, InventoryError, State
from appliance.inventory import open_inventory as _open_inventory
from cli.certinfo import CertParseError, certificate_short_text, parse_certificate
from cli.certinfo.gofmt import go_rfc3339
from cli.common import CLIError, check_outputs, step_path, write_output
from cli.helptext import StepTyper
from pki.durations import parse_time_or_duration

__all__ = ["register"]

certificates_app = StepTyper(
    help="List, show and export the certificates the CA issued (reads its database)."
)

_CONFIG_HELP = "The CA's ca.json (default $(step path)/config/ca.json)."
_TIME_HELP = "an RFC 3339 time or a duration from now such as -24h or 720h"
# step's reason codes (RFC 5280), for `show`.
_REASONS = [
    "unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
    "cessationOfOperation", "certificateHold", "", "removeFromCRL", "privilegeWithdrawn",
    "aACompromise",
]  # fmt: skip


class StateChoice(StrEnum):
    valid = "valid"
    expired = "expired"
    revoked = "revoked"


class SortChoice(StrEnum):
    issued = "issued"
    expiry = "expiry"


class ListFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class ShowFormat(StrEnum):
    text = "text"
    json = "json"
    pem = "pem"


def register(app: StepTyper) -> None:
    """Add `certificates list|show|export` to the `step-ca` operator commands."""
    app.add_typer(certificates_app, name="certificates")


def _open(config: Path | None, command: str) -> Inventory:
    path = config if config is not None else step_path() / "config" / "ca.json"
    try:
        return _open_inventory(CAConfig.load(path))
    except (ConfigError, InventoryError) as exc:
        raise CLIError(f"step-ca certificates {command}: {exc}") from None


def parse_when(value: str | None, flag: str, now: datetime) -> datetime | None:
    """step's time-or-duration: RFC 3339, or a Go duration added to now (`-24h`, `720h`)."""
    if value is None:
        return None
    try:
        parsed = parse_time_or_duration(value, now)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CLIError(f"{flag}: '{value}' is not a time ({_TIME_HELP})")
    return now + parsed if isinstance(parsed, timedelta) else parsed


def parse_serial(value: str) -> int:
    """A serial number in decimal, as step prints and takes it, or in hex with 0x."""
    try:
        serial = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
    except ValueError:
        raise CLIError(f"'{value}' is not a serial number (decimal, or hex with 0x)") from None
    if serial < 0:
        raise CLIError(f"'{value}' is not a serial number (decimal, or hex with 0x)")
    return serial


def _filters(
    command: str,
    subject: str | None,
    provisioner: str | None,
    serial: str | None,
    state: StateChoice | None,
    **times: str | None,
) -> Filters:
    """The filters of `list` and `export`; `times` are the --issued-*/--expires-* flags."""
    now = datetime.now(UTC)
    try:
        when = {k: parse_when(v, "--" + k.replace("_", "-"), now) for k, v in times.items()}
        serial_number = parse_serial(serial) if serial is not None else None
    except CLIError as exc:
        raise CLIError(f"step-ca certificates {command}: {exc}") from None
    chosen: State | None = state.value if state is not None else None
    return Filters(
        name=subject, provisioner=provisioner, serial=serial_number, state=chosen, **when
    )


def _sans(entry: Entry) -> list[str]:
    try:
        names = parse_certificate(entry.der).sans
    except CertParseError:
        return []
    return [*names.dns, *(str(ip) for ip in names.ips), *names.emails, *names.uris]


def entry_json(entry: Entry, now: datetime) -> dict[str, Any]:
    """One certificate as `list --format json` and `show --format json` print it."""
    cert = entry.cert
    revoked = entry.revoked
    return {
        "serial": str(entry.serial),
        "subject": cert.subject.rfc4514_string(),
        "sans": _sans(entry),
        "provisioner": entry.provisioner,
        "tokenId": entry.token_id,
        "issuedAt": go_rfc3339(entry.issued_at),
        "notBefore": go_rfc3339(cert.not_valid_before_utc),
        "notAfter": go_rfc3339(entry.not_after),
        "state": entry.state(now),
        "revocation": None
        if revoked is None
        else {
            "revokedAt": go_rfc3339(revoked.revoked_at),
            "reasonCode": revoked.reason_code,
            "reason": revoked.reason,
            "provisioner": revoked.provisioner,
            "tokenId": revoked.token_id,
            "mtls": revoked.mtls,
        },
    }


_COLUMNS = ["serial", "subject", "provisioner", "issuedAt", "notAfter", "state"]


def _row(item: dict[str, Any]) -> list[str]:
    return [str(item[c]) for c in _COLUMNS]


def _table(items: list[dict[str, Any]]) -> str:
    rows = [["SERIAL", "SUBJECT", "PROVISIONER", "ISSUED", "NOT AFTER", "STATE"]]
    rows += [_row(item) for item in items]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )


def _csv(items: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*_COLUMNS, "sans", "tokenId", "revokedAt", "reasonCode"])
    for item in items:
        rev = item["revocation"] or {}
        writer.writerow(
            [*_row(item), " ".join(item["sans"]), item["tokenId"] or "",
             rev.get("revokedAt", ""), rev.get("reasonCode", "")]
        )  # fmt: skip
    return out.getvalue()


_SUBJECT = typer.Option(
    None, "--subject", "--san", metavar="GLOB",
    help="The subject's common name or any SAN (DNS, IP, email, URI) matches GLOB: '*' any "
    "run of characters, '?' one; case-insensitive; quote it from the shell.",
)  # fmt: skip
_PROVISIONER = typer.Option(
    None, "--provisioner", metavar="NAME", help="Issued by provisioner NAME."
)
_SERIAL = typer.Option(
    None, "--serial", metavar="SERIAL", help="This serial number (decimal, or hex with 0x)."
)
_ISSUED_AFTER = typer.Option(
    None, "--issued-after", metavar="TIME", help=f"Issued at or after TIME ({_TIME_HELP})."
)
_ISSUED_BEFORE = typer.Option(None, "--issued-before", metavar="TIME", help="Issued before TIME.")
_EXPIRES_AFTER = typer.Option(
    None, "--expires-after", metavar="TIME", help="Expiring at or after TIME."
)
_EXPIRES_BEFORE = typer.Option(
    None, "--expires-before", metavar="TIME", help="Expiring before TIME."
)
_STATE = typer.Option(
    None, "--state", help="valid (not expired, not revoked), expired (and not revoked), or revoked."
)  # fmt: skip
_SORT = typer.Option(
    None, "--sort",
    help="issued: newest first; expiry: soonest expiry first (the default with --expires-*).",
)  # fmt: skip


@certificates_app.command(name="list")
def list_command(
    config: Path | None = typer.Argument(None, metavar="CONFIG", help=_CONFIG_HELP),
    subject: str | None = _SUBJECT,
    provisioner: str | None = _PROVISIONER,
    serial: str | None = _SERIAL,
    issued_after: str | None = _ISSUED_AFTER,
    issued_before: str | None = _ISSUED_BEFORE,
    expires_after: str | None = _EXPIRES_AFTER,
    expires_before: str | None = _EXPIRES_BEFORE,
    state: StateChoice | None = _STATE,
    sort: SortChoice | None = _SORT,
    limit: int = typer.Option(50, "--limit", metavar="N", help=f"Rows a page (1 to {MAX_LIMIT})."),
    cursor: str | None = typer.Option(
        None, "--cursor", metavar="CURSOR", help="Start after the page that printed CURSOR."
    ),
    fmt: ListFormat = typer.Option(ListFormat.table, "--format", help="table, json or csv."),
) -> None:
    """List the certificates the CA issued, a page at a time.

    Every filter given must hold. Times are RFC 3339 (2026-12-01T00:00:00Z) or, as in step,
    a duration from now: '-24h' is a day ago, '720h' thirty days ahead. A page holds at most
    --limit rows; when more match, the line 'next page: --cursor CURSOR' goes to stderr (in
    JSON, the "next" field): pass it back with the same filters for the next page. Paging
    follows an index from the last row seen, so page 1000 is as fast as page 1 and rows
    issued meanwhile do not shift pages.

    Reads the database of CONFIG (default $(step path)/config/ca.json) read-only: the CA
    need not run and no password is needed.

    Examples:

      $ step-ca certificates list $(step path)/config/ca.json --format json

      $ step-ca certificates list --subject '*.internal.example.com' --state valid

      $ step-ca certificates list --expires-before 168h --state valid --format csv

      $ step-ca certificates list --provisioner acme --issued-after -24h --limit 200
    """
    filters = _filters(
        "list", subject, provisioner, serial, state,
        issued_after=issued_after, issued_before=issued_before,
        expires_after=expires_after, expires_before=expires_before,
    )  # fmt: skip
    inventory = _open(config, "list")
    now = datetime.now(UTC)
    try:
        page = inventory.page(
            filters, limit=limit, cursor=cursor, sort=sort.value if sort else None, now=now
        )
    except InventoryError as exc:
        raise CLIError(f"step-ca certificates list: {exc}") from None
    finally:
        inventory.engine.dispose()
    items = [entry_json(e, now) for e in page.entries]
    if fmt is ListFormat.json:
        typer.echo(json.dumps({"certificates": items, "next": page.cursor}, indent=2))
        return
    sys.stdout.write(_table(items) if fmt is ListFormat.table else _csv(items))
    if page.cursor is not None:
        typer.echo(f"next page: --cursor {page.cursor}", err=True)


def _show_text(entry: Entry, now: datetime) -> str:
    try:
        head = certificate_short_text(parse_certificate(entry.der))
    except CertParseError as exc:
        head = f"(stored certificate does not parse: {exc})\n"
    lines = [
        head,
        f"Serial:      {entry.serial}\n",
        f"Provisioner: {entry.provisioner}\n",
        f"Issued:      {go_rfc3339(entry.issued_at)}\n",
        f"Token ID:    {entry.token_id or '-'}\n",
        f"State:       {entry.state(now)}\n",
    ]
    rev = entry.revoked
    if rev is not None:
        code = _REASONS[rev.reason_code] if 0 <= rev.reason_code < len(_REASONS) else ""
        why = f"{code or rev.reason_code}" + (f": {rev.reason}" if rev.reason else "")
        how = "mTLS" if rev.mtls else f"token {rev.token_id or '-'}"
        who = rev.provisioner or "-"
        lines.append(f"Revoked:     {go_rfc3339(rev.revoked_at)} ({why}) by {who}, {how}\n")
    return "".join(lines)


@certificates_app.command(name="show")
def show_command(
    args: list[str] = typer.Argument(
        ...,
        metavar="[CONFIG] SERIAL",
        show_default=False,
        help="The CA's ca.json (may be left out: $(step path)/config/ca.json), then the serial.",
    ),
    fmt: ShowFormat = typer.Option(ShowFormat.text, "--format", help="text, json or pem."),
) -> None:
    """Show one issued certificate: itself, its provisioner, token id and revocation.

    SERIAL is decimal, as step prints and takes it (or hex with 0x). CONFIG comes first,
    as for the server; with SERIAL alone, $(step path)/config/ca.json is read. The text
    form is 'step certificate inspect --short' followed by what the CA recorded.

    Examples:

      $ step-ca certificates show 203847565834753419283745

      $ step-ca certificates show $(step path)/config/ca.json 203847565834753419283745 --format json

      $ step-ca certificates show 0x2b2a5d... --format pem | step certificate inspect
    """
    if len(args) > 2:
        raise CLIError("step-ca certificates show: too many arguments: want [CONFIG] SERIAL")
    config = Path(args[0]) if len(args) == 2 else None
    try:
        serial = parse_serial(args[-1])
    except CLIError as exc:
        raise CLIError(f"step-ca certificates show: {exc}") from None
    inventory = _open(config, "show")
    try:
        entry = inventory.get(serial)
    except InventoryError as exc:
        raise CLIError(f"step-ca certificates show: {exc}") from None
    finally:
        inventory.engine.dispose()
    if entry is None:
        raise CLIError(f"step-ca certificates show: no certificate with serial {serial}")
    now = datetime.now(UTC)
    if fmt is ShowFormat.json:
        typer.echo(json.dumps(entry_json(entry, now), indent=2))
    elif fmt is ShowFormat.pem:
        sys.stdout.write(entry.cert.public_bytes(Encoding.PEM).decode())
    else:
        sys.stdout.write(_show_text(entry, now))


@certificates_app.command(name="export")
def export_command(
    config: Path | None = typer.Argument(None, metavar="CONFIG", help=_CONFIG_HELP),
    subject: str | None = _SUBJECT,
    provisioner: str | None = _PROVISIONER,
    serial: str | None = _SERIAL,
    issued_after: str | None = _ISSUED_AFTER,
    issued_before: str | None = _ISSUED_BEFORE,
    expires_after: str | None = _EXPIRES_AFTER,
    expires_before: str | None = _EXPIRES_BEFORE,
    state: StateChoice | None = _STATE,
    out_dir: Path | None = typer.Option(
        None,
        "--out-dir",
        metavar="DIR",
        help="Write SERIAL.crt files here (created if missing); default: one PEM stream on stdout.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite SERIAL.crt files in DIR."),
) -> None:
    """Export the PEM of every certificate the filters select (as 'list' takes them).

    With --out-dir, one file a certificate, named by its decimal serial (SERIAL.crt, mode
    0600), and the count on stderr; without, the PEMs one after the other on stdout.

    Examples:

      $ step-ca certificates export --state valid --out-dir ./valid-certs

      $ step-ca certificates export $(step path)/config/ca.json --provisioner acme > acme.pem
    """
    filters = _filters(
        "export", subject, provisioner, serial, state,
        issued_after=issued_after, issued_before=issued_before,
        expires_after=expires_after, expires_before=expires_before,
    )  # fmt: skip
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise CLIError(f"step-ca certificates export: {out_dir} is not a directory")
    inventory = _open(config, "export")
    count = 0
    try:
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for entry in inventory.all(filters):
            pem = entry.cert.public_bytes(Encoding.PEM)
            if out_dir is None:
                sys.stdout.write(pem.decode())
            else:
                target = out_dir / f"{entry.serial}.crt"
                check_outputs([target], force)
                write_output(target, pem)
            count += 1
    except InventoryError as exc:
        raise CLIError(f"step-ca certificates export: {exc}") from None
    finally:
        inventory.engine.dispose()
    if out_dir is not None:
        typer.echo(f"exported {count} certificates to {out_dir}", err=True)
