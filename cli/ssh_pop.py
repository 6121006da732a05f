"""`step ssh renew`, `rekey` and `revoke`: SSHPOP tokens, i.e. a JWT signed by the key of a
current SSH certificate with the certificate in the `sshpop` header, for the CA's SSHPOP
provisioner (`/ssh/renew`, `/ssh/rekey`, `/ssh/revoke`); revoke also takes a provisioner token."""

from __future__ import annotations

import base64
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
import typer
from cryptography.hazmat.primitives.serialization import SSHCertificate

from cli import ssh_keys
from cli.ca import ui
from cli.ca.client import CAClient
from cli.ca.defaults import CA_URL_HELP, ROOT_HELP
from cli.ca.issue import key_spec, new_token
from cli.ca.lifecycle import _reason_code
from cli.ca.tokens import audience
from cli.common import CLIError, check_outputs, read_password_file, write_output
from cli.ssh_sign import connect, key_password
from pki.fingerprint import certificate_fingerprint
from pki.jose import default_alg, public_jwk

TOKEN_VALIDITY = 300


def _root_fingerprint(root: Path) -> str:
    from cryptography import x509

    try:
        return certificate_fingerprint(x509.load_pem_x509_certificates(root.read_bytes())[0])
    except (OSError, ValueError, IndexError):
        raise CLIError(f"error reading root certificate {root}") from None


def read_cert(path: Path) -> SSHCertificate:
    try:
        return ssh_keys.load_certificate(ssh_keys.read_input(str(path)))
    except CLIError as exc:
        raise CLIError(f"error reading ssh certificate from {path}: {exc}") from None


def sshpop_provisioner(client: CAClient, wanted: str | None) -> str:
    """The name of the CA's SSHPOP provisioner (by --provisioner, or the only one)."""
    found = [
        str(p.get("name", ""))
        for p in client.provisioners()
        if str(p.get("type", "")).upper() == "SSHPOP" and (not wanted or p.get("name") == wanted)
    ]
    if not found:
        named = f" named {wanted!r}" if wanted else ""
        raise CLIError(f"cannot find an SSHPOP provisioner{named} on the CA")
    if len(found) > 1:
        raise CLIError(
            f"more than one SSHPOP provisioner ({', '.join(found)}): use '--provisioner'"
        )
    return found[0]


def sshpop_token(
    client: CAClient,
    root: Path,
    *,
    cert_file: Path,
    key_file: Path,
    path: str,
    provisioner: str | None,
    password_file: Path | None,
) -> tuple[str, SSHCertificate]:
    """A token for the SSHPOP provisioner, subject = the certificate's serial."""
    cert = read_cert(cert_file)
    password = read_password_file(password_file) if password_file else None
    key = ssh_keys.load_private(key_file, password)
    if ssh_keys.wire_blob(key.public_key()) != ssh_keys.wire_blob(cert.public_key()):
        raise CLIError(
            "error validating SSH certificate and key for use in sshpop header: "
            "the key does not match the certificate"
        )
    name = sshpop_provisioner(client, provisioner)
    ui.selected("Provisioner", f"{name} (SSHPOP)")
    now = int(time.time())
    claims = {
        "aud": f"{audience(client.ca_url, path)}#sshpop/{name}",
        "exp": now + TOKEN_VALIDITY,
        "iat": now,
        "iss": name,
        "jti": secrets.token_hex(32),
        "nbf": now,
        "sha": _root_fingerprint(root),
        "sub": str(cert.serial),
    }
    headers = {
        "kid": public_jwk(key)["kid"],
        "typ": "JWT",
        "sshpop": base64.b64encode(ssh_keys.wire_blob(cert)).decode(),
    }
    return jwt.encode(claims, key, algorithm=default_alg(key), headers=headers), cert


def _ca_flags(provisioner: str | None, password_file: Path | None) -> dict[str, Any]:
    return {"provisioner": provisioner, "password_file": password_file}


