"""`step ssh certificate`: a new key pair (or an existing public key) signed by the CA's SSH
user or host key through `POST /ssh/sign`, with the one-time token of `step ca token`
carrying step's `step.ssh` claim."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from cryptography.hazmat.primitives.serialization import SSHCertificate

from cli import ssh_agent, ssh_keys
from cli.ca import ui
from cli.ca.client import CAClient
from cli.ca.defaults import CA_URL_HELP, ROOT_HELP, flag_value, require_ca_url, require_root
from cli.ca.issue import key_spec, new_token
from cli.ca.tokens import audience, unverified_claims
from cli.common import CLIError, check_outputs, prompt_password, read_password_file, write_output


def sanitize_principal(subject: str) -> str:
    """step-ca's user principal from an email or name: local part, lower case, dots
    dropped, anything but [a-z0-9-] turned into '_'."""
    name = subject[: subject.rfind("@")] if "@" in subject else subject
    return re.sub(r"[^a-z0-9\-]", "_", name.lower().replace(".", ""))


def default_principals(subject: str, host: bool) -> list[str]:
    """step's principals when none are given: the host name, or for a user the sanitized
    name, the email's local part and the subject itself (each once)."""
    if host:
        return [subject]
    name = sanitize_principal(subject)
    principals = [name]
    if "@" in subject:
        local = subject[: subject.rfind("@")]
        if local.lower() != name.lower():
            principals.append(local)
    if subject != name:
        principals.append(subject)
    return principals


def token_principals(token: str | None) -> list[str]:
    """The principals a given token's `step.ssh` claim allows (the CA accepts no others, so
    they are the default for the request, as `step ca certificate --token` takes its SANs)."""
    if not token:
        return []
    step = unverified_claims(token).get("step")
    ssh = step.get("ssh") if isinstance(step, dict) else None
    found = ssh.get("principals") if isinstance(ssh, dict) else None
    return [str(p) for p in found] if isinstance(found, list) else []


def connect(token: str | None, ca_url: str | None, root: str | None) -> tuple[CAClient, Path]:
    """A client of the CA named by --ca-url (or the token's audience) trusting --root."""
    url = flag_value(ca_url, "ca-url")
    if not url and token:
        aud = unverified_claims(token).get("aud")
        aud0 = aud[0] if isinstance(aud, list) and aud else aud
        if isinstance(aud0, str) and "://" in aud0:
            url = audience(aud0, "")
    root_path = require_root(root)
    return CAClient(require_ca_url(url), root_path), root_path


def ssh_token(
    client: CAClient,
    root: Path,
    *,
    key_id: str,
    cert_type: str,
    principals: list[str],
    valid_after: str,
    valid_before: str,
    provisioner: str | None,
    password_file: Path | None,
    x5c: tuple[Path, Path] | None = None,
) -> str:
    """A one-time token for /ssh/sign from the chosen provisioner (with --x5c-cert and
    --x5c-key, an X5C token; with a cloud provisioner, the instance's identity token)."""
    claim = {
        "certType": cert_type,
        "keyID": key_id,
        "principals": principals,
        "validAfter": valid_after,
        "validBefore": valid_before,
    }
    return new_token(
        client,
        root,
        key_id,
        [],
        provisioner,
        None,
        password_file,
        None,
        None,
        path="/1.0/ssh/sign",
        options={"ssh": claim, "x5c_cert": x5c[0], "x5c_key": x5c[1]} if x5c else {"ssh": claim},
    )


def sign(client: CAClient, body: dict[str, Any]) -> tuple[SSHCertificate, SSHCertificate | None]:
    """POST /ssh/sign; the certificate and the add-user certificate (if asked for)."""
    resp = client.json("POST", "/1.0/ssh/sign", json=body)
    cert = ssh_keys.certificate_from_b64(resp.get("crt"))
    add_user = resp.get("addUserCrt")
    return cert, ssh_keys.certificate_from_b64(add_user) if add_user else None


def sign_body(
    public_key: Any,
    ott: str,
    cert_type: str,
    key_id: str,
    principals: list[str],
    valid_after: str,
    valid_before: str,
    add_user_key: Any = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "publicKey": base64.b64encode(ssh_keys.wire_blob(public_key)).decode(),
        "ott": ott,
        "certType": cert_type,
        "keyID": key_id,
        "principals": principals,
        "validAfter": valid_after,
        "validBefore": valid_before,
    }
    if add_user_key is not None:
        body["addUserPublicKey"] = base64.b64encode(ssh_keys.wire_blob(add_user_key)).decode()
    return body


