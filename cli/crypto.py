"""`step crypto`: cryptographic building blocks; here `step crypto jwt inspect`.

`jwt inspect` follows smallstep/cli's command/crypto/jwt/inspect.go: the first line of
standard input is parsed as a JWS by go-jose v3 (compact form, or JSON serialisation with a
single signature and no unprotected header), re-serialised compactly (go-jose re-encodes the
protected header with sorted keys), and printed by Go's ``json.MarshalIndent`` as
``{"header": ..., "payload": ..., "signature": "..."}`` with two-space indentation. The
payload keeps its own key order and number spelling (it is a ``json.RawMessage``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from dataclasses import dataclass

import typer

from cli.certinfo import CertParseError, parse_certificate
from cli.common import CLIError, die
from cli.helptext import StepTyper

app = StepTyper(help="Useful cryptographic primitives: JSON Web Tokens and more.")
jwt_app = StepTyper(help="Sign, verify and inspect JSON Web Tokens (JWT).")
app.add_typer(jwt_app, name="jwt")


# ============================================================================================
# A JSON scanner with Go's encoding/json rules and messages, keeping every token's raw bytes


class GoJSONError(ValueError):
    """A syntax error, worded as Go's encoding/json words it."""


@dataclass
class Node:
    """A JSON value: kind is "object", "array" or "scalar" (raw bytes kept verbatim)."""

    kind: str
    raw: bytes = b""
    items: list[Node] | None = None
    members: list[tuple[bytes, Node]] | None = None


def _quote_char(char: int) -> str:
    if char == ord("'"):
        return "'\\''"
    if char == ord('"'):
        return "'\"'"
    quoted = json.dumps(chr(char))[1:-1]
    return f"'{quoted}'"


class _Scanner:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def error(self, context: str) -> GoJSONError:
        if self.pos >= len(self.data):
            return GoJSONError("unexpected end of JSON input")
        return GoJSONError(f"invalid character {_quote_char(self.data[self.pos])} {context}")

    def skip_space(self) -> None:
        while self.pos < len(self.data) and self.data[self.pos] in b" \t\r\n":
            self.pos += 1

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def document(self) -> Node:
        node = self.value()
        self.skip_space()
        if self.pos != len(self.data):
            raise self.error("after top-level value")
        return node

    def value(self) -> Node:
        self.skip_space()
        char = self.peek()
        if char == ord("{"):
            return self.object()
        if char == ord("["):
            return self.array()
        if char == ord('"'):
            return Node("scalar", self.string())
        if char == ord("-") or ord("0") <= char <= ord("9"):
            return Node("scalar", self.number())
        for literal in (b"true", b"false", b"null"):
            if char == literal[0]:
                return Node("scalar", self.literal(literal))
        raise self.error("looking for beginning of value")

    def object(self) -> Node:
        self.pos += 1
        members: list[tuple[bytes, Node]] = []
        self.skip_space()
        if self.peek() == ord("}"):
            self.pos += 1
            return Node("object", members=members)
        while True:
            self.skip_space()
            if self.peek() != ord('"'):
                raise self.error("looking for beginning of object key string")
            key = self.string()
            self.skip_space()
            if self.peek() != ord(":"):
                raise self.error("after object key")
            self.pos += 1
            members.append((key, self.value()))
            self.skip_space()
            if self.peek() == ord(","):
                self.pos += 1
                continue
            if self.peek() == ord("}"):
                self.pos += 1
                return Node("object", members=members)
            raise self.error("after object key:value pair")

    def array(self) -> Node:
        self.pos += 1
        items: list[Node] = []
        self.skip_space()
        if self.peek() == ord("]"):
            self.pos += 1
            return Node("array", items=items)
        while True:
            items.append(self.value())
            self.skip_space()
            if self.peek() == ord(","):
                self.pos += 1
                continue
            if self.peek() == ord("]"):
                self.pos += 1
                return Node("array", items=items)
            raise self.error("after array element")

    def string(self) -> bytes:
        start = self.pos
        self.pos += 1
        while True:
            char = self.peek()
            if char < 0:
                raise self.error("")
            if char == ord('"'):
                self.pos += 1
                return self.data[start : self.pos]
            if char < 0x20:
                raise self.error("in string literal")
            if char == ord("\\"):
                self.pos += 1
                escape = self.peek()
                if escape < 0:
                    raise self.error("")
                if escape == ord("u"):
                    for _ in range(4):
                        self.pos += 1
                        if self.peek() < 0:
                            raise self.error("")
                        if chr(self.peek()) not in "0123456789abcdefABCDEF":
                            raise self.error("in \\u hexadecimal character escape")
                elif chr(escape) not in '"\\/bfnrt':
                    raise self.error("in string escape code")
            self.pos += 1

    def digits(self) -> None:
        while ord("0") <= self.peek() <= ord("9"):
            self.pos += 1

    def number(self) -> bytes:
        start = self.pos
        if self.peek() == ord("-"):
            self.pos += 1
            if not ord("0") <= self.peek() <= ord("9"):
                raise self.error("in numeric literal")
        if self.peek() == ord("0"):
            self.pos += 1
        else:
            self.digits()
        if self.peek() == ord("."):
            self.pos += 1
            if not ord("0") <= self.peek() <= ord("9"):
                raise self.error("after decimal point in numeric literal")
            self.digits()
        if self.peek() in (ord("e"), ord("E")):
            self.pos += 1
            if self.peek() in (ord("+"), ord("-")):
                self.pos += 1
            if not ord("0") <= self.peek() <= ord("9"):
                raise self.error("in exponent of numeric literal")
            self.digits()
        return self.data[start : self.pos]

    def literal(self, word: bytes) -> bytes:
        for index, expected in enumerate(word):
            if self.peek() != expected:
                if index == 0:
                    raise self.error("looking for beginning of value")
                raise self.error(f"in literal {word.decode()} (expecting {_quote_char(expected)})")
            self.pos += 1
        return word


