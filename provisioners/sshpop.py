"""SSHPOP tokens: a JWT signed by the key of a current SSH certificate, the certificate in the
`sshpop` header (standard base64 of its wire format), for `/ssh/renew`, `/ssh/rekey` and
`/ssh/revoke` (step-ca's provisioner/sshpop.go, checks in its order and words)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    SSHCertificate,
    SSHCertificateType,
    load_ssh_public_identity,
)

from pki.errors import CAError, ErrorKind, unauthorized
from pki.jose import LEEWAY_SECONDS, JOSEError, verification_algorithms
from pki.jws import JWSVerifier, check_claims
from provisioners.audience import Method, matches
from provisioners.base import Provisioner, SignOptions, Token, token_hash
from provisioners.claims import Claims

# ssh.CertTimeInfinity: a certificate valid forever.
FOREVER = (1 << 64) - 1


def ssh_audiences(dns_names: Sequence[str], path: str, provisioner: str = "") -> list[str]:
    """The audiences of a token for `path` (`ssh/renew`...); for an SSHPOP `provisioner`,
    with step-ca's `#sshpop/<name>` fragment."""
    fragment = f"#sshpop/{provisioner}" if provisioner else ""
    out = []
    for name in dns_names:
        host = f"[{name}]" if ":" in name and not name.startswith("[") else name
        for prefix in ("/1.0/", "/"):
            out.append(f"https://{host}{prefix}{path}{fragment}")
    return out


def _key_text(key: Any) -> bytes:
    return bytes(key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH))


def extract_certificate(token: Token) -> SSHCertificate:
    """The certificate of the `sshpop` header (401 when missing or unreadable)."""
    value = token.header.get("sshpop")
    if not isinstance(value, str):
        raise unauthorized("sshpop.authorizeToken; error extracting sshpop header from token")
    try:
        blob = base64.b64decode(value, validate=True)
        kind = blob[4 : 4 + int.from_bytes(blob[:4], "big")]
        cert = load_ssh_public_identity(kind + b" " + base64.b64encode(blob))
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise unauthorized(
            "sshpop.authorizeToken; error extracting sshpop header from token"
        ) from None
    if not isinstance(cert, SSHCertificate):
        raise unauthorized("sshpop.authorizeToken; sshpop header is not an ssh certificate")
    return cert


@dataclass(frozen=True)
class SSHPOPGrant:
    """An authorised SSHPOP token: the certificate it proves, and its single-use id."""

    provisioner_name: str
    certificate: SSHCertificate
    subject: str
    token_id: str
    token_expires: datetime
    claims: Claims


def authorize_sshpop(
    token: Token,
    name: str,
    claims: Claims,
    ca_keys: dict[SSHCertificateType, list[Any]],
    audiences: list[str],
    *,
    check_validity: bool,
) -> SSHPOPGrant:
    """step-ca's sshpop.authorizeToken: the certificate's validity (unless renewing), its
    signature by one of the CA keys of its type, the token signed by the certificate's key,
    then `iss`, the times, `aud` and `sub`."""
    cert = extract_certificate(token)
    now = int(datetime.now(UTC).timestamp())
    if check_validity:
        if now < cert.valid_after:
            raise unauthorized(
                "sshpop.authorizeToken; sshpop certificate validAfter is in the future"
            )
        if cert.valid_before != FOREVER and now >= cert.valid_before:
            raise unauthorized(
                "sshpop.authorizeToken; sshpop certificate validBefore is in the past"
            )
    try:
        cert.verify_cert_signature()
        signer = _key_text(cert.signature_key())
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        signer = b""
    if not signer or signer not in {_key_text(k) for k in ca_keys.get(cert.type, [])}:
        raise unauthorized(
            "sshpop.authorizeToken; could not find valid ca signer to verify sshpop certificate"
        )
    public = cert.public_key()
    alg = token.header.get("alg")
    if alg not in verification_algorithms(public):
        raise unauthorized("sshpop.authorizeToken; error parsing sshpop token claims")
    try:
        JWSVerifier(public, str(alg)).verify(token.signing_input, token.signature)
        check_claims(token.claims, leeway=LEEWAY_SECONDS)
    except JOSEError as exc:
        raise unauthorized(f"sshpop.authorizeToken; invalid sshpop token: {exc}") from None
    if token.claims.get("iss") != name:
        raise unauthorized("sshpop.authorizeToken; invalid sshpop token: invalid issuer claim")
    if not matches(token.claims.get("aud"), audiences):
        raise unauthorized("sshpop.authorizeToken; sshpop token has invalid audience claim (aud)")
    subject = token.claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise unauthorized("sshpop.authorizeToken; sshpop token subject cannot be empty")
    jti = token.claims.get("jti")
    return SSHPOPGrant(
        provisioner_name=name,
        certificate=cert,
        subject=subject,
        token_id=str(jti) if isinstance(jti, str) and jti else token_hash(token.raw),
        token_expires=datetime.fromtimestamp(float(token.claims["exp"]), UTC),
        claims=claims,
    )


class SSHPOPProvisioner(Provisioner):
    """The SSHPOP entry of ca.json: listed by `/provisioners` and found by its tokens'
    `#sshpop/<name>` fragment; its tokens are checked by `authorize_sshpop` (which needs
    the CA's SSH keys), and it signs no X.509 certificate."""

    type_name = "SSHPOP"

    @property
    def id(self) -> str:
        return f"sshpop/{self.name}"

    @property
    def lookup_keys(self) -> list[str]:
        return [f"sshpop/{self.name}"]

    def authorize(self, token: Token, method: Method, audiences: list[str]) -> SignOptions:
        raise unauthorized("provisioner.AuthorizeSign not implemented")


def require_host(cert: SSHCertificate) -> None:
    """Renew and rekey take host certificates only."""
    if cert.type != SSHCertificateType.HOST:
        raise CAError(
            ErrorKind.BAD_REQUEST,
            "sshpop certificate must be a host ssh certificate",
            public="sshpop certificate must be a host ssh certificate",
        )
