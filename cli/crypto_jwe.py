"""`step crypto jwe encrypt` and `decrypt`: JSON Web Encryption with jwcrypto.

Follows smallstep/cli's command/crypto/jwe: data from standard input is encrypted for a
public key (`--key`, or `--jwks` with `--kid`) or, with a PBES2 `--alg`, for a password;
`--enc` defaults to A256GCM. As go-jose does for a single recipient, every header goes into
the protected header, and the result is printed as flattened JSON (go-jose's
FullSerialize). `decrypt` reads the compact or JSON form and prints the plaintext as it is.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from jwcrypto import jwe, jwk  # type: ignore[import-untyped]
from jwcrypto.common import JWException  # type: ignore[import-untyped]

from cli.common import CLIError
from cli.crypto_jose_key import StepKey, get_password, read_key, read_keyset, validate
from cli.helptext import StepTyper
from pki.jose import b64url_encode
from pki.jwe import DEFAULT_MAX_P2C, pbes2_cap

__all__ = ["app"]

app = StepTyper(help="Encrypt and decrypt data and keys using JSON Web Encryption (JWE).")

KEY_ALGS = (
    "RSA1_5", "RSA-OAEP", "RSA-OAEP-256", "A128KW", "A192KW", "A256KW", "dir", "ECDH-ES",
    "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW", "A128GCMKW", "A192GCMKW",
    "A256GCMKW", "PBES2-HS256+A128KW", "PBES2-HS384+A192KW", "PBES2-HS512+A256KW",
)  # fmt: skip
CONTENT_ALGS = (
    "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512", "A128GCM", "A192GCM", "A256GCM",
)  # fmt: skip
PBES2_COUNT = 100_000  # go-jose's default iteration count for PBES2 recipients
_PBES2 = {a for a in KEY_ALGS if a.startswith("PBES2-")}
_CRYPTO_FAILURE = "error decrypting data: go-jose/go-jose: error in cryptographic primitive"


def _jwcrypto_key(sk: StepKey) -> jwk.JWK:
    if isinstance(sk.key, bytes):
        return jwk.JWK(kty="oct", k=b64url_encode(sk.key))
    return jwk.JWK.from_pyca(sk.key)


def _full_serialize(compact: str) -> str:
    """go-jose's FullSerialize of a single-recipient JWE whose headers are all protected."""
    parts = compact.split(".")
    names = ("protected", "encrypted_key", "iv", "ciphertext", "tag")
    fields = dict(zip(names, parts, strict=True))
    if not fields["encrypted_key"]:  # dir and ECDH-ES have none; go-jose then leaves it out
        del fields["encrypted_key"]
    return json.dumps(fields, separators=(",", ":"))


def _read_stdin() -> bytes:
    return sys.stdin.buffer.read()


def _enc_key(
    alg: str, key: Path | None, jwks: Path | None, kid: str, subtle: bool
) -> tuple[str, jwk.JWK]:
    """The recipient's public key and the key-management alg to use with it."""
    if key is not None:
        sk = read_key(key, "enc", alg=alg, kid=kid, subtle=subtle)
    else:
        assert jwks is not None
        sk = read_keyset(jwks, "enc", alg=alg, kid=kid, subtle=subtle)
    sk = sk.public()
    if sk.use == "sig":
        raise CLIError("invalid jwk use: found 'sig' (signature), expecting 'enc' (encryption)")
    validate(sk)
    chosen = alg or sk.alg
    if chosen not in KEY_ALGS:
        raise CLIError(f"invalid value '{chosen}' for flag '--alg'")
    return chosen, _jwcrypto_key(sk)


def _check_key_flags(pbes2: bool, key: object, jwks: object, kid: str) -> None:
    """step's rule for both commands: without PBES2, exactly one of --key and --jwks (that
    one with --kid)."""
    if not pbes2 and key is None and jwks is None:
        raise CLIError("either --key or --jwks must be used")
    if key is not None and jwks is not None:
        raise CLIError("flag '--key' and flag '--jwks' are mutually exclusive")
    if jwks is not None and not kid:
        raise CLIError("flag '--jwks' requires the '--kid' flag")


