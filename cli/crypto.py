"""`step crypto`: cryptographic building blocks; here `step crypto jwt inspect`.

`jwt inspect` follows smallstep/cli's command/crypto/jwt/inspect.go: the first line of
standard input is parsed as a JWS by go-jose v3 (compact form, or JSON serialisation with a
single signature and no unprotected header), re-serialised compactly (go-jose re-encodes the
protected header with sorted keys), and printed by Go's ``json.MarshalIndent`` as
``{"header": ..., "payload": ..., "signature": "..."}`` with two-space indentation. The
payload keeps its own key order and number spelling (it is a ``json.RawMessage``).

The token is read by :mod:`cli.jws_parse` and its JSON by :mod:`cli.go_json`.
"""

from __future__ import annotations

import base64
import sys

import typer

from cli import crypto_jwe, crypto_jwk, crypto_jwt, crypto_nacl
from cli.common import CLIError, die
from cli.crypto_hash import app as hash_app
from cli.crypto_key import app as key_app
from cli.crypto_keypair import change_pass_command, keypair_command
from cli.crypto_otp import app as otp_app
from cli.crypto_rand import rand_command
from cli.go_json import GoJSONError, JSONObject, JSONValue, go_indent, parse_go_json
from cli.helptext import StepTyper
from cli.jws_parse import parse_jws

app = StepTyper(
    help="Useful cryptographic primitives: keys, JWK/JWT/JWE, NaCl, hashes, random strings, OTP."
)
jwt_app = StepTyper(help="Sign, verify and inspect JSON Web Tokens (JWT).")
app.add_typer(jwt_app, name="jwt")
app.add_typer(crypto_jwk.app, name="jwk")
app.add_typer(crypto_jwe.app, name="jwe")
app.add_typer(crypto_nacl.app, name="nacl")
jwt_app.command("sign")(crypto_jwt.sign_command)
jwt_app.command("verify")(crypto_jwt.verify_command)

# Keys, digests, random strings and one-time passwords.
app.command("keypair")(keypair_command)
app.command("change-pass")(change_pass_command)
app.add_typer(key_app, name="key")
app.add_typer(hash_app, name="hash")
app.command("rand")(rand_command)
app.add_typer(otp_app, name="otp")


def inspect_token(token: str) -> str:
    """The text `step crypto jwt inspect --insecure` prints for `token`."""
    jws = parse_jws(token)
    # go-jose re-encodes the protected header as a Go map: keys sorted by their UTF-8 bytes.
    header = JSONObject(
        [
            (key, jws.header[key])
            for key in sorted(jws.header, key=lambda k: k.encode("utf-8", "surrogatepass"))
        ]
    )
    try:
        payload = parse_go_json(jws.payload)
    except GoJSONError as exc:
        raise CLIError(
            "error marshaling token data: json: error calling MarshalJSON for type "
            f"json.RawMessage: {exc}"
        ) from None
    signature = base64.urlsafe_b64encode(jws.signature).rstrip(b"=").decode()
    document: JSONValue = JSONObject(
        [("header", header), ("payload", payload), ("signature", signature)]
    )
    return go_indent(document) + "\n"


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
