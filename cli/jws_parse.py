"""A JWS read the way go-jose v3 reads it (ParseSigned, then CompactSerialize's checks).

`step crypto jwt inspect` prints what go-jose accepts and fails with go-jose's messages:
base64url with trailing '=' tolerated, the protected header unmarshalled into go-jose's
rawHeader (known keys type-checked, an embedded x5c parsed, an embedded JWK public), and the
JSON serialisation accepted only when it can be written compactly.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from cli.certinfo import CertParseError, parse_certificate
from cli.common import CLIError
from cli.go_json import GoJSONError, JSONObject, JSONValue, go_compact, json_type, parse_go_json

_RAW_URL = re.compile(r"[A-Za-z0-9_-]*")
_NOT_COMPACT = "error serializing token: compact serialization not supported for object"


@dataclass
class ParsedJWS:
    header: dict[str, JSONValue]
    payload: bytes
    signature: bytes


def base64url_decode(value: str) -> bytes:
    """go-jose's base64URLDecode: trailing '=' trimmed, then unpadded URL-safe base64."""
    value = value.rstrip("=")
    match = _RAW_URL.match(value)
    bad = match.end() if match else 0
    if bad < len(value):
        raise CLIError(f"error parsing token: illegal base64 data at input byte {bad}")
    if len(value) % 4 == 1:
        raise CLIError(f"error parsing token: illegal base64 data at input byte {len(value) - 1}")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the checks above
        raise CLIError("error parsing token: illegal base64 data at input byte 0") from None


def _parse(data: bytes) -> JSONValue:
    try:
        return parse_go_json(data)
    except GoJSONError as exc:
        raise CLIError(f"error parsing token: {exc}") from None


def _members(value: JSONObject) -> dict[str, JSONValue]:
    return dict(value.members)  # the last duplicate wins, as in Go


def _parse_header(raw: bytes) -> dict[str, JSONValue]:
    """json.Unmarshal into go-jose's rawHeader (map[HeaderKey]*json.RawMessage)."""
    value = _parse(raw)
    if value is None:
        raise CLIError(_NOT_COMPACT)
    if not isinstance(value, JSONObject):
        raise CLIError(
            f"error parsing token: json: cannot unmarshal {json_type(value)} "
            "into Go value of type jose.rawHeader"
        )
    return _members(value)


def _sanitize_header(header: dict[str, JSONValue]) -> None:
    """go-jose's rawHeader.sanitized and the embedded-JWK check, with their messages."""
    labels = {"kid": "key ID", "alg": "algorithm", "nonce": "nonce"}
    for key, value in header.items():
        if value is None:
            continue
        raw_text = json.dumps(go_compact(value))
        if key in labels and json_type(value) != "string":
            raise CLIError(
                f"error parsing token: failed to unmarshal {labels[key]}: json: cannot "
                f"unmarshal {json_type(value)} into Go value of type string: {raw_text}"
            )
        if key == "x5c":
            _check_x5c(value, raw_text)
        if key == "jwk":
            _check_jwk(value, raw_text)


def _check_x5c(value: JSONValue, raw_text: str) -> None:
    prefix = "error parsing token: failed to unmarshal x5c header"
    if not isinstance(value, list) or any(json_type(item) != "string" for item in value):
        raise CLIError(
            f"{prefix}: json: cannot unmarshal {json_type(value)} into Go value of type "
            f"[]string: {raw_text}"
        )
    for item in value:
        try:
            der = base64.b64decode(str(item), validate=True)
            parse_certificate(der)
        except (ValueError, binascii.Error) as exc:
            reason = str(exc) if isinstance(exc, CertParseError) else "illegal base64 data"
            raise CLIError(f"{prefix}: {reason}: {raw_text}") from None


def _check_jwk(value: JSONValue, raw_text: str) -> None:
    if not isinstance(value, JSONObject):
        raise CLIError(
            f"error parsing token: failed to unmarshal JWK: json: cannot unmarshal "
            f"{json_type(value)} into Go value of type jose.rawJSONWebKey: {raw_text}"
        )
    fields = _members(value)
    kty_value = fields.get("kty")
    kty = str(kty_value) if json_type(kty_value) == "string" else ""
    if kty not in ("EC", "RSA", "OKP", "oct"):
        raise CLIError(
            f"error parsing token: failed to unmarshal JWK: go-jose/go-jose: unknown json "
            f"web key type '{kty}': {raw_text}"
        )
    private = {"d", "p", "q", "dp", "dq", "qi"}
    if kty == "oct" or private & fields.keys():
        raise CLIError("error parsing token: invalid embedded jwk, must be public key")


def _buffer(name: str, holder: dict[str, JSONValue]) -> bytes | None:
    """A base64url member of the JSON serialisation (go-jose's byteBuffer)."""
    value = holder.get(name)
    if value is None:
        return None
    if json_type(value) != "string":
        raise CLIError(
            f"error parsing token: json: cannot unmarshal {json_type(value)} "
            "into Go value of type string"
        )
    return base64url_decode(str(value))


def _parse_json_serialization(token: str) -> ParsedJWS:
    """go-jose's parseSignedFull followed by the checks of CompactSerialize."""
    document = _parse(token.encode())
    if not isinstance(document, JSONObject):
        raise CLIError(
            f"error parsing token: json: cannot unmarshal {json_type(document)} "
            "into Go value of type jose.rawJSONWebSignature"
        )
    fields = _members(document)
    payload = _buffer("payload", fields)
    if payload is None:
        raise CLIError("error parsing token: missing payload in JWS message")
    signatures = fields.get("signatures")
    entries: list[dict[str, JSONValue]]
    if isinstance(signatures, list) and signatures:
        entries = []
        for item in signatures:
            if not isinstance(item, JSONObject):
                raise CLIError(
                    f"error parsing token: json: cannot unmarshal {json_type(item)} "
                    "into Go value of type jose.rawSignatureInfo"
                )
            entries.append(_members(item))
    else:
        entries = [fields]
    if len(entries) != 1:
        raise CLIError(_NOT_COMPACT)
    entry = entries[0]
    protected = _buffer("protected", entry)
    header = _parse_header(protected) if protected else None
    if header is not None:
        _sanitize_header(header)
    if entry.get("header") is not None or header is None:
        raise CLIError(_NOT_COMPACT)
    return ParsedJWS(header, payload, _buffer("signature", entry) or b"")


def parse_jws(token: str) -> ParsedJWS:
    """jose.ParseJWS (go-jose v3 ParseSigned) on whitespace-stripped input."""
    token = "".join(ch for ch in token if not ch.isspace())
    if token.startswith("{"):
        return _parse_json_serialization(token)
    if token.count(".") != 2:
        raise CLIError("error parsing token: compact JWS format must have three parts")
    protected_b64, payload_b64, signature_b64 = token.split(".")
    protected = base64url_decode(protected_b64)
    payload = base64url_decode(payload_b64)
    signature = base64url_decode(signature_b64)
    if not protected:
        raise CLIError(_NOT_COMPACT)
    header = _parse_header(protected)
    _sanitize_header(header)
    return ParsedJWS(header, payload, signature)