@app.command("encrypt")
def encrypt_command(
    alg: str = typer.Option(
        "",
        "--alg",
        "--algorithm",
        metavar="key-enc-algorithm",
        help=(
            "The key management algorithm: RSA-OAEP-256 (default for RSA), ECDH-ES (default "
            "for EC), A256GCMKW (default for oct), RSA-OAEP, RSA1_5, ECDH-ES+A128KW, "
            "ECDH-ES+A192KW, ECDH-ES+A256KW, A128KW, A192KW, A256KW, A128GCMKW, A192GCMKW, "
            "dir, PBES2-HS256+A128KW, PBES2-HS384+A192KW or PBES2-HS512+A256KW."
        ),
    ),
    enc: str = typer.Option(
        "A256GCM",
        "--enc",
        "--encryption-algorithm",
        metavar="content-enc-algorithm",
        help=(
            "The content encryption algorithm: A128GCM, A192GCM, A256GCM, A128CBC-HS256, "
            "A192CBC-HS384 or A256CBC-HS512."
        ),
    ),
    key: Path | None = typer.Option(
        None,
        "--key",
        metavar="file",
        help="The recipient's public key: a JWK or a PEM public key or certificate.",
    ),
    jwks: Path | None = typer.Option(
        None, "--jwks", metavar="jwks", help="A JWK set holding the recipient's key (needs --kid)."
    ),
    kid: str = typer.Option("", "--kid", metavar="kid", help="The ID of the recipient's key."),
    typ: str = typer.Option(
        "", "--typ", "--type", metavar="type", help="The media type of the JWE (typ)."
    ),
    cty: str = typer.Option(
        "", "--cty", "--content-type", metavar="type", help="The media type of the payload (cty)."
    ),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        metavar="file",
        help="With a PBES2 --alg: the path to the <file> containing the password.",
    ),
    subtle: bool = typer.Option(
        False, "--subtle", hidden=True, help="Allow an --alg other than the key's."
    ),
) -> None:
    """Encrypt standard input as a JWE for a recipient's public key or a password.

    The JWE is printed in the JSON serialisation with every header protected. With a PBES2
    --alg the content key is wrapped with a password (asked for, or --password-file) and
    --key/--jwks are not used.

    Examples:

      $ echo 'a secret' | step crypto jwe encrypt --key rsa.enc.pub.json > secret.jwe

      $ step crypto jwe encrypt --alg ECDH-ES+A256KW --key ec.pub.json < data.txt

      $ step crypto jwe encrypt --alg PBES2-HS256+A128KW --password-file pass.txt < data.txt
    """
    data = _read_stdin()
    if alg and alg not in KEY_ALGS:
        raise CLIError(f"invalid value '{alg}' for flag '--alg'")
    if enc not in CONTENT_ALGS:
        raise CLIError(f"invalid value '{enc}' for flag '--enc'")
    pbes2 = alg in _PBES2
    if pbes2 and key is not None:
        raise CLIError(f"flag '--alg {alg}' and flag '--key' are mutually exclusive")
    if pbes2 and jwks is not None:
        raise CLIError(f"flag '--alg {alg}' and flag '--jwks' are mutually exclusive")
    _check_key_flags(pbes2, key, jwks, kid)

    header: dict[str, Any] = {}
    if pbes2:
        prompt = "Please enter the password to encrypt the content encryption key"
        password = get_password(password_file, prompt)
        if not password:
            raise CLIError("the password cannot be empty")
        recipient = jwk.JWK(kty="oct", k=b64url_encode(password))
        header.update(p2c=PBES2_COUNT, p2s=b64url_encode(os.urandom(16)))
    else:
        alg, recipient = _enc_key(alg, key, jwks, kid, subtle)
    header.update(alg=alg, enc=enc)
    for name, value in (("kid", kid), ("typ", typ), ("cty", cty)):
        if value:
            header[name] = value
    try:
        with pbes2_cap(DEFAULT_MAX_P2C):
            token = jwe.JWE(data, protected=header, algs=[alg, enc])
            token.add_recipient(recipient)
            compact = token.serialize(compact=True)
    except (JWException, ValueError, TypeError) as exc:
        raise CLIError(f"error encrypting data: {exc}") from None
    typer.echo(_full_serialize(compact))