def parse_go_json(data: bytes) -> Node:
    return _Scanner(data).document()


def _html_safe(raw: bytes) -> bytes:
    """What Go's compact does inside strings: escape <, >, & and U+2028/U+2029."""
    for plain, escaped in (
        (b"<", b"\\u003c"),
        (b">", b"\\u003e"),
        (b"&", b"\\u0026"),
        ("\u2028".encode(), b"\\u2028"),
        ("\u2029".encode(), b"\\u2029"),
    ):
        raw = raw.replace(plain, escaped)
    return raw


def compact(node: Node) -> bytes:
    """Go's json.Compact with HTML escaping (RawMessage marshalling)."""
    if node.kind == "object":
        return (
            b"{"
            + b",".join(_html_safe(k) + b":" + compact(v) for k, v in node.members or [])
            + b"}"
        )
    if node.kind == "array":
        return b"[" + b",".join(compact(item) for item in node.items or []) + b"]"
    return _html_safe(node.raw)


def indent(node: Node, depth: int) -> bytes:
    """Go's json.Indent(prefix "", indent "  ") of an already compact value."""
    pad = b"  " * (depth + 1)
    if node.kind == "object":
        if not node.members:
            return b"{}"
        body = b",\n".join(
            pad + _html_safe(k) + b": " + indent(v, depth + 1) for k, v in node.members
        )
        return b"{\n" + body + b"\n" + b"  " * depth + b"}"
    if node.kind == "array":
        if not node.items:
            return b"[]"
        body = b",\n".join(pad + indent(item, depth + 1) for item in node.items)
        return b"[\n" + body + b"\n" + b"  " * depth + b"]"
    return _html_safe(node.raw)


