"""`step crypto key format`: a key from PEM, DER, JWK or OpenSSH into another of these.

step's defaults: PEM input becomes DER, anything else becomes PEM; `--pem --der --ssh --jwk`
choose instead and `--pkcs8` picks PKCS#8 for RSA and EC private keys. A private key leaves
encrypted (PEM as encrypted PKCS#8, JWK as a PBES2 JWE) unless `--no-password --insecure`;
DER and OpenSSH private keys have no encrypted form here, so they need those flags too,
where step would write them in the clear silently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from cli.common import CLIError, check_outputs, write_output
from cli.crypto_keyio import (
    AnyKey,
    PrivateKey,
    PublicKey,
    encrypt_jwe,
    input_kind,
    is_private,
    new_password,
    parse_key,
    private_pem,
    public_of,
    public_pem,
    read_input,
)
from pki.jose import JOSEError, private_jwk, public_jwk

_TARGETS = ("pem", "der", "ssh", "jwk")


def _target(pem: bool, der: bool, ssh: bool, jwk: bool, kind: str) -> str:
    chosen = [name for name, on in zip(_TARGETS, (pem, der, ssh, jwk), strict=True) if on]
    if len(chosen) > 1:
        raise CLIError(f"flag '--{chosen[0]}' is incompatible with '--{chosen[1]}'")
    if chosen:
        return chosen[0]
    return "der" if kind == "pem" else "pem"


def _plain_format(key: PrivateKey, pkcs8: bool) -> PrivateFormat:
    """step's plain private forms: SEC1 / PKCS#1, or PKCS#8 (always for Ed25519)."""
    if pkcs8 or isinstance(key, ed25519.Ed25519PrivateKey):
        return PrivateFormat.PKCS8
    return PrivateFormat.TraditionalOpenSSL


def _require_clear(target: str, no_password: bool) -> None:
    if not no_password:
        raise CLIError(
            f"a private key in {target} form would be unencrypted: "
            "use '--no-password --insecure' to allow it, or PEM or JWK to keep it encrypted"
        )


def _convert_public(public: PublicKey, target: str) -> bytes:
    if target == "pem":
        return public_pem(public)
    if target == "der":
        return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if target == "ssh":
        return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH) + b"\n"
    try:
        members = public_jwk(public, kid="", alg="", use="")
    except JOSEError as exc:
        raise CLIError(f"error converting the key to JWK: {exc}") from None
    return json.dumps(members, separators=(",", ":")).encode()


def _convert_private(
    private: PrivateKey, target: str, pkcs8: bool, no_password: bool, password_file: Path | None
) -> bytes:
    if target == "pem":
        password = None if no_password else new_password(password_file, "the private key")
        return private_pem(private, password, pkcs8)
    if target == "der":
        _require_clear("DER", no_password)
        return private.private_bytes(Encoding.DER, _plain_format(private, pkcs8), NoEncryption())
    if target == "ssh":
        _require_clear("OpenSSH", no_password)
        return private.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    try:
        members = private_jwk(private, kid="", alg="", use="")
    except JOSEError as exc:
        raise CLIError(f"error converting the key to JWK: {exc}") from None
    payload = json.dumps(members, separators=(",", ":")).encode()
    if no_password:
        return payload
    password = new_password(password_file, "the private key")
    return json.dumps(encrypt_jwe(payload, password), separators=(",", ":")).encode()


def convert(
    key: AnyKey, target: str, pkcs8: bool, no_password: bool, password_file: Path | None
) -> bytes:
    """The bytes `step crypto key format` writes for `key` in the `target` form."""
    if is_private(key):
        return _convert_private(key, target, pkcs8, no_password, password_file)
    return _convert_public(public_of(key), target)


def format_command(
    key_file: str = typer.Argument(
        "-",
        metavar="KEY_FILE",
        help="A public or private key, or a certificate, in PEM, DER, JWK or OpenSSH form.",
    ),
    pkcs8: bool = typer.Option(
        False, "--pkcs8", help="Convert RSA and EC private keys to the PKCS#8 form."
    ),
    pem: bool = typer.Option(False, "--pem", help="Write PEM (the default for non-PEM input)."),
    der: bool = typer.Option(False, "--der", help="Write DER (the default for PEM input)."),
    ssh: bool = typer.Option(False, "--ssh", help="Write the OpenSSH form."),
    jwk: bool = typer.Option(False, "--jwk", help="Write a JSON Web Key."),
    out: Path | None = typer.Option(None, "--out", help="The <file> to write the result to."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="The <file> with the password that decrypts the key and encrypts the result.",
    ),
    no_password: bool = typer.Option(
        False,
        "--no-password",
        help="Write a private key unencrypted. Not recommended; requires --insecure.",
    ),
    insecure: bool = typer.Option(False, "--insecure", help="Allow --no-password."),
    force: bool = typer.Option(
        False, "--force", "-f", help="Force the overwrite of files without asking."
    ),
) -> None:
    """Print or write a public or private key in a different format.

    By default a PEM key is converted to DER, and a DER, JWK or OpenSSH
    key to PEM: public keys as PKIX, EC private keys as SEC1 (RFC 5915), RSA
    private keys as PKCS#1 and Ed25519 private keys as PKCS#8. --pem, --der,
    --ssh and --jwk choose the result, and --pkcs8 writes RSA and EC private
    keys as PKCS#8. A private key is written encrypted (PEM as encrypted
    PKCS#8, JWK as a PBES2 JWE) with the password of --password-file or one
    asked on the terminal; --no-password --insecure writes it in the clear,
    and is needed for the DER and OpenSSH forms of a private key, which are
    not encrypted. Without a file, or with "-", the key is read from standard
    input.

    Examples:

      $ step crypto key format key.pem --out key.der

      $ step crypto key format key.der --out key.pem

      $ step crypto key format --ssh pub.pem

      $ step crypto key format --jwk pub.pem

      $ step crypto key format --pem --pkcs8 rsa.pem --out rsa-pkcs8.pem

      $ step crypto key format --der --pkcs8 --no-password --insecure key.pem \\
          --out key-pkcs8.der
    """
    if no_password and not insecure:
        raise CLIError("flag '--no-password' requires the '--insecure' flag")
    if out is not None:
        check_outputs([out], force)
    data = read_input(key_file)
    target = _target(pem, der, ssh, jwk, input_kind(data))
    key = parse_key(data, key_file, password_file)
    result = convert(key, target, pkcs8, no_password, password_file)
    if out is None:
        sys.stdout.buffer.write(result)
        sys.stdout.flush()
        return
    write_output(out, result, mode=0o600)
    typer.echo(f"Your key has been saved in {out}.", err=True)
