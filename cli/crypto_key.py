"""`step crypto key`: inspect, public, fingerprint here; format and sign/verify in
:mod:`cli.crypto_key_format` and :mod:`cli.crypto_key_sign`.

Outputs follow smallstep/cli's command/crypto/key: `inspect` prints the raw key parameters
the way its Go code does (colon-separated hex, 16 bytes a line), and `fingerprint` hashes the
subjectPublicKey BIT STRING by default and prints `SHA256:` plus base64.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cli.certificate import encode_fingerprint
from cli.common import CLIError, check_outputs, write_output
from cli.crypto_key_format import format_command
from cli.crypto_key_sign import sign_command, verify_command
from cli.crypto_keyio import AnyKey, PublicKey, parse_key, public_of, public_pem, read_input
from cli.helptext import StepTyper
from pki import der

app = StepTyper(help="Inspect, convert, fingerprint and use public and private keys.")
app.command("format")(format_command)
app.command("sign")(sign_command)
app.command("verify")(verify_command)

_KEY_FILE_HELP = "A public or private key, or a certificate, in PEM, DER, JWK or OpenSSH form."
_PASSWORD_FILE_HELP = "The path to the <file> containing the password to decrypt the private key."
_GO_CURVES = {
    "secp224r1": "P-224",
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}


def _int_bytes(value: int, size: int | None = None) -> bytes:
    """big.Int.Bytes() (minimal big-endian), or left-padded to `size` bytes."""
    length = (value.bit_length() + 7) // 8 if size is None else size
    return value.to_bytes(length, "big")


def _bytes_lines(name: str, data: bytes) -> str:
    """Go's bytesPrinter: `Name:` then `    aa:bb:...` lines of 16 bytes."""
    out = name + ":"
    for index, byte in enumerate(data):
        if index % 16 == 0:
            out += "\n    "
        out += f"{byte:02x}"
        if index != len(data) - 1:
            out += ":"
    return out + "\n"


def inspect_text(key: AnyKey) -> str:
    """What `step crypto key inspect` prints for `key`."""
    if isinstance(key, rsa.RSAPublicKey):
        public = key.public_numbers()
        size = (key.key_size + 7) // 8
        return (
            f"RSA Public-Key: ({size * 8} bit)\n"
            + _bytes_lines("Modulus", _int_bytes(public.n, size))
            + f"Exponent: {public.e} (0x{public.e:x})\n"
        )
    if isinstance(key, rsa.RSAPrivateKey):
        size = (key.key_size + 7) // 8
        nums = key.private_numbers()
        return (
            f"RSA Private-Key: ({size * 8} bit)\n"
            + _bytes_lines("Modulus", _int_bytes(nums.public_numbers.n, size))
            + f"Public Exponent: {nums.public_numbers.e} (0x{nums.public_numbers.e:x})\n"
            + _bytes_lines("Private Exponent", _int_bytes(nums.d, size))
            + _bytes_lines("Prime #1", _int_bytes(nums.p))
            + _bytes_lines("Prime #2", _int_bytes(nums.q))
            + _bytes_lines("Exponent #1", _int_bytes(nums.dmp1))
            + _bytes_lines("Exponent #2", _int_bytes(nums.dmq1))
            + _bytes_lines("Coefficient", _int_bytes(nums.iqmp))
        )
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        bits = key.curve.key_size
        size = (bits + 7) // 8
        ec_public = key if isinstance(key, ec.EllipticCurvePublicKey) else key.public_key()
        point = ec_public.public_numbers()
        lines = _bytes_lines("X", _int_bytes(point.x, size)) + _bytes_lines(
            "Y", _int_bytes(point.y, size)
        )
        curve = f"Curve: {_GO_CURVES.get(key.curve.name, key.curve.name)}\n"
        if isinstance(key, ec.EllipticCurvePublicKey):
            return f"EC Public-Key: ({bits} bit)\n{lines}{curve}"
        secret = _bytes_lines("D", _int_bytes(key.private_numbers().private_value, size))
        return f"EC PrivateKey-Key: ({bits} bit)\n{lines}{secret}{curve}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519 Public-Key: (256 bit)\n" + _bytes_lines("Public", key.public_bytes_raw())
    # Go's ed25519.PrivateKey is seed || public: 64 bytes, hence "512 bit".
    return (
        "Ed25519 Private-Key: (512 bit)\n"
        + _bytes_lines("Public", key.public_key().public_bytes_raw())
        + _bytes_lines("Private", key.private_bytes_raw())
    )


