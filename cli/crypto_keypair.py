"""`step crypto keypair` and `step crypto change-pass`, after smallstep/cli's command/crypto.

`keypair` makes an EC P-256 key unless told otherwise (`--kty --curve --size`, step's rules)
or takes one from `--from-jwk`, and writes the public key as PEM and the private key
encrypted (see :mod:`cli.crypto_keyio` for the form). `change-pass` re-encrypts a PEM key
(any form step or OpenSSL writes) or a JWK wrapped in a PBES2 JWE. Both refuse to write a key
in the clear without `--no-password --insecure`, and to replace a file without `--force` (or
a yes on a terminal); key files are written 0600.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from cli.common import CLIError, check_outputs, write_output
from cli.crypto_keyio import (
    PrivateKey,
    encrypt_jwe,
    input_kind,
    is_private,
    new_password,
    parse_jwk_text,
    parse_key,
    private_pem,
    public_of,
    public_pem,
    read_input,
)

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_MIN_RSA_BITS = 2048

_PASSWORD_FILE_HELP = "The path to the <file> containing the password to encrypt the private key."
_NO_PASSWORD_HELP = (
    "Do not encrypt the private key: it is written in the clear. Not recommended; "
    "requires --insecure."
)


def check_no_password(no_password: bool, insecure: bool) -> None:
    """step's rule: writing a key in the clear needs both `--no-password` and `--insecure`."""
    if no_password and not insecure:
        raise CLIError("flag '--no-password' requires the '--insecure' flag")


def generate_key(
    kty: str | None, curve: str | None, size: int | None, insecure: bool
) -> PrivateKey:
    """A new key by step's `--kty --curve --size` rules (utils.GetKeyDetailsFromCLI)."""
    if kty is None:
        if curve is not None:
            raise CLIError("flag '--curve' requires the '--kty' flag")
        if size is not None:
            raise CLIError("flag '--size' requires the '--kty' flag")
        kty = "EC"
    if kty == "RSA":
        if curve is not None:
            raise CLIError("flag '--curve' is incompatible with flag '--kty RSA'")
        bits = 2048 if size is None else size
        if bits < _MIN_RSA_BITS and not insecure:
            raise CLIError(
                f"flag '--size' requires at least {_MIN_RSA_BITS} "
                "unless '--insecure' flag is provided"
            )
        if bits < 1024:
            raise CLIError("flag '--size' must be greater or equal than 1024")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if kty in ("EC", "OKP") and size is not None:
        raise CLIError(f"flag '--size' is incompatible with flag '--kty {kty}'")
    if kty == "EC":
        curve = curve or "P-256"
        if curve not in _CURVES:
            raise CLIError(
                f"flag '--kty EC' is incompatible with flag '--curve {curve}'; "
                "options are P-256, P-384, P-521"
            )
        return ec.generate_private_key(_CURVES[curve]())
    if kty == "OKP":
        if curve not in (None, "Ed25519"):
            raise CLIError(
                f"flag '--kty OKP' is incompatible with flag '--curve {curve}'; options are Ed25519"
            )
        return ed25519.Ed25519PrivateKey.generate()
    raise CLIError(f"invalid value '{kty}' for flag '--kty'; options are RSA, EC, OKP")