def _go_string(text: str) -> bytes:
    """go-jose's JSON string encoder (HTML-safe, \\u00XX for other control characters)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or char in "<>&":
            out.append(f"\\u00{code:02x}")
        elif char in "\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out).encode("utf-8", "surrogatepass")


def _decode_key(raw: bytes) -> str:
    decoded: str = json.loads(raw.decode("utf-8", "replace"))
    return decoded


# ============================================================================================
# go-jose v3 ParseSigned + CompactSerialize

_RAW_URL = re.compile(r"[A-Za-z0-9_-]*")


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


def _json_type(node: Node) -> str:
    if node.kind == "object":
        return "object"
    if node.kind == "array":
        return "array"
    first = node.raw[:1]
    if first == b'"':
        return "string"
    if first in (b"t", b"f"):
        return "bool"
    return "number"


def _parse_header(raw: bytes) -> dict[str, Node]:
    """json.Unmarshal into go-jose's rawHeader (map[HeaderKey]*json.RawMessage)."""
    try:
        node = parse_go_json(raw)
    except GoJSONError as exc:
        raise CLIError(f"error parsing token: {exc}") from None
    if node.kind == "scalar" and node.raw == b"null":
        raise CLIError("error serializing token: compact serialization not supported for object")
    if node.kind != "object":
        raise CLIError(
            f"error parsing token: json: cannot unmarshal {_json_type(node)} "
            "into Go value of type jose.rawHeader"
        )
    header: dict[str, Node] = {}
    for key, value in node.members or []:
        header[_decode_key(key)] = value  # the last duplicate wins, as in Go
    return header


def _sanitize_header(header: dict[str, Node]) -> None:
    """go-jose's rawHeader.sanitized and the embedded-JWK check, with their messages."""
    labels = {"kid": "key ID", "alg": "algorithm", "nonce": "nonce"}
    for key, node in header.items():
        if node.kind == "scalar" and node.raw == b"null":
            continue
        raw_text = json.dumps(compact(node).decode("utf-8", "replace"))
        if key in labels and (node.kind != "scalar" or not node.raw.startswith(b'"')):
            raise CLIError(
                f"error parsing token: failed to unmarshal {labels[key]}: json: cannot "
                f"unmarshal {_json_type(node)} into Go value of type string: {raw_text}"
            )
        if key == "x5c":
            _check_x5c(node, raw_text)
        if key == "jwk":
            _check_jwk(node, raw_text)


def _check_x5c(node: Node, raw_text: str) -> None:
    prefix = "error parsing token: failed to unmarshal x5c header"
    if node.kind != "array" or any(
        item.kind != "scalar" or not item.raw.startswith(b'"') for item in node.items or []
    ):
        raise CLIError(
            f"{prefix}: json: cannot unmarshal {_json_type(node)} into Go value of type "
            f"[]string: {raw_text}"
        )
    for item in node.items or []:
        try:
            der = base64.b64decode(_decode_key(item.raw), validate=True)
            parse_certificate(der)
        except (ValueError, binascii.Error) as exc:
            reason = str(exc) if isinstance(exc, CertParseError) else "illegal base64 data"
            raise CLIError(f"{prefix}: {reason}: {raw_text}") from None


def _check_jwk(node: Node, raw_text: str) -> None:
    if node.kind != "object":
        raise CLIError(
            f"error parsing token: failed to unmarshal JWK: json: cannot unmarshal "
            f"{_json_type(node)} into Go value of type jose.rawJSONWebKey: {raw_text}"
        )
    fields = {_decode_key(k): v for k, v in node.members or []}
    kty_node = fields.get("kty")
    kty = _decode_key(kty_node.raw) if kty_node and kty_node.raw.startswith(b'"') else ""
    if kty not in ("EC", "RSA", "OKP", "oct"):
        raise CLIError(
            f"error parsing token: failed to unmarshal JWK: go-jose/go-jose: unknown json "
            f"web key type '{kty}': {raw_text}"
        )
    private = {"d", "p", "q", "dp", "dq", "qi"}
    if kty == "oct" or private & fields.keys():
        raise CLIError("error parsing token: invalid embedded jwk, must be public key")


@dataclass
class ParsedJWS:
    header: dict[str, Node]
    payload: bytes
    signature: bytes