def renew_command(
    cert_file: Path = typer.Argument(..., metavar="SSH-CERT", help="The host certificate."),
    key_file: Path = typer.Argument(..., metavar="SSH-KEY", help="Its private key."),
    out: Path | None = typer.Option(
        None, "--out", "--output-file", help="The new certificate (default: SSH-CERT)."
    ),
    provisioner: str | None = typer.Option(
        None, "--provisioner", "--issuer", help="The SSHPOP provisioner."
    ),
    password_file: Path | None = typer.Option(
        None, "--provisioner-password-file", "--password-file", help="The password of SSH-KEY."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite without asking."),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Renew an SSH host certificate with itself as the credential (SSHPOP).

    Examples:

      $ step ssh renew ssh_host_ecdsa_key-cert.pub ssh_host_ecdsa_key --force
    """
    target = out or cert_file
    check_outputs([target], force)
    client, root_path = connect(None, ca_url, root)
    with client:
        ott, cert = sshpop_token(
            client,
            root_path,
            cert_file=cert_file,
            key_file=key_file,
            path="/1.0/ssh/renew",
            **_ca_flags(provisioner, password_file),
        )
        resp = client.json("POST", "/1.0/ssh/renew", json={"ott": ott})
    new = ssh_keys.certificate_from_b64(resp.get("crt"))
    key_id = cert.key_id.decode(errors="replace")
    write_output(target, ssh_keys.authorized_line(new, key_id), mode=0o644)
    ui.selected("Certificate", str(target))


def rekey_command(
    cert_file: Path = typer.Argument(..., metavar="SSH-CERT", help="The host certificate."),
    key_file: Path = typer.Argument(..., metavar="SSH-KEY", help="Its private key."),
    out: Path | None = typer.Option(
        None, "--out", help="The new key (and OUT.pub, OUT-cert.pub); default: SSH-KEY, SSH-CERT."
    ),
    provisioner: str | None = typer.Option(
        None, "--provisioner", "--issuer", help="The SSHPOP provisioner."
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="The password that encrypts the new key (and opens SSH-KEY)."
    ),
    provisioner_password_file: Path | None = typer.Option(
        None, "--provisioner-password-file", help="The password of SSH-KEY."
    ),
    no_password: bool = typer.Option(
        False, "--no-password", help="Do not encrypt the new key (needs --insecure)."
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Allow --no-password."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite without asking."),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """A new key and a certificate for it, authorised by the current host certificate (SSHPOP).

    Examples:

      $ step ssh rekey ssh_host_ecdsa_key-cert.pub ssh_host_ecdsa_key --out new_key
    """
    if out is not None:
        new_key, new_pub, new_cert = out, Path(f"{out}.pub"), Path(f"{out}-cert.pub")
    else:
        new_key, new_pub, new_cert = key_file, Path(f"{key_file}.pub"), cert_file
    check_outputs([new_key, new_pub, new_cert], force)
    password = key_password(no_password, insecure, password_file)
    priv = key_spec("EC", None, 2048).generate()
    client, root_path = connect(None, ca_url, root)
    with client:
        ott, cert = sshpop_token(
            client,
            root_path,
            cert_file=cert_file,
            key_file=key_file,
            path="/1.0/ssh/rekey",
            **_ca_flags(provisioner, provisioner_password_file or password_file),
        )
        public = base64.b64encode(ssh_keys.wire_blob(priv.public_key())).decode()
        body = {"ott": ott, "publicKey": public}
        resp = client.json("POST", "/1.0/ssh/rekey", json=body)
    new = ssh_keys.certificate_from_b64(resp.get("crt"))
    key_id = cert.key_id.decode(errors="replace")
    write_output(new_key, ssh_keys.private_openssh(priv, password), mode=0o600)
    write_output(new_pub, ssh_keys.authorized_line(priv.public_key(), key_id), mode=0o644)
    write_output(new_cert, ssh_keys.authorized_line(new, key_id), mode=0o644)
    ui.selected("Private Key", str(new_key))
    ui.selected("Public Key", str(new_pub))
    ui.selected("Certificate", str(new_cert))


def revoke_command(
    serial: str | None = typer.Argument(
        None, metavar="SERIAL-NUMBER", help="The certificate's serial."
    ),
    token: str | None = typer.Option(None, "--token", help="A revoke token from the provisioner."),
    provisioner: str | None = typer.Option(
        None, "--provisioner", "--issuer", help="The provisioner name to use."
    ),
    password_file: Path | None = typer.Option(
        None,
        "--provisioner-password-file",
        "--password-file",
        help="The provisioner's password, or the password of --sshpop-key.",
    ),
    sshpop_cert: Path | None = typer.Option(
        None, "--sshpop-cert", help="Revoke with this certificate as credential."
    ),
    sshpop_key: Path | None = typer.Option(None, "--sshpop-key", help="The key of --sshpop-cert."),
    reason: str = typer.Option("", "--reason", help="Why the certificate is revoked."),
    reason_code: str | None = typer.Option(
        None, "--reasonCode", "--reason-code", help="0-10 or a name such as keyCompromise."
    ),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Revoke an SSH certificate: by serial with a provisioner token, or with the certificate
    and its key (--sshpop-cert, --sshpop-key). Revoked certificates cannot be renewed.

    Examples:

      $ step ssh revoke 3997477584487736496

      $ step ssh revoke --sshpop-cert id_ecdsa-cert.pub --sshpop-key id_ecdsa
    """
    code = _reason_code(reason_code)
    use_pop = sshpop_cert is not None or sshpop_key is not None
    if use_pop and (sshpop_cert is None or sshpop_key is None):
        raise CLIError("--sshpop-cert and --sshpop-key must be given together")
    if serial is None:
        if not use_pop:
            raise CLIError(
                "--sshpop-cert and --sshpop-key must be supplied if serial number is not "
                "supplied as first argument"
            )
        assert sshpop_cert is not None
        serial = str(read_cert(sshpop_cert).serial)
    client, root_path = connect(token, ca_url, root)
    with client:
        if token:
            ott = token
        elif use_pop:
            assert sshpop_cert is not None and sshpop_key is not None
            ott, _ = sshpop_token(
                client,
                root_path,
                cert_file=sshpop_cert,
                key_file=sshpop_key,
                path="/1.0/ssh/revoke",
                **_ca_flags(provisioner, password_file),
            )
        else:
            ott = new_token(
                client,
                root_path,
                serial,
                [],
                provisioner,
                None,
                password_file,
                None,
                None,
                path="/1.0/ssh/revoke",
            )
        client.json(
            "POST",
            "/1.0/ssh/revoke",
            json={
                "serial": serial,
                "reason": reason,
                "reasonCode": code,
                "ott": ott,
                "passive": True,
            },
        )
    typer.echo(f"SSH Certificate with Serial Number {serial} has been revoked.")
