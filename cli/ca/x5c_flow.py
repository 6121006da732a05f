"""The X5C token flow: a certificate and its key are the credential.

`step ca token|certificate --x5c-cert FILE --x5c-key FILE`: the token's `x5c` header carries the
certificate chain (standard base64 DER, leaf first), the token is signed with the certificate's
key and addressed to the provisioner by the audience fragment `#x5c/<name>`. An encrypted key
is opened with `--password-file` (or a prompt on a terminal).
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cli.ca import ui
from cli.ca.certfiles import CertPair, load_pair
from cli.ca.flows import TokenRequest
from cli.common import CLIError, prompt_password, read_password_file
from pki.jose import default_alg, public_jwk


def _path(value: object, flag: str) -> Path:
    if value in (None, ""):
        raise CLIError(f"flag '{flag}' is required for an X5C provisioner")
    return Path(str(value))


def load_credential(cert_file: Path, key_file: Path, password_file: Path | None = None) -> CertPair:
    """The certificate chain and its key; an encrypted key takes the password file or a prompt."""
    try:
        return load_pair(cert_file, key_file)
    except CLIError as exc:
        if "is encrypted" not in str(exc):
            raise
    password = (
        read_password_file(password_file)
        if password_file
        else prompt_password(f"Please enter the password to decrypt {key_file}")
    )
    return load_pair(cert_file, key_file, password)


def check_credential(pair: CertPair, now: datetime | None = None) -> None:
    """What step checks before using a certificate as a credential (jose.ValidateX5C)."""
    leaf = pair.leaf
    now = now or datetime.now(UTC)
    if now > leaf.not_valid_after_utc:
        raise CLIError(f"the certificate expired on {leaf.not_valid_after_utc.isoformat()}")
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        signs = ku.digital_signature
    except x509.ExtensionNotFound:
        signs = False
    if not signs:
        raise CLIError(
            "error validating x5c certificate chain and key for use in x5c header: "
            "certificate/private-key pair used to sign token is not approved for digital "
            "signature"
        )


def x5c_token(
    pair: CertPair,
    *,
    issuer: str,
    audience: str,
    subject: str,
    sans: list[str] | None,
    not_before: datetime,
    expires: datetime,
    root_fingerprint: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """A JWS with the chain in its `x5c` header, signed by the leaf's key."""
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "aud": audience,
        "exp": int(expires.timestamp()),
        "iat": now,
        "iss": issuer,
        "jti": secrets.token_hex(32),
        "nbf": int(not_before.timestamp()),
        "sub": subject,
    }
    if sans is not None:
        claims["sans"] = sans
    if root_fingerprint:
        claims["sha"] = root_fingerprint
    claims.update(extra or {})
    key: Any = pair.key
    chain = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in pair.chain]
    headers = {"x5c": chain, "kid": public_jwk(key)["kid"], "typ": "JWT"}
    return jwt.encode(claims, key, algorithm=default_alg(key), headers=headers)


def x5c_flow(req: TokenRequest, provisioner: dict[str, Any]) -> str:
    """The X5C flow: `--x5c-cert`/`--x5c-key` sign a token for the named X5C provisioner."""
    name = str(provisioner.get("name", ""))
    cert_file = _path(req.options.get("x5c_cert"), "--x5c-cert")
    key_file = _path(req.options.get("x5c_key"), "--x5c-key")
    ui.selected("Provisioner", f"{name} (X5C)")
    pair = load_credential(cert_file, key_file, req.password_file)
    check_credential(pair)
    # An SSH token carries step's `step.ssh` claim and no `sans`, as the JWK flow's does.
    ssh = req.options.get("ssh")
    return x5c_token(
        pair,
        issuer=name,
        audience=f"{req.audience}#x5c/{name}",
        subject=req.subject,
        sans=None if ssh else req.sans or [req.subject],
        not_before=req.not_before,
        expires=req.expires,
        root_fingerprint=req.root_fingerprint,
        extra={"step": {"ssh": ssh}} if ssh else None,
    )