def keypair_command(
    pub_file: Path = typer.Argument(
        ..., metavar="PUB_FILE", help="The path to write the public key."
    ),
    priv_file: Path = typer.Argument(
        ..., metavar="PRIV_FILE", help="The path to write the private key."
    ),
    kty: str | None = typer.Option(
        None, "--kty", help="The key type: EC (the default), RSA or OKP (Ed25519)."
    ),
    curve: str | None = typer.Option(
        None,
        "--curve",
        "--crv",
        metavar="CURVE",
        help="The curve: P-256 (the default), P-384 or P-521 for EC; Ed25519 for OKP.",
    ),
    size: int | None = typer.Option(
        None, "--size", help="The size in bits of an RSA key (2048 unless set)."
    ),
    from_jwk: Path | None = typer.Option(
        None,
        "--from-jwk",
        metavar="JWK_FILE",
        help="Write the key of an existing JWK file as PEM instead of creating one.",
    ),
    password_file: Path | None = typer.Option(None, "--password-file", help=_PASSWORD_FILE_HELP),
    no_password: bool = typer.Option(False, "--no-password", help=_NO_PASSWORD_HELP),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow --no-password and RSA keys shorter than 2048 bits."
    ),
    force: bool = typer.Option(
        False, "--force", "-f", help="Force the overwrite of files without asking."
    ),
) -> None:
    """Generate a public / private key pair in PEM format.

    The key is EC P-256 unless --kty, --curve or --size say otherwise. The
    private key is encrypted with a password, read from --password-file or
    asked on the terminal; --no-password --insecure writes it unencrypted.
    Both files are written with mode 0600, and existing files are replaced
    only with --force.

    Examples:

      $ step crypto keypair foo.pub foo.key

      $ step crypto keypair foo.pub foo.key --kty RSA --size 4096

      $ step crypto keypair foo.pub foo.key --kty EC --curve P-521

      $ step crypto keypair foo.pub foo.key --kty OKP --curve Ed25519

      $ step crypto keypair foo.pub foo.key --no-password --insecure
    """
    if pub_file == priv_file:
        raise CLIError("positional arguments <PUB_FILE> and <PRIV_FILE> cannot be equal")
    if no_password and password_file is not None:
        raise CLIError("flag '--no-password' is incompatible with '--password-file'")
    check_no_password(no_password, insecure)
    key: object
    if from_jwk is not None:
        for flag, value in (("kty", kty), ("curve", curve), ("size", size)):
            if value is not None:
                raise CLIError(f"flag '--from-jwk' is incompatible with '--{flag}'")
        key = parse_jwk_text(read_input(str(from_jwk)), str(from_jwk), password_file)[0]
    else:
        key = generate_key(kty, curve, size, insecure)
    outputs = [pub_file] if not is_private(key) else [pub_file, priv_file]
    check_outputs(outputs, force)
    private_bytes = None
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        password = None if no_password else new_password(password_file, "the private key")
        private_bytes = private_pem(key, password)
    write_output(pub_file, public_pem(public_of(key)), mode=0o600)
    typer.echo(f"Your public key has been saved in {pub_file}.", err=True)
    if private_bytes is None:
        typer.echo("Only the public PEM was generated.", err=True)
        typer.echo("Cannot retrieve a private key from a public one.", err=True)
        return
    write_output(priv_file, private_bytes, mode=0o600)
    typer.echo(f"Your private key has been saved in {priv_file}.", err=True)


def _open_private(
    data: bytes, name: str, password_file: Path | None
) -> Callable[[bytes | None], bytes]:
    """Open the key in `data` and return how to write it again under a new password."""
    if input_kind(data) == "pem":
        key = parse_key(data, name, password_file)
        if not isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise CLIError(f"{name} holds no private key")
        pem_key = key
        return lambda new: private_pem(pem_key, new)
    jwk_key, members, _ = parse_jwk_text(data, name, password_file)
    if not is_private(jwk_key):
        raise CLIError(f"{name} holds no private key")

    def as_jwk(new: bytes | None) -> bytes:
        payload = json.dumps(members, separators=(",", ":")).encode()
        document = members if new is None else encrypt_jwe(payload, new)
        return json.dumps(document, indent=2).encode()

    return as_jwk


def change_pass_command(
    key_file: Path = typer.Argument(
        ..., metavar="KEY_FILE", help="The PEM or JWK file with the encrypted key."
    ),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="The path to the <file> containing the password to decrypt the private key.",
    ),
    new_password_file: Path | None = typer.Option(
        None,
        "--new-password-file",
        help="The path to the <file> containing the password to encrypt the private key.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "--output-file",
        help="The <file> to write the re-encrypted key to; the key file itself by default.",
    ),
    no_password: bool = typer.Option(False, "--no-password", help=_NO_PASSWORD_HELP),
    insecure: bool = typer.Option(False, "--insecure", help="Allow --no-password."),
    force: bool = typer.Option(
        False, "--force", "-f", help="Force the overwrite of files without asking."
    ),
) -> None:
    """Change the password of an encrypted private key (PEM or JWK format).

    A PEM key may be encrypted PKCS#8, the legacy Proc-Type/DEK-Info PEM
    older step versions and OpenSSL write, or unencrypted; it is written
    back as encrypted PKCS#8 (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC). A
    JWK key may be wrapped in a PBES2 JWE, as step crypto jwk create
    writes it, or plain; it is written back wrapped in a new JWE.
    --no-password --insecure removes the password instead. The new file
    is written with mode 0600 and replaces an existing one (the key file
    itself included) only with --force or after a yes on the terminal.

    Examples:

      $ step crypto change-pass key.pem

      $ step crypto change-pass key.pem --out new-key.pem

      $ step crypto change-pass key.pem --password-file old.txt \\
          --new-password-file new.txt --force

      $ step crypto change-pass key.pem --no-password --insecure

      $ step crypto change-pass key.jwk --out new-key.jwk
    """
    check_no_password(no_password, insecure)
    if no_password and new_password_file is not None:
        raise CLIError("flag '--no-password' is incompatible with '--new-password-file'")
    name = str(key_file)
    target = out or key_file
    data = read_input(name)
    check_outputs([target], force)
    serialize = _open_private(data, name, password_file)  # a wrong password fails here
    new = None
    if not no_password:
        new = new_password(new_password_file, str(target), flag="--new-password-file")
    write_output(target, serialize(new), mode=0o600)
    typer.echo(f"Your key has been saved in {target}.", err=True)