def one_minute_ago() -> str:
    """A validAfter in the past, so clocks a little apart do not make a 'not yet valid' cert."""
    return (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_password(no_password: bool, insecure: bool, password_file: Path | None) -> bytes | None:
    if no_password and not insecure:
        raise CLIError("flag '--no-password' requires the '--insecure' flag")
    if no_password and password_file:
        raise CLIError("flag '--no-password' is incompatible with '--password-file'")
    if no_password:
        return None
    if password_file:
        password = read_password_file(password_file)
    else:
        password = prompt_password("Please enter the password to encrypt the private key")
    if not password:
        raise CLIError("the password to encrypt the private key cannot be empty")
    return password


def certificate_command(
    key_id: str = typer.Argument(..., metavar="KEY-ID", help="The certificate identity."),
    key_file: Path = typer.Argument(
        ..., metavar="KEY-FILE", help="The private key to create, or the public key with --sign."
    ),
    host: bool = typer.Option(
        False, "--host", help="Create a host certificate instead of a user certificate."
    ),
    principal: list[str] = typer.Option(
        [],
        "--principal",
        "-n",
        help="A principal (user or host name) for the certificate (repeatable).",
    ),
    sign_key: bool = typer.Option(
        False, "--sign", help="Sign the public key KEY-FILE instead of creating one."
    ),
    private_key: Path | None = typer.Option(
        None,
        "--private-key",
        help="With --sign: the private key, so the pair can go to the SSH agent.",
    ),
    token: str | None = typer.Option(
        None, "--token", help="A one-time token from 'step ca token --ssh'."
    ),
    provisioner: str | None = typer.Option(
        None, "--provisioner", "--issuer", help="The provisioner name to use."
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="File with the password that encrypts the private key."
    ),
    provisioner_password_file: Path | None = typer.Option(
        None,
        "--provisioner-password-file",
        help="File with the password that decrypts the provisioner key.",
    ),
    not_before: str | None = typer.Option(
        None, "--not-before", help="Certificate valid from (RFC 3339 time or duration)."
    ),
    not_after: str | None = typer.Option(
        None, "--not-after", help="Certificate valid until (RFC 3339 time or duration)."
    ),
    add_user: bool = typer.Option(
        False, "--add-user", help="Also create a provisioner certificate used to add the user."
    ),
    comment: str | None = typer.Option(
        None, "--comment", help="The comment of the key in the SSH agent (default KEY-ID)."
    ),
    no_password: bool = typer.Option(
        False, "--no-password", help="Do not encrypt the private key (needs --insecure)."
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Allow --no-password."),
    no_agent: bool = typer.Option(
        False, "--no-agent", help="Do not add the certificate and key to the SSH agent."
    ),
    kty: str = typer.Option("EC", "--kty", help="Key type: EC, RSA or OKP."),
    curve: str | None = typer.Option(None, "--curve", "--crv", help="EC curve or OKP curve."),
    size: int = typer.Option(2048, "--size", help="RSA key size in bits."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing files."),
    x5c_cert: Path | None = typer.Option(
        None, "--x5c-cert", help="Certificate (chain) that is the credential of an X5C provisioner."
    ),
    x5c_key: Path | None = typer.Option(None, "--x5c-key", help="The private key of --x5c-cert."),
    ca_url: str | None = typer.Option(None, "--ca-url", help=CA_URL_HELP),
    root: str | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Get an SSH certificate for KEY-ID: writes KEY-FILE, KEY-FILE.pub and KEY-FILE-cert.pub.

    The private key is written in OpenSSH format, encrypted with a password unless
    --no-password --insecure. Without --principal, a user certificate gets the name part of
    KEY-ID (and KEY-ID itself) as principals; a host certificate gets KEY-ID. User
    certificates also go to the SSH agent unless --no-agent.

    Examples:

      $ step ssh certificate mariano@work id_ecdsa

      $ step ssh certificate --host internal.example.com ssh_host_ecdsa_key --no-password --insecure

      $ step ssh certificate --sign mariano@work id_ecdsa.pub --not-after 2h

    With a cloud provisioner (AWS, GCP, Azure) on its VM, --host gets a host certificate
    for the instance (the identity token comes from the metadata service); with
    --x5c-cert/--x5c-key a certificate chain trusted by an X5C provisioner is the credential.
    """
    if token and provisioner_password_file:
        raise CLIError("flag '--token' is incompatible with '--provisioner-password-file'")
    if (x5c_cert is None) != (x5c_key is None):
        raise CLIError("flags '--x5c-cert' and '--x5c-key' must be given together")
    if token and x5c_cert:
        raise CLIError("flag '--token' is incompatible with '--x5c-cert'")
    if host and add_user:
        raise CLIError("flag '--host' is incompatible with '--add-user'")
    if add_user and len(principal) > 1:
        raise CLIError("flag '--add-user' is incompatible with more than one principal")
    cert_type = "host" if host else "user"
    principals = list(principal) or token_principals(token) or default_principals(key_id, host)
    label = comment or key_id
    base = str(key_file)
    pub_file, crt_file = Path(base + ".pub"), Path(base + "-cert.pub")
    priv: Any = None
    if sign_key:
        public, _ = ssh_keys.parse_public(ssh_keys.read_input(base))
        if isinstance(public, SSHCertificate):
            raise CLIError("error parsing ssh public key: the file holds a certificate")
        if base.endswith(".pub"):
            crt_file = Path(base[:-4] + "-cert.pub")
        if private_key is not None:
            priv = ssh_keys.load_private(private_key, None)
        outputs = [crt_file]
        password = None
    else:
        priv = key_spec(kty, curve, size).generate()
        public = priv.public_key()
        outputs = [key_file, pub_file, crt_file]
        password = key_password(no_password, insecure, password_file)
    add_user_priv = key_spec(kty, curve, size).generate() if add_user else None
    add_base = (base[:-4] if sign_key and base.endswith(".pub") else base) + "-provisioner"
    if add_user:
        outputs += [Path(add_base), Path(add_base + ".pub"), Path(add_base + "-cert.pub")]
    check_outputs(outputs, force)
    client, root_path = connect(token, ca_url, root)
    with client:
        valid_after, valid_before = not_before or "", not_after or ""
        ott = token or ssh_token(
            client,
            root_path,
            key_id=key_id,
            cert_type=cert_type,
            principals=principals,
            valid_after=valid_after,
            valid_before=valid_before,
            provisioner=provisioner,
            password_file=provisioner_password_file or password_file,
            x5c=(x5c_cert, x5c_key) if x5c_cert and x5c_key else None,
        )
        body = sign_body(
            public,
            ott,
            cert_type,
            key_id,
            principals,
            valid_after,
            valid_before,
            add_user_priv.public_key() if add_user_priv is not None else None,
        )
        cert, add_user_cert = sign(client, body)
    if not sign_key:
        write_output(key_file, ssh_keys.private_openssh(priv, password), mode=0o600)
        write_output(pub_file, ssh_keys.authorized_line(public, key_id), mode=0o644)
    write_output(crt_file, ssh_keys.authorized_line(cert, key_id), mode=0o644)
    if add_user_priv is not None and add_user_cert is not None:
        add_id = sanitize_principal(key_id) + "-provisioner"
        write_output(Path(add_base), ssh_keys.private_openssh(add_user_priv, None), mode=0o600)
        write_output(
            Path(add_base + ".pub"),
            ssh_keys.authorized_line(add_user_priv.public_key(), add_id),
            mode=0o644,
        )
        write_output(
            Path(add_base + "-cert.pub"),
            ssh_keys.authorized_line(add_user_cert, add_id),
            mode=0o644,
        )
    if not sign_key:
        ui.selected("Private Key", str(key_file))
        ui.selected("Public Key", str(pub_file))
    ui.selected("Certificate", str(crt_file))
    if not no_agent and priv is not None and cert_type == "user":
        try:
            ssh_agent.add_certificate(label, cert, priv)
            ui.selected("SSH Agent", "yes")
        except CLIError as exc:
            ui.note(f"✖ SSH Agent: {exc}")
    if add_user_cert is not None:
        ui.selected("Add User Private Key", add_base)
        ui.selected("Add User Public Key", add_base + ".pub")
        ui.selected("Add User Certificate", add_base + "-cert.pub")