@app.command("inspect")
def inspect_command(
    key_file: str = typer.Argument("-", metavar="KEY_FILE", help=_KEY_FILE_HELP),
    password_file: Path | None = typer.Option(None, "--password-file", help=_PASSWORD_FILE_HELP),
) -> None:
    """Print the details of a public or private key in a human readable format.

    The raw parameters of the key are shown, without the headers its
    encodings carry: an EC public key's X and Y, not the 0x04 point prefix.
    A certificate's public key is shown for a certificate. Without a file,
    or with "-", the key is read from standard input.

    Examples:

      $ step crypto key inspect priv.pem

      $ step crypto key inspect --password-file pass.txt encrypted.key

      $ cat pub.pem | step crypto key inspect
    """
    key = parse_key(read_input(key_file), key_file, password_file)
    typer.echo(inspect_text(key), nl=False)


@app.command("public")
def public_command(
    key_file: str = typer.Argument("-", metavar="KEY_FILE", help=_KEY_FILE_HELP),
    out: Path | None = typer.Option(None, "--out", help="The <file> to write the public key to."),
    password_file: Path | None = typer.Option(None, "--password-file", help=_PASSWORD_FILE_HELP),
    force: bool = typer.Option(
        False, "--force", "-f", help="Force the overwrite of files without asking."
    ),
) -> None:
    """Print the public key, in PEM format, of a private key or certificate.

    Without a file, or with "-", the key is read from standard input.

    Examples:

      $ step crypto key public priv.pem

      $ step crypto key public foo.crt

      $ step crypto key public --out pub.pem key.pem
    """
    if out is not None:
        check_outputs([out], force)
    key = parse_key(read_input(key_file), key_file, password_file)
    pem = public_pem(key)
    if out is None:
        typer.echo(pem.decode(), nl=False)
        return
    write_output(out, pem, mode=0o600)
    typer.echo(f"The public key has been saved in {out}.", err=True)


def _subject_public_key(public: PublicKey) -> bytes:
    """The contents of the SubjectPublicKeyInfo's BIT STRING (its unused-bits byte dropped)."""
    spki = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    _, body, _ = der.read_tlv(spki)
    _, _, after_algorithm = der.read_tlv(body)
    _, bit_string, _ = der.read_tlv(body, after_algorithm)
    return bit_string[1:]


def fingerprint_bytes(public: PublicKey, encoding: str) -> bytes:
    """What is hashed: "x509" (the BIT STRING, step's default), "pkix" or "ssh"."""
    if encoding == "pkix":
        return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if encoding == "ssh":
        line = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
        return base64.b64decode(line.split()[1])
    return _subject_public_key(public)


@app.command("fingerprint")
def fingerprint_command(
    key_file: str = typer.Argument("-", metavar="KEY_FILE", help=_KEY_FILE_HELP),
    sha1: bool = typer.Option(
        False, "--sha1", help="Use SHA-1 and hex: the Subject Key Identifier of a certificate."
    ),
    pkix: bool = typer.Option(False, "--pkix", help="Hash the PKIX (SubjectPublicKeyInfo) form."),
    ssh: bool = typer.Option(False, "--ssh", help="Hash the SSH wire form of the public key."),
    password_file: Path | None = typer.Option(None, "--password-file", help=_PASSWORD_FILE_HELP),
    raw: bool = typer.Option(False, "--raw", help="Print the bytes that would be hashed."),
    fmt: str | None = typer.Option(
        None,
        "--format",
        metavar="FORMAT",
        help="Encoding: hex, base64 (the default), base64-url, base64-raw or base64-url-raw.",
    ),
) -> None:
    """Print the fingerprint of a public key.

    By default it is the SHA-256 of the subjectPublicKey BIT STRING of
    RFC 5280, in base64, after "SHA256:". --pkix hashes the whole PKIX
    encoding and --ssh the SSH encoding instead. A private key or a
    certificate gives the fingerprint of its public key.

    Examples:

      $ step crypto key fingerprint pub.pem

      $ step crypto key fingerprint --pkix pub.pem

      $ step crypto key fingerprint --ssh --format hex id_ed25519.pub

      $ step crypto key fingerprint --sha1 cert.pem

      $ step crypto key fingerprint --raw pub.pem | md5sum
    """
    if pkix and ssh:
        raise CLIError("flag '--pkix' and flag '--ssh' are mutually exclusive")
    name = fmt if fmt is not None else ("hex" if sha1 else "base64")
    encode_fingerprint(b"", name)  # an unknown --format fails before any reading
    key = parse_key(read_input(key_file), key_file, password_file)
    data = fingerprint_bytes(public_of(key), "pkix" if pkix else "ssh" if ssh else "x509")
    if raw:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    if sha1:
        digest = hashlib.sha1(data, usedforsecurity=False).digest()
        typer.echo("SHA1:" + encode_fingerprint(digest, name))
    else:
        typer.echo("SHA256:" + encode_fingerprint(hashlib.sha256(data).digest(), name))
