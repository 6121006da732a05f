"""One-time tokens for the tests, made like `step ca token` makes them.

The provisioner key is fetched from the running CA (/provisioners and
/provisioners/{kid}/encrypted-key), decrypted with the provisioner password and used to sign
JWTs with PyJWT; every claim can be overridden so each refusal case changes exactly one thing.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from pki.jose import AnyKey, default_alg, key_from_jwk
from pki.jwe import decrypt_jwk

_UNSET: Any = object()


@dataclass(frozen=True)
class TokenMaker:
    """Signs tokens for one JWK provisioner of one CA."""

    ca_url: str
    provisioner: str
    kid: str
    key: AnyKey
    alg: str
    root_fingerprint: str

    @classmethod
    def fetch(
        cls,
        http: httpx.Client,
        password: str,
        root_fingerprint: str,
        provisioner: str | None = None,
    ) -> TokenMaker:
        """Find the JWK provisioner (by name, or the first), fetch and decrypt its key."""
        resp = http.get("/provisioners", params={"limit": "100"})
        assert resp.status_code == 200, resp.text
        items = resp.json()["provisioners"]
        jwks = [p for p in items if p["type"] == "JWK"]
        if provisioner is not None:
            jwks = [p for p in jwks if p["name"] == provisioner]
        assert jwks, f"no JWK provisioner {provisioner!r} in {items}"
        prov = jwks[0]
        kid = prov["key"]["kid"]
        resp = http.get(f"/provisioners/{kid}/encrypted-key")
        assert resp.status_code == 200, resp.text
        jwk = decrypt_jwk(resp.json()["key"], password)
        key = key_from_jwk(jwk)
        alg = str(jwk.get("alg") or default_alg(key))
        return cls(str(http.base_url).rstrip("/"), prov["name"], kid, key, alg, root_fingerprint)

    @property
    def audience(self) -> str:
        """The sign audience: https://127.0.0.1:PORT/1.0/sign."""
        return f"{self.ca_url}/1.0/sign"

    def token(
        self,
        sub: str,
        sans: list[str] | None = None,
        *,
        aud: Any = _UNSET,
        iss: Any = _UNSET,
        iat: int | None = None,
        nbf: int | None = None,
        exp: int | None = None,
        jti: Any = _UNSET,
        key: AnyKey | None = None,
        kid: str | None = None,
        alg: str | None = None,
        extra: dict[str, Any] | None = None,
        omit: tuple[str, ...] = (),
    ) -> str:
        """A sign token; defaults: iat = nbf = now, exp = now + 5 min, random 64-hex jti.

        A claim given as None, or named in `omit`, is left out of the token.
        """
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.provisioner if iss is _UNSET else iss,
            "aud": self.audience if aud is _UNSET else aud,
            "sub": sub,
            "sans": list(sans) if sans is not None else [sub],
            "sha": self.root_fingerprint,
            "iat": now if iat is None else iat,
            "nbf": now if nbf is None else nbf,
            "exp": now + 300 if exp is None else exp,
            "jti": secrets.token_hex(32) if jti is _UNSET else jti,
        }
        claims = {k: v for k, v in claims.items() if v is not None and k not in omit}
        claims.update(extra or {})
        return jwt.encode(
            claims,
            key or self.key,  # type: ignore[arg-type]
            algorithm=alg or self.alg,
            headers={"kid": kid or self.kid, "typ": "JWT"},
        )


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims, unverified."""
    return dict(jwt.decode(token, options={"verify_signature": False}))