def _parse_json_serialization(token: str) -> ParsedJWS:
    """go-jose's parseSignedFull followed by the checks of CompactSerialize."""
    try:
        document = parse_go_json(token.encode())
    except GoJSONError as exc:
        raise CLIError(f"error parsing token: {exc}") from None
    if document.kind != "object":
        raise CLIError(
            f"error parsing token: json: cannot unmarshal {_json_type(document)} "
            "into Go value of type jose.rawJSONWebSignature"
        )
    fields = {_decode_key(k): v for k, v in document.members or []}

    def buffer(name: str, holder: dict[str, Node]) -> bytes | None:
        node = holder.get(name)
        if node is None or node.raw == b"null":
            return None
        if node.kind != "scalar" or not node.raw.startswith(b'"'):
            raise CLIError(
                f"error parsing token: json: cannot unmarshal {_json_type(node)} "
                "into Go value of type string"
            )
        return base64url_decode(_decode_key(node.raw))

    payload = buffer("payload", fields)
    if payload is None:
        raise CLIError("error parsing token: missing payload in JWS message")
    signatures = fields.get("signatures")
    entries: list[dict[str, Node]]
    if signatures is not None and signatures.kind == "array" and signatures.items:
        entries = []
        for item in signatures.items:
            if item.kind != "object":
                raise CLIError(
                    f"error parsing token: json: cannot unmarshal {_json_type(item)} "
                    "into Go value of type jose.rawSignatureInfo"
                )
            entries.append({_decode_key(k): v for k, v in item.members or []})
    else:
        entries = [fields]
    unsupported = CLIError(
        "error serializing token: compact serialization not supported for object"
    )
    if len(entries) != 1:
        raise unsupported
    entry = entries[0]
    protected = buffer("protected", entry)
    unprotected = entry.get("header")
    header = _parse_header(protected) if protected else None
    if header is not None:
        _sanitize_header(header)
    if unprotected is not None and unprotected.raw != b"null":
        raise unsupported
    if header is None:
        raise unsupported
    return ParsedJWS(header, payload, buffer("signature", entry) or b"")


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
        raise CLIError("error serializing token: compact serialization not supported for object")
    header = _parse_header(protected)
    _sanitize_header(header)
    return ParsedJWS(header, payload, signature)


def inspect_token(token: str) -> str:
    """The text `step crypto jwt inspect --insecure` prints for `token`."""
    jws = parse_jws(token)
    # go-jose re-encodes the protected header as a Go map: keys sorted, values compacted.
    header_json = (
        b"{"
        + b",".join(
            _go_string(key) + b":" + compact(jws.header[key])
            for key in sorted(jws.header, key=lambda k: k.encode("utf-8", "surrogatepass"))
        )
        + b"}"
    )
    header = parse_go_json(header_json)
    try:
        payload = parse_go_json(jws.payload)
    except GoJSONError as exc:
        raise CLIError(
            "error marshaling token data: json: error calling MarshalJSON for type "
            f"json.RawMessage: {exc}"
        ) from None
    signature = base64.urlsafe_b64encode(jws.signature).rstrip(b"=")
    text = (
        b'{\n  "header": '
        + indent(header, 1)
        + b',\n  "payload": '
        + indent(payload, 1)
        + b',\n  "signature": "'
        + signature
        + b'"\n}\n'
    )
    return text.decode("utf-8", "replace")


def _read_first_line() -> str:
    """utils.ReadString(os.Stdin): the first line, surrounding white space trimmed."""
    line = sys.stdin.buffer.readline()
    return line.decode("utf-8", "replace").strip()


@jwt_app.command("inspect")
def inspect_command(
    insecure: bool = typer.Option(
        False,
        "--insecure",
        hidden=True,
        help="Acknowledge that the token is decoded without any verification.",
    ),
) -> None:
    """Print the decoded JWT read from standard input, without verifying it.

    The first line of standard input is parsed as a JWS (compact form, or the
    JSON form with a single signature) and printed as JSON with its header,
    payload and signature. Since nothing is verified, --insecure must be given
    as a misuse prevention measure.

    Examples:

      $ echo $TOKEN | step crypto jwt inspect --insecure

      $ step ca token foo.example.com | step crypto jwt inspect --insecure
    """
    try:
        if not insecure:
            raise CLIError("'step crypto jwt inspect' requires the '--insecure' flag")
        output = inspect_token(_read_first_line())
    except CLIError as exc:
        die(str(exc))
    typer.echo(output, nl=False)
