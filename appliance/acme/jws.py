"""The JWS of an ACME request (RFC 8555 §6.2): flattened JSON, `jwk` or `kid`, `nonce`,
`url`; the signature checked by jwcrypto (ES256, ES384, RS256, EdDSA only)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from jwcrypto import jwk, jws  # type: ignore[import-untyped]
from jwcrypto.common import JWException  # type: ignore[import-untyped]

from appliance.acme.problems import ACMEProblem, malformed

ALGORITHMS = ("ES256", "ES384", "RS256", "EdDSA")


@dataclass(frozen=True)
class Request:
    """A parsed, not yet verified request: the protected header and the raw payload."""

    text: str
    header: dict[str, Any]
    payload: bytes

    @property
    def nonce(self) -> str:
        return str(self.header.get("nonce") or "")

    @property
    def url(self) -> str:
        return str(self.header.get("url") or "")

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    @property
    def jwk(self) -> dict[str, Any] | None:
        key = self.header.get("jwk")
        return key if isinstance(key, dict) else None

    def json_payload(self) -> dict[str, Any]:
        """The payload as a JSON object ({} for POST-as-GET's empty payload)."""
        if not self.payload:
            return {}
        try:
            value = json.loads(self.payload)
        except ValueError:
            raise malformed("payload is not JSON") from None
        if not isinstance(value, dict):
            raise malformed("payload is not a JSON object")
        return value


def b64decode(text: str) -> bytes:
    """base64url without padding (RFC 7515 §2)."""
    if not isinstance(text, str) or "=" in text:
        raise malformed("invalid base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise malformed("invalid base64url") from None


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse(body: bytes, *, inner: bool = False) -> Request:
    """The request's header and payload; malformed unless it is one flattened JWS whose
    header has alg, nonce, url and exactly one of jwk and kid (`inner`: key-change's inner
    JWS, with a jwk and no nonce)."""
    try:
        text = body.decode("utf-8")  # JSON may be UTF-16 too; JWS text is not
        doc = json.loads(text)
    except ValueError:  # UnicodeDecodeError included
        raise malformed("request body is not UTF-8 JSON") from None
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), str) for k in ("protected", "payload", "signature")
    ):
        raise malformed("request body is not a flattened JWS")
    if "header" in doc or "signatures" in doc:
        raise malformed("unprotected headers are not allowed")
    try:
        header = json.loads(b64decode(doc["protected"]))
    except ValueError:
        raise malformed("protected header is not JSON") from None
    if not isinstance(header, dict):
        raise malformed("protected header is not a JSON object")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise ACMEProblem("badSignatureAlgorithm", f"unsupported algorithm {alg!r}")
    if ("jwk" in header) == ("kid" in header):
        raise malformed("the protected header needs exactly one of jwk and kid")
    if not isinstance(header.get("url"), str):
        raise malformed("the protected header has no url")
    if inner:
        if "nonce" in header or "jwk" not in header:
            raise malformed("the inner JWS needs a jwk and no nonce")
    elif not isinstance(header.get("nonce"), str) or not header["nonce"]:
        raise ACMEProblem("badNonce", "the protected header has no nonce")
    return Request(text, header, b64decode(doc["payload"]))


def load_key(value: dict[str, Any]) -> jwk.JWK:
    """A public JWK (a private one is refused)."""
    try:
        key = jwk.JWK(**value)
    except (JWException, ValueError, TypeError):
        raise malformed("invalid jwk") from None
    if key.has_private:
        raise malformed("the jwk holds a private key")
    return key


def thumbprint(key: jwk.JWK) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: the key authorization's second half."""
    return str(key.thumbprint())


def verify(request: Request, key: jwk.JWK) -> None:
    """Check the signature with `key`; unauthorized... as step-ca: malformed on mismatch."""
    token = jws.JWS()
    token.allowed_algs = list(ALGORITHMS)
    try:
        token.deserialize(request.text)
        token.verify(key)
    except (JWException, ValueError, TypeError):
        raise malformed("verify error: the JWS signature is invalid") from None
