"""The X5C provisioner: a certificate as the credential.

The token carries a certificate chain in its `x5c` header (standard base64 DER, leaf first) and
is signed by the leaf's key. The chain must verify to the provisioner's roots, for client
authentication, at the current time; the issued certificate never outlives the presented one.

Configuration (ca.json `authority.provisioners[]`)::

    {"type": "X5C", "name": "x5c",
     "roots": "<standard base64 of a PEM bundle>",     # step-ca's field ([]byte in Go)
     "claims": {...}, "options": {...}}

Stepstone also reads the roots from a file, which keeps a long bundle out of ca.json::

    {"type": "X5C", "name": "x5c", "stepstone": {"rootsFile": "certs/x5c_roots.pem"}}

A relative `rootsFile` hangs off $STEPPATH like every path in ca.json. When both are given the
roots are the union of the two. step-ca itself ignores `stepstone` and requires `roots`, so a
ca.json meant for both servers should keep `roots`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from pki.errors import unauthorized
from pki.jose import LEEWAY_SECONDS, verification_algorithms
from pki.steppath import resolve
from provisioners.audience import Method, matches
from provisioners.base import (
    Provisioner,
    ProvisionerConfigError,
    SignOptions,
    Token,
    token_hash,
)
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.schema import X5CSchema
from provisioners.ssh import SSHSignGrant, grant, require_ssh_enabled, ssh_claim

#: The most certificates a token's `x5c` header may carry (leaf + intermediates).
MAX_CHAIN = 8
_PREFIX = "x5c.authorizeToken; "


def decode_roots(value: object) -> bytes:
    """The PEM bundle of a `roots` value: Go marshals []byte as standard base64."""
    if not isinstance(value, str):
        raise ValueError("roots must be a base64 string")
    try:
        return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("roots is not valid base64") from None


def encode_roots(pem: bytes) -> str:
    """The `roots` value for a PEM bundle (what `step ca provisioner add --x5c-roots` writes)."""
    return base64.b64encode(pem).decode()


def parse_roots(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; ValueError when there is none or one is broken."""
    if b"-----BEGIN" not in pem:
        raise ValueError("no PEM certificates found")
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ValueError(f"error parsing x509 certificate from PEM block: {exc}") from None




def _ee_policy() -> ExtensionPolicy:
    # Like Go's x509.Verify, a leaf needs no SAN or key identifiers; key usages are checked
    # below with step-ca's messages. CA certificates get the full RFC 5280 CA profile.
    return ExtensionPolicy.permit_all()


