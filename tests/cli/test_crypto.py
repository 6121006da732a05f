"""`step crypto jwt inspect` (cli.crypto)."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from cli.crypto import app as crypto_app

runner = CliRunner()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_EMPTY = _b64(b"{}")
_SIG = _b64(b"s")
_ALG_NONE = _b64(b'{"alg":"none"}')
_KID_NUMBER = _b64(b'{"kid":1}')


def _inspect(stdin: str, *flags: str) -> tuple[int, str, str]:
    result = runner.invoke(crypto_app, ["jwt", "inspect", *flags], input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_inspect_es256_token(key: ec.EllipticCurvePrivateKey) -> None:
    token = jwt.encode(
        {"sub": "foo.example.com", "aud": ["https://ca.example.com/1.0/sign"], "nbf": 1, "exp": 2},
        key,
        algorithm="ES256",
        headers={"typ": "JWT", "kid": "my-kid"},
    )
    code, out, err = _inspect(token + "\n", "--insecure")
    assert (code, err) == (0, "")
    signature = token.split(".")[2]
    assert out == (
        "{\n"
        '  "header": {\n'
        '    "alg": "ES256",\n'
        '    "kid": "my-kid",\n'
        '    "typ": "JWT"\n'
        "  },\n"
        '  "payload": {\n'
        '    "sub": "foo.example.com",\n'
        '    "aud": [\n'
        '      "https://ca.example.com/1.0/sign"\n'
        "    ],\n"
        '    "nbf": 1,\n'
        '    "exp": 2\n'
        "  },\n"
        f'  "signature": "{signature}"\n'
        "}\n"
    )
    assert json.loads(out)["header"]["alg"] == "ES256"


def test_header_sorted_payload_verbatim() -> None:
    """go-jose re-encodes the header as a map (sorted keys); the payload keeps its order,
    its number spelling and its empty containers, and Go escapes <, > and &."""
    header = b'{"typ":"JWT", "zz": {"b":1,"a":2}, "alg":"HS256","kid":"k"}'
    payload = b'{"z":1.50e3,"a":{},"m":[],"html":"<a&b>","n":null,"t":true}'
    token = f"{_b64(header)}.{_b64(payload)}.{_b64(b'sig')}"
    code, out, _ = _inspect(f"  {token}  \nsecond line ignored\n", "--insecure")
    assert code == 0
    assert out == (
        "{\n"
        '  "header": {\n'
        '    "alg": "HS256",\n'
        '    "kid": "k",\n'
        '    "typ": "JWT",\n'
        '    "zz": {\n'
        '      "b": 1,\n'
        '      "a": 2\n'
        "    }\n"
        "  },\n"
        '  "payload": {\n'
        '    "z": 1.50e3,\n'
        '    "a": {},\n'
        '    "m": [],\n'
        '    "html": "\\u003ca\\u0026b\\u003e",\n'
        '    "n": null,\n'
        '    "t": true\n'
        "  },\n"
        f'  "signature": "{_b64(b"sig")}"\n'
        "}\n"
    )


def test_padding_and_whitespace_are_tolerated() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').decode()  # with '=' padding
    token = f"{header}.\n{_b64(b'[1,2]')}.{_b64(b'xy')}"
    code, out, _ = _inspect(token.replace("\n", " ") + "\n", "--insecure")
    assert code == 0
    assert '"payload": [\n    1,\n    2\n  ],' in out
    assert out.endswith(f'"signature": "{_b64(b"xy")}"\n}}\n')


def test_requires_insecure(key: ec.EllipticCurvePrivateKey) -> None:
    token = jwt.encode({"sub": "x"}, key, algorithm="ES256")
    code, out, err = _inspect(token + "\n")
    assert (code, out) == (1, "")
    assert err == "'step crypto jwt inspect' requires the '--insecure' flag\n"


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("foo\n", "error parsing token: compact JWS format must have three parts"),
        ("", "error parsing token: compact JWS format must have three parts"),
        ("a.b.c\n", "error parsing token: illegal base64 data at input byte 0"),
        (
            f"{_b64(b'{}')}.{_b64(b'{}')}.a*b\n",
            "error parsing token: illegal base64 data at input byte 1",
        ),
        (
            f"{_b64(b'[1]')}.{_b64(b'{}')}.{_b64(b's')}\n",
            "error parsing token: json: cannot unmarshal array into Go value of type "
            "jose.rawHeader",
        ),
        (
            f"{_b64(b'{x')}.{_b64(b'{}')}.{_b64(b's')}\n",
            "error parsing token: invalid character 'x' looking for beginning of object key string",
        ),
        (
            f"{_KID_NUMBER}.{_EMPTY}.{_SIG}\n",
            "error parsing token: failed to unmarshal key ID: json: cannot unmarshal number "
            'into Go value of type string: "1"',
        ),
        (
            f".{_b64(b'{}')}.{_b64(b's')}\n",
            "error serializing token: compact serialization not supported for object",
        ),
        (
            f"{_ALG_NONE}.{_b64(b'not json')}.{_SIG}\n",
            "error marshaling token data: json: error calling MarshalJSON for type "
            "json.RawMessage: invalid character 'o' in literal null (expecting 'u')",
        ),
        (
            f"{_ALG_NONE}..{_SIG}\n",
            "error marshaling token data: json: error calling MarshalJSON for type "
            "json.RawMessage: unexpected end of JSON input",
        ),
    ],
)
def test_errors_are_one_line(stdin: str, message: str) -> None:
    code, out, err = _inspect(stdin, "--insecure")
    assert (code, out) == (1, "")
    assert err == message + "\n"


def test_json_serialization() -> None:
    protected, payload, signature = _b64(b'{"alg":"ES256"}'), _b64(b'{"a":1}'), _b64(b"s")
    flattened = json.dumps({"payload": payload, "protected": protected, "signature": signature})
    code, out, _ = _inspect(flattened + "\n", "--insecure")
    assert code == 0
    assert json.loads(out) == {
        "header": {"alg": "ES256"},
        "payload": {"a": 1},
        "signature": signature,
    }
    general = json.dumps(
        {"payload": payload, "signatures": [{"protected": protected, "signature": signature}]}
    )
    code, out, _ = _inspect(general + "\n", "--insecure")
    assert code == 0 and json.loads(out)["payload"] == {"a": 1}
    unprotected = json.dumps(
        {"payload": payload, "protected": protected, "header": {"kid": "x"}, "signature": signature}
    )
    code, _, err = _inspect(unprotected + "\n", "--insecure")
    assert code == 1
    assert err == "error serializing token: compact serialization not supported for object\n"
