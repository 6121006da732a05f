"""`step ca acme eab add|list|remove`: ACME External Account Binding keys, through the CA's
administration API (`/admin/acme/eab/...`, cli.ca.admin_client), printed as step prints them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.ca.admin_client import AdminClient, AdminOptions, not_found_hint
from cli.ca.client import CAClient
from cli.ca.defaults import CA_URL_HELP, ROOT_HELP, require_ca_url, require_root
from cli.common import CLIError

_CAUrl = Annotated[str | None, typer.Option("--ca-url", help=CA_URL_HELP)]
_Root = Annotated[str | None, typer.Option("--root", help=ROOT_HELP)]
_AdminCert = Annotated[
    Path | None,
    typer.Option(
        "--admin-cert", help="Admin certificate (chain) in PEM format for the x5c header."
    ),
]
_AdminKey = Annotated[
    Path | None, typer.Option("--admin-key", help="Private key of the admin certificate.")
]
_AdminProvisioner = Annotated[
    str | None,
    typer.Option(
        "--admin-provisioner", "--admin-issuer", help="The JWK provisioner for admin credentials."
    ),
]
_AdminSubject = Annotated[
    str | None,
    typer.Option("--admin-subject", "--admin-name", help="The admin subject (default: step)."),
]
_PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        "--admin-password-file",
        help="The file with the password of the provisioner key (or of --admin-key).",
    ),
]

ADD_FORMAT = "{:<36}{:<28}{:<48}{}"
LIST_FORMAT = "{:<36}{:<28}{:<16}{:<30}{:<30}{:<40}{}"


@contextmanager
def _admin(
    ca_url: str | None,
    root: str | None,
    opts: AdminOptions,
) -> Iterator[AdminClient]:
    with CAClient(require_ca_url(ca_url), require_root(root)) as client:
        try:
            yield AdminClient(client, opts)
        except CLIError as exc:
            raise not_found_hint(exc) from None


def _when(value: object) -> str:
    """createdAt/boundAt as step prints them (local time)."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def _cli_key(eak: dict[str, Any]) -> dict[str, Any]:
    """step's JSON of a key: the HMAC key base64url without padding (what ACME clients take)."""
    out: dict[str, Any] = {"id": eak.get("id", ""), "provisioner": eak.get("provisioner", "")}
    if eak.get("hmacKey"):
        raw = base64.b64decode(str(eak["hmacKey"]))
        out["key"] = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    out["reference"] = eak.get("reference", "")
    out["account"] = eak.get("account", "")
    out["createdAt"] = eak.get("createdAt", "")
    out["boundAt"] = eak.get("boundAt", "")
    return out


def add_command(
    provisioner: str = typer.Argument(..., help="The ACME provisioner to add the key to."),
    reference: str = typer.Argument("", help="A reference (from an external system)."),
    as_json: bool = typer.Option(False, "--json", help="Print the key as JSON."),
    admin_cert: _AdminCert = None,
    admin_key: _AdminKey = None,
    admin_provisioner: _AdminProvisioner = None,
    admin_subject: _AdminSubject = None,
    password_file: _PasswordFile = None,
    ca_url: _CAUrl = None,
    root: _Root = None,
) -> None:
    """Add an ACME External Account Binding key.

    Examples:

      $ step ca acme eab add my_acme_provisioner my_first_eab_key
    """
    opts = AdminOptions(admin_cert, admin_key, admin_provisioner, admin_subject, password_file)
    with _admin(ca_url, root, opts) as admin:
        body = admin.request("POST", admin.eab_path(provisioner), json={"reference": reference})
    key = _cli_key(body)
    if as_json:
        typer.echo(json.dumps(key, indent=2))
        return
    typer.echo(ADD_FORMAT.format("Key ID", "Provisioner", "Key (base64, raw url encoded)",
                                 "Reference"))  # fmt: skip
    typer.echo(ADD_FORMAT.format(key["id"], key["provisioner"], key.get("key", ""),
                                 key["reference"]))  # fmt: skip


def list_command(
    provisioner: str = typer.Argument(..., help="The ACME provisioner whose keys to list."),
    reference: str = typer.Argument("", help="Only the key with this reference."),
    limit: int = typer.Option(0, "--limit", help="The number of keys to fetch per request."),
    no_pager: bool = typer.Option(False, "--no-pager", help="Accepted; output is never paged."),
    admin_cert: _AdminCert = None,
    admin_key: _AdminKey = None,
    admin_provisioner: _AdminProvisioner = None,
    admin_subject: _AdminSubject = None,
    password_file: _PasswordFile = None,
    ca_url: _CAUrl = None,
    root: _Root = None,
) -> None:
    """List the ACME External Account Binding keys of a provisioner.

    Examples:

      $ step ca acme eab list my_acme_provisioner

      $ step ca acme eab list my_acme_provisioner my_reference
    """
    if limit < 0:
        raise CLIError("flag '--limit' must be a positive number")
    opts = AdminOptions(admin_cert, admin_key, admin_provisioner, admin_subject, password_file)
    keys: list[dict[str, Any]] = []
    with _admin(ca_url, root, opts) as admin:
        path = admin.eab_path(provisioner, *([reference] if reference else []))
        cursor = ""
        for _ in range(100_000):
            params = {"cursor": cursor} if cursor else {}
            if limit:
                params["limit"] = str(limit)
            body = admin.request("GET", path, params=params)
            keys += [k for k in body.get("eaks") or [] if isinstance(k, dict)]
            cursor = str(body.get("nextCursor") or "")
            if not cursor:
                break
    if not keys:
        typer.echo(f"No ACME EAB keys stored for provisioner {provisioner}")
        return
    typer.echo(LIST_FORMAT.format("Key ID", "Provisioner", "Key (masked)", "Created At",
                                  "Bound At", "Account", "Reference"))  # fmt: skip
    for eak in keys:
        key = _cli_key(eak)
        typer.echo(
            LIST_FORMAT.format(key["id"], key["provisioner"], "*****", _when(key["createdAt"]),
                               _when(key["boundAt"]), key["account"], key["reference"])
        )  # fmt: skip


def remove_command(
    provisioner: str = typer.Argument(..., help="The ACME provisioner of the key."),
    key_id: str = typer.Argument(..., help="The ACME EAB key ID to remove."),
    admin_cert: _AdminCert = None,
    admin_key: _AdminKey = None,
    admin_provisioner: _AdminProvisioner = None,
    admin_subject: _AdminSubject = None,
    password_file: _PasswordFile = None,
    ca_url: _CAUrl = None,
    root: _Root = None,
) -> None:
    """Remove an ACME External Account Binding key from the CA.

    Examples:

      $ step ca acme eab remove my_acme_provisioner zFGdKC1sHmNf3Wsx3OujY808chxwEdmr
    """
    opts = AdminOptions(admin_cert, admin_key, admin_provisioner, admin_subject, password_file)
    with _admin(ca_url, root, opts) as admin:
        admin.request("DELETE", admin.eab_path(provisioner, key_id))
    typer.echo("Key was deleted successfully!")