def _parse(data: bytes) -> tuple[jwe.JWE, dict[str, Any]]:
    text = data.decode("utf-8", "replace").strip()
    token = jwe.JWE()
    try:
        token.deserialize(text)
        header = token.jose_header
    except (JWException, ValueError, TypeError):
        if not text.startswith("{") and text.count(".") != 4:
            raise CLIError("error parsing data: compact JWE format must have five parts") from None
        raise CLIError("error parsing data: the input is not a valid JWE") from None
    if not isinstance(header, dict):
        raise CLIError("error parsing data: no JOSE header")
    return token, header


@app.command("decrypt")
def decrypt_command(
    key: Path | None = typer.Option(
        None,
        "--key",
        metavar="file",
        help="The recipient's private key: a JWK (maybe encrypted) or a PEM private key.",
    ),
    jwks: Path | None = typer.Option(
        None,
        "--jwks",
        metavar="jwks",
        help="A JWK set holding the recipient's private key (needs --kid).",
    ),
    kid: str = typer.Option("", "--kid", metavar="kid", help="The ID of the recipient's key."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        metavar="file",
        help="The path to the <file> containing the password (of a PBES2 JWE, or of the key).",
    ),
) -> None:
    """Decrypt the JWE read from standard input and print its plaintext.

    A PBES2 JWE is opened with a password (asked for, or --password-file); any other with the
    recipient's private key from --key, or from --jwks with --kid.

    Examples:

      $ step crypto jwe decrypt --key rsa.enc.json < secret.jwe

      $ step crypto jwe decrypt --jwks jwks.json --kid my-kid < secret.jwe

      $ step crypto jwe decrypt --password-file pass.txt < secret.jwe
    """
    token, header = _parse(_read_stdin())
    alg, enc = header.get("alg"), header.get("enc")
    if alg not in KEY_ALGS or enc not in CONTENT_ALGS:
        raise CLIError(f"error parsing data: unsupported JWE algorithms {alg!r}, {enc!r}")
    pbes2 = alg in _PBES2
    if pbes2 and key is not None:
        raise CLIError(f"flag '--key' cannot be used with JWE algorithm '{alg}'")
    if pbes2 and jwks is not None:
        raise CLIError(f"flag '--jwks' cannot be used with JWE algorithm '{alg}'")
    _check_key_flags(pbes2, key, jwks, kid)

    if pbes2:
        prompt = "Please enter the password to decrypt the content encryption key"
        secret = jwk.JWK(kty="oct", k=b64url_encode(get_password(password_file, prompt)))
    else:
        opts: dict[str, Any] = {"kid": kid, "password_file": password_file}
        sk = read_key(key, "enc", **opts) if key else read_keyset(jwks, "enc", **opts)  # type: ignore[arg-type]
        if sk.is_public:
            raise CLIError("cannot use a public key for decryption")
        if sk.use == "sig":
            raise CLIError("invalid jwk use: found 'sig' (signature), expecting 'enc' (encryption)")
        validate(sk)
        secret = _jwcrypto_key(sk)
    try:
        with pbes2_cap(DEFAULT_MAX_P2C):
            token.allowed_algs = [alg, enc]
            token.decrypt(secret)
    except (JWException, ValueError, TypeError):
        # jwcrypto reports an empty plaintext as a failure even when it decrypted fine.
        if token.plaintext != b"" or "Success" not in token.decryptlog:
            raise CLIError(_CRYPTO_FAILURE) from None
    sys.stdout.buffer.write(token.plaintext)
    sys.stdout.buffer.flush()