class X5CProvisioner(Provisioner):
    """step-ca's X5C provisioner (X.509 sign and revoke tokens, SSH certificates)."""

    type_name = "X5C"
    config: X5CSchema

    def __init__(self, config: X5CSchema, claims: Claims) -> None:
        super().__init__(config, claims)
        pem = b""
        if config.roots:
            try:
                pem += decode_roots(config.roots) + b"\n"
            except ValueError as exc:
                raise ProvisionerConfigError(f"provisioner {self.name!r}: {exc}") from None
        roots_file = config.stepstone.rootsFile if config.stepstone else None
        if roots_file:
            path: Path = resolve(roots_file)
            try:
                pem += path.read_bytes()
            except OSError as exc:
                raise ProvisionerConfigError(
                    f"provisioner {self.name!r}: error reading {path}: {exc.strerror}"
                ) from None
        if not pem:
            raise ProvisionerConfigError(f"provisioner {self.name!r}: root(s) cannot be empty")
        try:
            self.roots = parse_roots(pem)
        except ValueError as exc:
            raise ProvisionerConfigError(
                f"no x509 certificates found in roots attribute for provisioner {self.name}: {exc}"
            ) from None
        self._store = Store(self.roots)
        self._jwt = jwt.PyJWT()

    @property
    def id(self) -> str:
        return f"x5c/{self.name}"

    @property
    def lookup_keys(self) -> list[str]:
        return [f"x5c/{self.name}"]

    # --- the token ------------------------------------------------------------------------

    def _chain(self, token: Token) -> list[x509.Certificate]:
        header = token.header.get("x5c")
        if not isinstance(header, list) or not header:
            raise unauthorized(f"{_PREFIX}error parsing x5c token: missing x5c header")
        if len(header) > MAX_CHAIN:
            raise unauthorized(f"{_PREFIX}error parsing x5c token: x5c chain is too long")
        certs: list[x509.Certificate] = []
        for item in header:
            if not isinstance(item, str):
                raise unauthorized(f"{_PREFIX}error parsing x5c token: invalid x5c entry")
            try:
                der = base64.b64decode(item, validate=True)
                certs.append(x509.load_der_x509_certificate(der))
            except (binascii.Error, ValueError):
                raise unauthorized(
                    f"{_PREFIX}error parsing x5c token: invalid x5c certificate"
                ) from None
        return certs

    def verify_chain(
        self, chain: list[x509.Certificate], now: datetime | None = None
    ) -> x509.Certificate:
        """Verify `chain` (leaf first) to the roots for client authentication; the leaf."""
        leaf, intermediates = chain[0], chain[1:]
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now or datetime.now(UTC))
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_ee_policy()
            )
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, intermediates)
        except VerificationError as exc:
            raise unauthorized(
                f"{_PREFIX}error verifying x5c certificate chain in token: {exc}"
            ) from None
        # Go's rule: a certificate without extendedKeyUsage may be used for anything.
        try:
            eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = None
        if eku is not None and not (
            ExtendedKeyUsageOID.CLIENT_AUTH in eku
            or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
        ):
            raise unauthorized(
                f"{_PREFIX}error verifying x5c certificate chain in token: x509: "
                "certificate specifies an incompatible key usage"
            )
        try:
            ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
            digital_signature = ku.digital_signature
        except x509.ExtensionNotFound:
            digital_signature = False
        if not digital_signature:
            raise unauthorized(
                f"{_PREFIX}certificate used to sign x5c token cannot be used for digital signature"
            )
        return leaf

    def _claims(self, token: Token, leaf: x509.Certificate) -> dict[str, Any]:
        key = leaf.public_key()
        algorithms = verification_algorithms(key)
        if token.header.get("alg") not in algorithms:
            raise unauthorized(
                f"{_PREFIX}error parsing x5c claims: unexpected algorithm {token.header.get('alg')}"
            )
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token.raw,
                key=key,  # type: ignore[arg-type]
                algorithms=algorithms,
                leeway=LEEWAY_SECONDS,
                options={"verify_aud": False, "verify_iss": False, "require": ["exp"]},
            )
        except jwt.PyJWTError as exc:
            raise unauthorized(f"{_PREFIX}error parsing x5c claims: {exc}") from None
        return claims

    def _verified(
        self, token: Token, audiences: list[str]
    ) -> tuple[dict[str, Any], x509.Certificate, str, str]:
        """step-ca's x5c.authorizeToken: (claims, leaf, subject, single-use id)."""
        chain = self._chain(token)
        leaf = self.verify_chain(chain)
        claims = self._claims(token, leaf)
        if claims.get("iss") != self.name:
            raise unauthorized(f"{_PREFIX}invalid x5c claims: invalid issuer claim (iss)")
        allowed = [f"{aud}#{self.id}" for aud in audiences]
        if not matches(claims.get("aud"), allowed):
            raise unauthorized(f"{_PREFIX}x5c token has invalid audience claim (aud)")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise unauthorized(f"{_PREFIX}x5c token subject cannot be empty")
        jti = claims.get("jti")
        token_id = str(jti) if isinstance(jti, str) and jti else token_hash(token.raw)
        return claims, leaf, subject, token_id

    def authorize_ssh_sign(self, token: Token, audiences: list[str]) -> SSHSignGrant:
        """step-ca's X5C AuthorizeSSHSign: `enableSSHCA`, a token for `/ssh/sign` with the
        `step.ssh` claim (user or host; key ID and principals from it, else the subject, as
        JWK), and no certificate outliving the presented one."""
        require_ssh_enabled(self.claims, "x5c", self.name)
        ssh_only = [a for a in audiences if a.endswith("/ssh/sign")]
        claims, leaf, subject, token_id = self._verified(token, ssh_only)
        options = ssh_claim(claims, "x5c")
        expires = datetime.fromtimestamp(float(claims["exp"]), UTC)
        found = grant(self.name, subject, options, self.claims, token_id, expires)
        return replace(found, not_after_limit=leaf.not_valid_after_utc)

    def authorize(self, token: Token, method: Method, audiences: list[str]) -> SignOptions:
        claims, leaf, subject, token_id = self._verified(token, audiences)
        extension = None
        if not self.claims.disable_smallstep_extensions:
            extension = ProvisionerExtension(int(ProvisionerType.X5C), self.name, "")
        return SignOptions(
            provisioner_name=self.name,
            subject=subject,
            sans=_sans(claims, subject),
            claims=self.claims,
            extension=extension,
            token_id=token_id,
            token_expires=datetime.fromtimestamp(float(claims["exp"]), UTC),
            csr_fingerprint=_cnf(claims),
            not_after_limit=leaf.not_valid_after_utc,
            extra={"x5c_leaf": leaf},
        )


def _sans(claims: dict[str, Any], subject: str) -> tuple[str, ...]:
    raw = claims.get("sans")
    if raw is None or raw == []:
        return (subject,)
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        raise unauthorized(f"{_PREFIX}invalid sans claim")
    return tuple(raw)


def _cnf(claims: dict[str, Any]) -> str | None:
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, dict) or not isinstance(cnf.get("x5rt#S256", ""), str):
        raise unauthorized(f"{_PREFIX}invalid cnf claim {json.dumps(cnf)[:80]}")
    value = cnf.get("x5rt#S256")
    return str(value) if value else None
