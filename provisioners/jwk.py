"""The JWK provisioner: tokens signed by a key whose private half the operator holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pki.errors import unauthorized
from pki.jose import LEEWAY_SECONDS, JOSEError, default_alg, key_from_jwk
from pki.jws import JWSVerifier, check_claims
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
from provisioners.schema import JWKSchema
from provisioners.ssh import SSHSignGrant, grant, require_ssh_enabled, ssh_claim


class JWKProvisioner(Provisioner):
    """step-ca's JWK provisioner, token checks in step-ca's order."""

    type_name = "JWK"
    config: JWKSchema

    def __init__(self, config: JWKSchema, claims: Claims) -> None:
        super().__init__(config, claims)
        self.kid = config.key.kid
        jwk = {k: v for k, v in config.key.as_json().items() if k != "d"}
        try:
            public = key_from_jwk(jwk)
        except (ValueError, KeyError, TypeError) as exc:
            raise ProvisionerConfigError(f"provisioner {self.name!r}: invalid key: {exc}") from None
        self._alg = config.key.alg or default_alg(public)
        # The key is prepared once; a key PyJWT refuses for the algorithm refuses every token
        # (step-ca's 401), as PyJWT's decode did, rather than stopping the CA.
        self._verifier: JWSVerifier | str
        try:
            self._verifier = JWSVerifier(public, self._alg)
        except JOSEError as exc:
            self._verifier = str(exc)
        self.encrypted_key: str | None = config.encryptedKey or None
        self._extension = (
            None
            if self.claims.disable_smallstep_extensions
            else ProvisionerExtension(int(ProvisionerType.JWK), self.name, self.kid)
        )

    @property
    def id(self) -> str:
        return f"{self.name}:{self.kid}"

    @property
    def lookup_keys(self) -> list[str]:
        return [f"{self.name}:{self.kid}"]

    def authorize(self, token: Token, method: Method, audiences: list[str]) -> SignOptions:
        claims, subject, token_id = self._verified(token, audiences)
        return SignOptions(
            provisioner_name=self.name,
            subject=subject,
            sans=_sans(claims, subject),
            claims=self.claims,
            extension=self._extension,
            token_id=token_id,
            token_expires=datetime.fromtimestamp(float(claims["exp"]), UTC),
            csr_fingerprint=_cnf(claims),
        )

    def authorize_ssh_sign(self, token: Token, audiences: list[str]) -> SSHSignGrant:
        """step-ca's JWK AuthorizeSSHSign: `enableSSHCA`, the token, its `step.ssh` claim."""
        require_ssh_enabled(self.claims, "jwk", self.name)
        claims, subject, token_id = self._verified(token, audiences)
        options = ssh_claim(claims, "jwk")
        expires = datetime.fromtimestamp(float(claims["exp"]), UTC)
        return grant(self.name, subject, options, self.claims, token_id, expires)

    def _verified(self, token: Token, audiences: list[str]) -> tuple[dict[str, Any], str, str]:
        """step-ca's jwk.authorizeToken: the claims, the subject and the single-use id."""
        if token.header.get("alg") != self._alg:
            raise unauthorized(
                f"jwk.authorizeToken; unexpected algorithm {token.header.get('alg')}"
            )
        claims = token.claims
        try:
            if isinstance(self._verifier, str):
                raise JOSEError(self._verifier)
            self._verifier.verify(token.signing_input, token.signature)
            check_claims(claims, leeway=LEEWAY_SECONDS)
        except JOSEError as exc:
            raise unauthorized(f"jwk.authorizeToken; error validating token: {exc}") from None
        if claims.get("iss") != self.name:
            raise unauthorized("jwk.authorizeToken; invalid jwk claims: invalid issuer claim (iss)")
        if not matches(claims.get("aud"), audiences):
            raise unauthorized("jwk.authorizeToken; invalid jwk token audience claim (aud)")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise unauthorized("jwk.authorizeToken; jwk token subject cannot be empty")
        jti = claims.get("jti")
        token_id = str(jti) if isinstance(jti, str) and jti else token_hash(token.raw)
        return claims, subject, token_id


def _sans(claims: dict[str, Any], subject: str) -> tuple[str, ...]:
    raw = claims.get("sans")
    if raw is None or raw == []:
        return (subject,)
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        raise unauthorized("jwk.authorizeToken; invalid sans claim")
    return tuple(raw)


def _cnf(claims: dict[str, Any]) -> str | None:
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, dict) or not isinstance(cnf.get("x5rt#S256", ""), str):
        raise unauthorized(f"jwk.authorizeToken; invalid cnf claim {json.dumps(cnf)[:80]}")
    value = cnf.get("x5rt#S256")
    return str(value) if value else None
