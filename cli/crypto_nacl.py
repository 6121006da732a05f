"""`step crypto nacl`: NaCl box, secretbox, sign and auth, with PyNaCl, in step's encodings.

Follows smallstep/cli's command/crypto/nacl: keys are raw bytes in files (32-byte box keys,
32-byte secretbox and auth keys, a 32-byte public and 64-byte private signing key), written
0600 as step writes them; a nonce argument is taken as it is, or after `string:`, or
standard-base64 after `base64:`, and zero-padded to 24 bytes; boxes and signed messages are
printed unpadded base64url unless `--raw`, and auth digests in hex. The boxes are NaCl's
(crypto_box, crypto_secretbox, crypto_sign), so they open with any NaCl implementation given
the same nonce.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import sys
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import typer

from cli.common import CLIError, check_outputs, go_strerror, write_output
from cli.helptext import StepTyper

__all__ = ["app"]

app = StepTyper(help="Easy-to-use high-speed tools for encryption and signing (NaCl).")
box_app = StepTyper(help="Authenticate and encrypt small messages using public-key cryptography.")
secretbox_app = StepTyper(
    help="Encrypt and authenticate small messages using secret-key cryptography."
)
sign_app = StepTyper(help="Sign small messages using public-key cryptography.")
auth_app = StepTyper(help="Authenticate a message using a secret key.")
app.add_typer(auth_app, name="auth")
app.add_typer(box_app, name="box")
app.add_typer(secretbox_app, name="secretbox")
app.add_typer(sign_app, name="sign")

NONCE_SIZE = 24
_NONCE_HELP = "The nonce: as it is, or 'string:...', or standard base64 after 'base64:'."
_RAW_IN = "Indicates that input is not base64 encoded."
_RAW_OUT = "Do not base64 encode output."


def decode_nonce(value: str) -> bytes:
    """step's decodeNonce, then the zero padding its [24]byte copy gives."""
    if value.startswith("string:"):
        nonce = value[7:].encode()
    elif value.startswith("base64:"):
        try:
            nonce = base64.b64decode(value[7:], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CLIError(f"error decoding base64 nonce: {exc}") from None
    else:
        nonce = value.encode()
    if len(nonce) > NONCE_SIZE:
        raise CLIError("nonce cannot be longer than 24 bytes")
    return nonce.ljust(NONCE_SIZE, b"\0")


def _key(path: Path, size: int, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"open {path}: {go_strerror(exc)}") from None
    if len(data) != size:
        raise CLIError(f"invalid {what}: key size is not {size} bytes")
    return data


def _input(prompt: str) -> bytes:
    """utils.ReadInput: standard input, or a prompt when it is a terminal."""
    if sys.stdin.isatty():
        return str(typer.prompt(prompt)).encode()
    return sys.stdin.buffer.read()


def _decode_input(data: bytes, raw: bool) -> bytes:
    """Unpadded base64url as Go's RawURLEncoding reads it (line breaks ignored)."""
    if raw:
        return data
    text = re.sub(rb"[\r\n]", b"", data)
    if not re.fullmatch(rb"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise CLIError("error decoding base64 input: illegal base64 data")
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _output(data: bytes, raw: bool) -> None:
    if raw:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        typer.echo(base64.urlsafe_b64encode(data).rstrip(b"=").decode())


def _write_pair(pub_file: Path, priv_file: Path, pub: bytes, priv: bytes, force: bool) -> None:
    if pub_file == priv_file:
        raise CLIError("positional arguments <pub-file> and <priv-file> cannot be equal")
    check_outputs([pub_file, priv_file], force)
    write_output(pub_file, pub)
    write_output(priv_file, priv)
    typer.echo(f"Your public key has been saved in {pub_file}.", err=True)
    typer.echo(f"Your private key has been saved in {priv_file}.", err=True)


_PUB = typer.Argument(..., metavar="PUB_FILE", help="Where to write the public key.")
_PRIV = typer.Argument(..., metavar="PRIV_FILE", help="Where to write the private key.")
_FORCE = typer.Option(False, "--force", "-f", help="Overwrite existing files without asking.")
_NONCE = typer.Argument(..., metavar="NONCE", help=_NONCE_HELP)


@box_app.command("keypair")
def box_keypair(pub_file: Path = _PUB, priv_file: Path = _PRIV, force: bool = _FORCE) -> None:
    """Create a key pair (Curve25519) for use with box seal and open.

    Both files hold the raw 32-byte keys and are written with mode 0600.

    Examples:

      $ step crypto nacl box keypair bob.box.pub bob.box.priv
    """
    pub, priv = nacl.bindings.crypto_box_keypair()
    _write_pair(pub_file, priv_file, pub, priv, force)


@box_app.command("seal")
def box_seal(
    nonce: str = _NONCE,
    recipient_pub: Path = typer.Argument(
        ..., metavar="RECIPIENT_PUB_KEY", help="The recipient's public key file."
    ),
    priv: Path = typer.Argument(..., metavar="PRIV_KEY", help="The sender's private key file."),
    raw: bool = typer.Option(False, "--raw", help=_RAW_OUT),
) -> None:
    """Encrypt and authenticate standard input for a recipient (crypto_box).

    The box is printed in unpadded base64url unless --raw. The same nonce must never be used
    twice with the same keys.

    Examples:

      $ echo message | step crypto nacl box seal nonce alice.box.pub bob.box.priv

      $ step crypto nacl box seal base64:bm9uY2U= alice.box.pub bob.box.priv < msg.txt
    """
    n = decode_nonce(nonce)
    pk = _key(recipient_pub, 32, "public key")
    sk = _key(priv, 32, "private key")
    message = _input("Please enter text to seal")
    _output(nacl.bindings.crypto_box_easy(message, n, pk, sk), raw)


@box_app.command("open")
def box_open(
    nonce: str = _NONCE,
    sender_pub: Path = typer.Argument(
        ..., metavar="SENDER_PUB_KEY", help="The sender's public key file."
    ),
    priv: Path = typer.Argument(..., metavar="PRIV_KEY", help="The recipient's private key file."),
    raw: bool = typer.Option(False, "--raw", help=_RAW_IN),
) -> None:
    """Authenticate and decrypt a box read from standard input, printing the message.

    Examples:

      $ echo 0oM0A6xIezA6iMYssZECmbMRQh77mzDt | \\
          step crypto nacl box open nonce bob.box.pub alice.box.priv

      $ step crypto nacl box open --raw base64:bm9uY2U= bob.box.pub alice.box.priv < box.bin
    """
    n = decode_nonce(nonce)
    pk = _key(sender_pub, 32, "public key")
    sk = _key(priv, 32, "private key")
    box = _decode_input(sys.stdin.buffer.read(), raw)
    try:
        message = nacl.bindings.crypto_box_open_easy(box, n, pk, sk)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise CLIError("error authenticating or decrypting input") from None
    _output(message, raw=True)


@secretbox_app.command("seal")
def secretbox_seal(
    nonce: str = _NONCE,
    key_file: Path = typer.Argument(..., metavar="KEY_FILE", help="A file of 32 random bytes."),
    raw: bool = typer.Option(False, "--raw", help=_RAW_OUT),
) -> None:
    """Encrypt and authenticate standard input with a secret key (crypto_secretbox).

    Examples:

      $ echo message | step crypto nacl secretbox seal nonce secretbox.key

      $ step crypto nacl secretbox seal base64:bm9uY2U= secretbox.key < message.txt
    """
    n = decode_nonce(nonce)
    key = _key(key_file, 32, "key")
    message = _input("Please enter text to seal")
    _output(nacl.bindings.crypto_secretbox_easy(message, n, key), raw)


@secretbox_app.command("open")
def secretbox_open(
    nonce: str = _NONCE,
    key_file: Path = typer.Argument(..., metavar="KEY_FILE", help="A file of 32 random bytes."),
    raw: bool = typer.Option(False, "--raw", help=_RAW_IN),
) -> None:
    """Authenticate and decrypt a secretbox read from standard input, printing the message.

    Examples:

      $ echo o2NJTsIJsk0dl4epiBwS1mM4xFED7iE | step crypto nacl secretbox open nonce secretbox.key
    """
    n = decode_nonce(nonce)
    key = _key(key_file, 32, "key file")
    box = _decode_input(sys.stdin.buffer.read(), raw)
    try:
        message = nacl.bindings.crypto_secretbox_open_easy(box, n, key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise CLIError("error authenticating or decrypting input") from None
    _output(message, raw=True)


@sign_app.command("keypair")
def sign_keypair(pub_file: Path = _PUB, priv_file: Path = _PRIV, force: bool = _FORCE) -> None:
    """Create an Ed25519 key pair for use with sign and open.

    The public key file holds 32 raw bytes, the private key file 64 (seed and public key),
    as step writes them, with mode 0600.

    Examples:

      $ step crypto nacl sign keypair nacl.sign.pub nacl.sign.priv
    """
    pub, priv = nacl.bindings.crypto_sign_keypair()
    _write_pair(pub_file, priv_file, pub, priv, force)


@sign_app.command("sign")
def sign_sign(
    priv_file: Path = typer.Argument(
        ..., metavar="PRIV_FILE", help="The 64-byte private key file."
    ),
    raw: bool = typer.Option(False, "--raw", help=_RAW_OUT),
) -> None:
    """Sign standard input with Ed25519, printing the signed message (signature + message).

    Examples:

      $ echo message | step crypto nacl sign sign nacl.sign.priv
    """
    key = _key(priv_file, 64, "private key")
    message = _input("Please enter text to sign")
    _output(nacl.bindings.crypto_sign(message, key), raw)


@sign_app.command("open")
def sign_open(
    pub_file: Path = typer.Argument(..., metavar="PUB_FILE", help="The 32-byte public key file."),
    raw: bool = typer.Option(False, "--raw", help=_RAW_IN),
) -> None:
    """Verify a signed message read from standard input and print the message.

    Examples:

      $ step crypto nacl sign sign nacl.sign.priv < msg.txt | \\
          step crypto nacl sign open nacl.sign.pub
    """
    key = _key(pub_file, 32, "public key")
    signed = _decode_input(_input("Write signed message to open"), raw)
    try:
        message = nacl.bindings.crypto_sign_open(signed, key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        raise CLIError("error authenticating input") from None
    _output(message, raw=True)


def _auth(message: bytes, key: bytes) -> bytes:
    """crypto_auth (HMAC-SHA-512-256): HMAC-SHA-512 cut to 32 bytes, as NaCl defines it."""
    return hmac.new(key, message, hashlib.sha512).digest()[:32]


@auth_app.command("digest")
def auth_digest(
    key_file: Path = typer.Argument(..., metavar="KEY_FILE", help="A file of 32 random bytes."),
) -> None:
    """Print the 32-byte authenticator (hex) of standard input under a secret key.

    Examples:

      $ echo message | step crypto nacl auth digest auth.key
    """
    key = _key(key_file, 32, "key file")
    typer.echo(_auth(_input("Please enter text to digest"), key).hex())


@auth_app.command("verify")
def auth_verify(
    key_file: Path = typer.Argument(..., metavar="KEY_FILE", help="A file of 32 random bytes."),
    digest: str = typer.Argument(..., metavar="DIGEST", help="The hex authenticator to check."),
) -> None:
    """Check the authenticator of standard input: print 'ok', or fail with 'fail'.

    Examples:

      $ echo message | step crypto nacl auth verify auth.key 6ba7...
    """
    key = _key(key_file, 32, "key file")
    try:
        expected = bytes.fromhex(digest)
    except ValueError as exc:
        raise CLIError(f"error decoding digest: {exc}") from None
    if not hmac.compare_digest(_auth(_input("Please enter text to verify"), key), expected):
        raise CLIError("fail")
    typer.echo("ok")
