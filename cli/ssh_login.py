"""`step ssh login`, `logout` and `list`: SSH user certificates straight into the ssh-agent,
for as long as they are valid, and out again."""

from __future__ import annotations

from pathlib import Path

import typer

from cli import ssh_agent, ssh_keys
from cli.ca import ui
from cli.ca.client import CAClient
from cli.ca.defaults import CA_URL_HELP, ROOT_HELP
from cli.ca.issue import key_spec
from cli.ca.tokens import unverified_claims
from cli.common import CLIError
from cli.ssh_sign import (
    connect,
    one_minute_ago,
    sign,
    sign_body,
    ssh_token,
    token_principals,
)


def user_ca_keys(client: CAClient) -> list[bytes] | None:
    """The CA's SSH user keys (wire blobs) from /ssh/roots, or None if it will not say."""
    try:
        body = client.json("GET", "/1.0/ssh/roots")
    except CLIError:
        return None
    keys = [ssh_keys.wire_blob(ssh_keys.public_from_b64(k)) for k in body.get("userKey") or []]
    return keys or None


def login_command(
    subject: str | None = typer.Argument(
        None, metavar="IDENTITY", help="The user identity (key ID)."
    ),
    identity: str | None = typer.Option(
        None, "--identity", help="The identity, when not given as an argument."
    ),
    token: str | None = typer.Option(
        None, "--token", help="A one-time token from 'step ca token --ssh'."
    ),
    principal: list[str] = typer.Option(
        [], "--principal", "-n", help="A user principal (repeatable)."
    ),
    add_user: bool = typer.Option(
        False, "--add-user", help="Also get a provisioner certificate to add the user."
    ),
    provisioner: str | None = typer.Option(
        None, "--provisioner", "--issuer", help="The provisioner name to use."
    ),
    password_file: Path | None = typer.Option(
        None,
        "--provisioner-password-file",
        "--password-file",
        help="File with the password that decrypts the provisioner key.",
    ),
    not_before: str | None = typer.Option(
        None, "--not-before", help="Certificate valid from (RFC 3339 time or duration)."
    ),
    not_after: str | None = typer.Option(
        None, "--not-after", help="Certificate valid until (RFC 3339 time or duration)."
    ),
    comment: str | None = typer.Option(
        None, "--comment", help="The key's comment in the agent (default IDENTITY)."
    ),
    force: bool = typer.Option(
        False, "--force", "-f", help="Get a new certificate even if the agent has one."
    ),
    kty: str = typer.Option("EC", "--kty", help="Key type: EC, RSA or OKP."),
    curve: str | None = typer.Option(None, "--curve", "--crv", help="EC curve or OKP curve."),
    size: int = typer.Option(2048, "--size", help="RSA key size in bits."),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Get an SSH user certificate and put it in the ssh-agent, which drops it when it expires.

    Nothing is written to disk: the new key and its certificate live only in the agent
    (SSH_AUTH_SOCK). If the agent already holds a valid certificate for IDENTITY signed by the
    CA, nothing is done unless --force.

    Examples:

      $ step ssh login joe@example.com

      $ step ssh login joe@example.com --not-after 1h --provisioner-password-file pw.txt
    """
    subject = subject or identity or ""
    if not subject and token:
        subject = str(unverified_claims(token).get("sub") or "")
    if not subject:
        raise CLIError("missing identity: 'step ssh login IDENTITY' or '--token'")
    principals = list(principal) or token_principals(token) or [subject]
    label = comment or subject
    existing = ssh_agent.list_keys()  # fails early, with one line, when there is no agent
    client, root_path = connect(token, ca_url, root)
    with client:
        if not force:
            ca_keys = user_ca_keys(client)
            for key in existing:
                if ssh_agent.expired(key):
                    ssh_agent.remove([key])
                elif key.comment == label and ssh_agent.signed_by(key, ca_keys):
                    typer.echo(f"The key {key.line} is already present in the SSH agent.")
                    return
        valid_after, valid_before = not_before or one_minute_ago(), not_after or ""
        ott = token or ssh_token(
            client,
            root_path,
            key_id=subject,
            cert_type="user",
            principals=principals,
            valid_after=valid_after,
            valid_before=valid_before,
            provisioner=provisioner,
            password_file=password_file,
        )
        claims = unverified_claims(ott)
        if claims.get("email"):  # an OIDC token: the key ID is the email
            subject = str(claims["email"])
        spec = key_spec(kty, curve, size)
        priv = spec.generate()
        add_priv = spec.generate() if add_user else None
        body = sign_body(
            priv.public_key(),
            ott,
            "user",
            subject,
            principals,
            valid_after,
            valid_before,
            add_priv.public_key() if add_priv is not None else None,
        )
        cert, add_cert = sign(client, body)
    ssh_agent.add_certificate(label, cert, priv)
    ui.selected("SSH Agent", "yes")
    if add_user:
        if add_cert is None or add_priv is None:
            ui.note("✖ Add User Certificate: failed to create a provisioner certificate")
        else:
            ssh_agent.add_certificate(label, add_cert, add_priv)
            ui.selected("Add User Certificate", "yes")


def logout_command(
    subject: str | None = typer.Argument(None, metavar="IDENTITY", help="The identity to remove."),
    identity: str | None = typer.Option(
        None, "--identity", help="The identity, when not given as an argument."
    ),
    all_keys: bool = typer.Option(False, "--all", help="Remove all the keys in the agent."),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Remove the CA's certificates for IDENTITY (or all of them) from the ssh-agent.

    Only certificates signed by the CA's user key are removed; with --all and no IDENTITY,
    every key in the agent goes.

    Examples:

      $ step ssh logout joe@example.com

      $ step ssh logout --all
    """
    name = subject or identity or ""
    keys = ssh_agent.list_keys()
    if all_keys and not subject:
        ssh_agent.remove_all()
        typer.echo("All identities removed.")
        return
    ca_keys: list[bytes] | None = None
    if not all_keys:
        client, _ = connect(None, ca_url, root)
        with client:
            ca_keys = user_ca_keys(client)
    chosen = [
        k
        for k in keys
        if (not name or k.comment == name) and (all_keys or ssh_agent.signed_by(k, ca_keys))
    ]
    ssh_agent.remove(chosen)
    if not chosen:
        message = "Identity not found"
    elif all_keys:
        message = "All identities removed"
    else:
        message = "Identity removed"
    typer.echo(f"{message}: {name}" if name else f"{message}.")


def list_command(
    subject: str | None = typer.Argument(
        None, metavar="IDENTITY", help="Only the keys with this comment."
    ),
    raw: bool = typer.Option(False, "--raw", help="List public keys instead of fingerprints."),
) -> None:
    """List the keys in the ssh-agent: fingerprints, or the public keys with --raw.

    Examples:

      $ step ssh list

      $ step ssh list --raw joe@example.com | step ssh inspect
    """
    keys = ssh_agent.list_keys()
    if not keys:
        typer.echo("The agent has no identities.")
        return
    for key in keys:
        if subject is not None and key.comment != subject:
            continue
        if raw:
            typer.echo(key.line)
        else:
            typer.echo(ssh_keys.format_fingerprint(key.key, key.comment, "base64-raw", False))
