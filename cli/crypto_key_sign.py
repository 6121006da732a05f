"""`step crypto key sign` and `step crypto key verify`: raw signatures, base64 encoded.

As smallstep/cli's command/crypto/key/sign.go: ECDSA signatures are ASN.1 DER over the digest
the curve implies (SHA-256 for P-256, SHA-384 for P-384, SHA-512 for P-521), whatever
`--alg` says; RSA signatures are PKCS #1 v1.5, or PSS with `--pss` (salt as long as possible
when signing, any length when verifying), over the `--alg` digest; Ed25519 signs the message.
The signature is printed in standard base64, or as bytes with `--raw`.
"""

from __future__ import annotations

import base64
import binascii
import sys
from pathlib import Path

import typer
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from cli.common import CLIError
from cli.crypto_keyio import AnyKey, is_private, parse_key, public_of, read_input

_ALGS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha512-224": hashes.SHA512_224,
    "sha512-256": hashes.SHA512_256,
    "md5": hashes.MD5,
}
_CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp224r1": hashes.SHA224,
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
_ALG_HELP = (
    "The hash of RSA signatures: sha1, sha224, sha256 (the default), sha384, sha512, "
    "sha512-224, sha512-256 or md5. EC keys use their curve's hash, Ed25519 none."
)
_FILE_HELP = "The file to sign; standard input when absent or '-'."


def _rsa_hash(alg: str) -> hashes.HashAlgorithm:
    cls = _ALGS.get(alg.lower())
    if cls is None:
        raise CLIError(f"unsupported algorithm {alg}")
    return cls()


def _ec_hash(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    cls = _CURVE_HASHES.get(curve.name)
    if cls is None:
        raise CLIError(f"unsupported elliptic curve {curve.name}")
    return cls()


def sign(key: AnyKey, message: bytes, alg: str, pss: bool) -> bytes:
    """step's signature of `message` with the private `key`."""
    digest = _rsa_hash(alg)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(_ec_hash(key.curve)))
    if isinstance(key, rsa.RSAPrivateKey):
        scheme: padding.AsymmetricPadding = padding.PKCS1v15()
        if pss:
            scheme = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.MAX_LENGTH)
        try:
            return key.sign(message, scheme, digest)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CLIError(f"error signing message: {exc}") from None
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign(message)


def verify(key: AnyKey, message: bytes, signature: bytes, alg: str, pss: bool) -> bool:
    """Whether `signature` is step's signature of `message` by `key`'s public half."""
    digest = _rsa_hash(alg)
    public = public_of(key)
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(_ec_hash(public.curve)))
        elif isinstance(public, rsa.RSAPublicKey):
            scheme: padding.AsymmetricPadding = padding.PKCS1v15()
            if pss:
                scheme = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)
            public.verify(signature, message, scheme, digest)
        else:
            public.verify(signature, message)
    except InvalidSignature:
        return False
    except UnsupportedAlgorithm as exc:
        raise CLIError(f"error verifying the signature: {exc}") from None
    return True


def sign_command(
    file: str = typer.Argument("-", metavar="FILE", help=_FILE_HELP),
    key_file: str | None = typer.Option(
        None, "--key", metavar="KEY_FILE", help="The private key to sign with."
    ),
    alg: str = typer.Option("sha256", "--alg", metavar="ALGORITHM", help=_ALG_HELP),
    pss: bool = typer.Option(False, "--pss", help="Use the RSA-PSS signature scheme."),
    raw: bool = typer.Option(False, "--raw", help="Print the raw bytes instead of base64."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="The path to the <file> containing the password to decrypt the private key.",
    ),
) -> None:
    """Sign a file or a message with a private key.

    An RSA key makes a PKCS #1 v1.5 signature, or an RSA-PSS one with
    --pss, over the --alg digest of the message; an EC key makes an ASN.1
    DER ECDSA signature over the digest its curve implies; an Ed25519 key
    signs the message itself. The signature is printed in base64.

    Examples:

      $ step crypto key sign --key priv.key file.txt

      $ echo "message to be signed" | step crypto key sign --key priv.key

      $ step crypto key sign --key rsa.key --alg sha512 file.txt

      $ step crypto key sign --key rsa.key --pss file.txt
    """
    if key_file is None:
        raise CLIError("'step crypto key sign' requires the '--key' flag")
    _rsa_hash(alg)  # an unknown --alg fails before any password is asked for
    key = parse_key(read_input(key_file), key_file, password_file)
    if not is_private(key):
        raise CLIError(f"key {key_file} is not a signer")
    signature = sign(key, read_input(file), alg, pss)
    if raw:
        sys.stdout.buffer.write(signature)
        sys.stdout.flush()
    else:
        typer.echo(base64.b64encode(signature).decode())


def verify_command(
    file: str = typer.Argument(
        "-", metavar="FILE", help="The file to verify; standard input when absent or '-'."
    ),
    key_file: str | None = typer.Option(
        None,
        "--key",
        metavar="KEY_FILE",
        help="The public key (or a private key or certificate holding it).",
    ),
    signature: str | None = typer.Option(
        None, "--signature", "--sig", metavar="BASE64", help="The signature, in base64."
    ),
    alg: str = typer.Option("sha256", "--alg", metavar="ALGORITHM", help=_ALG_HELP),
    pss: bool = typer.Option(False, "--pss", help="Verify an RSA-PSS signature."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="The <file> with the password of an encrypted private key given as --key.",
    ),
) -> None:
    """Verify the signature of a file or a message.

    Prints "true" and exits 0 when the signature is good; prints "false" on
    standard error and exits 1 when it is not. The flags mean what they mean
    for step crypto key sign.

    Examples:

      $ step crypto key verify --key pub.key --sig "MEUCIQ...=" file.txt
      true

      $ step crypto key verify --key rsa.pub --alg sha512 --sig "base64...=" file.txt

      $ step crypto key verify --key rsa.pub --pss --sig "base64...=" file.txt
    """
    if key_file is None:
        raise CLIError("'step crypto key verify' requires the '--key' flag")
    if not signature:
        raise CLIError("'step crypto key verify' requires the '--signature' flag")
    _rsa_hash(alg)
    try:
        raw = base64.b64decode(signature, validate=True)
    except binascii.Error as exc:
        raise CLIError(f"error decoding base64 signature: {exc}") from None
    key = parse_key(read_input(key_file), key_file, password_file)
    if not verify(key, read_input(file), raw, alg, pss):
        raise CLIError("false")
    typer.echo("true")
