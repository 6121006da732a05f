"""`step crypto jwk`: create JWKs, print their public half and thumbprint, manage JWK sets.

Follows smallstep/cli's command/crypto/jwk: the private JWK is sealed by default in a
PBES2-HS256+A128KW / A256GCM JWE (600 000 iterations, `cty` jwk+json) written as indented
flattened JSON, with :func:`pki.jwe.encrypt_jwk` (the provisioner-key code path); the `kid`
is the RFC 7638 thumbprint; files are written 0600 and never replaced without `--force`.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from cli.common import CLIError, check_outputs, write_output
from cli.crypto_jose_key import (
    PASSWORD_FILE_HELP,
    StepKey,
    get_password,
    indent_json,
    json_thumbprint,
    jwk_json,
    read_key,
    stdin_jwk,
    validate,
)
from cli.crypto_jwk_keyset import app as keyset_app
from cli.helptext import StepTyper
from pki.jose import thumbprint
from pki.jwe import encrypt_jwk

app = StepTyper(help="Create JSON Web Keys (JWK), print their public key and thumbprint.")
app.add_typer(keyset_app, name="keyset")

PBKDF2_ITERATIONS = 600_000  # step's jwk create: OWASP's 2022 recommendation
_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_MIN_RSA_BITS = 2048
_MIN_OCT_SIZE = 16


def _generate(kty: str, crv: str, size: int | None, use: str) -> StepKey:
    """jose.GenerateJWK's key: EC P-256, Ed25519, RSA 2048 and 32 alphanumeric bytes by default."""
    if kty == "EC":
        crv = crv or "P-256"
        if crv not in _CURVES:
            raise CLIError(
                f"invalid value '{crv}' for flag '--crv'; options are P-256, P-384, P-521"
            )
        return StepKey(ec.generate_private_key(_CURVES[crv]))
    if kty == "OKP":
        if use == "enc" and crv in ("", "Ed25519"):
            raise CLIError("invalid algorithm: Ed25519 cannot be used for encryption")
        if crv not in ("", "Ed25519"):
            raise CLIError(f"invalid value '{crv}' for flag '--crv'; options are Ed25519")
        return StepKey(ed25519.Ed25519PrivateKey.generate())
    if kty == "RSA":
        return StepKey(rsa.generate_private_key(65537, size or _MIN_RSA_BITS))
    alphabet = string.ascii_letters + string.digits
    return StepKey("".join(secrets.choice(alphabet) for _ in range(size or 32)).encode())


def _check_kty_flags(kty: str, crv: str | None, size: int | None, insecure: bool) -> None:
    if kty in ("EC", "OKP") and size is not None:
        raise CLIError(f"flag '--size' is incompatible with '--kty {kty}'")
    if kty in ("RSA", "oct") and crv is not None:
        raise CLIError(f"flag '--crv' is incompatible with '--kty {kty}'")
    if kty in ("RSA", "oct") and size is not None:
        minimum = _MIN_RSA_BITS if kty == "RSA" else _MIN_OCT_SIZE
        if size <= 0:
            raise CLIError("flag '--size' must be greater than 0")
        if size < minimum and not insecure:
            raise CLIError(
                f"flag '--size' requires at least {minimum} unless '--insecure' flag is provided"
            )
    if kty not in ("EC", "RSA", "OKP", "oct"):
        raise CLIError(f"invalid value '{kty}' for flag '--kty'; options are EC, RSA, OKP, or oct")


def _guess_create_alg(sk: StepKey) -> str:
    """The alg step gives a new key when `--alg` is not set (see `--alg` in the help)."""
    key, enc = sk.key, sk.use == "enc"
    if isinstance(key, bytes):
        return "A256GCMKW" if enc else "HS256"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if enc:
            return "ECDH-ES"
        return {"secp256r1": "ES256", "secp384r1": "ES384"}.get(key.curve.name, "ES512")
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA-OAEP-256" if enc else "RS256"
    return "EdDSA"


def _sealed(jwk: dict[str, str], password: bytes) -> bytes:
    """The private JWK as step writes it: a flattened JSON JWE, indented."""
    protected, encrypted_key, iv, ciphertext, tag = encrypt_jwk(
        jwk, password, p2c=PBKDF2_ITERATIONS
    ).split(".")
    flat = {
        "protected": protected,
        "encrypted_key": encrypted_key,
        "iv": iv,
        "ciphertext": ciphertext,
        "tag": tag,
    }
    return indent_json(flat)


@app.command("create")
def create_command(
    public_file: Path = typer.Argument(
        ..., metavar="PUBLIC_JWK_FILE", help="Where to write the public JWK."
    ),
    private_file: Path = typer.Argument(
        ..., metavar="PRIVATE_JWK_FILE", help="Where to write the (JWE encrypted) private JWK."
    ),
    kty: str = typer.Option(
        "EC", "--kty", "--type", metavar="type", help="The key type: EC, RSA, OKP or oct."
    ),
    crv: str | None = typer.Option(
        None,
        "--crv",
        "--curve",
        help="The curve: P-256 (default), P-384, P-521 for EC; Ed25519 for OKP.",
    ),
    size: int | None = typer.Option(
        None,
        "--size",
        metavar="size",
        help="RSA key size in bits (default 2048); oct key size in bytes (default 32).",
    ),
    alg: str = typer.Option(
        "",
        "--alg",
        "--algorithm",
        metavar="algorithm",
        help=(
            'The algorithm intended for the key ("alg"); by default ES256/ES384/ES512, RS256, '
            "EdDSA or HS256 for signing, ECDH-ES, RSA-OAEP-256 or A256GCMKW for encryption."
        ),
    ),
    use: str = typer.Option(
        "sig", "--use", metavar="use", help="The intended use of the public key: sig or enc."
    ),
    kid: str | None = typer.Option(
        None, "--kid", metavar="kid", help="The key ID; by default the RFC 7638 thumbprint."
    ),
    from_pem: Path | None = typer.Option(
        None,
        "--from-pem",
        metavar="pem-file",
        help="Make the JWK of the key in an existing PEM file instead of a new key.",
    ),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        metavar="file",
        help="The path to the <file> containing the password to encrypt the private JWK.",
    ),
    no_password: bool = typer.Option(
        False, "--no-password", help="Do not encrypt the private JWK (requires --insecure)."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow --no-password and small key sizes."
    ),
    force: bool = typer.Option(
        False, "--force", "-f", help="Overwrite existing files without asking."
    ),
    subtle: bool = typer.Option(
        False, "--subtle", hidden=True, help="Allow unusual keys and flags."
    ),
) -> None:
    """Create a JWK (JSON Web Key), or the JWK of an existing PEM key.

    The private JWK is encrypted by default as a PBES2-HS256+A128KW JWE with the password
    asked for or read from --password-file; --no-password --insecure writes it in the clear.
    Both files are written with mode 0600. The key ID is the RFC 7638 thumbprint unless
    --kid is given (symmetric keys get no thumbprint key ID).

    Examples:

      $ step crypto jwk create jwk.pub.json jwk.json

      $ step crypto jwk create rsa.pub.json rsa.json --kty RSA --size 4096 --use enc

      $ step crypto jwk create ed.pub.json ed.json --kty OKP --crv Ed25519

      $ step crypto jwk create oct.pub.json oct.json --kty oct --use enc --alg A256GCMKW

      $ step crypto jwk create jwk.pub.json jwk.json --from-pem key.pem
    """
    if no_password and password_file is not None:
        raise CLIError("flag '--no-password' is incompatible with '--password-file'")
    if no_password and not insecure:
        raise CLIError("flag '--no-password' requires the '--insecure' flag")
    if public_file == private_file:
        raise CLIError(
            "positional arguments <public-jwk-file> and <private-jwk-file> cannot be equal"
        )
    _check_kty_flags(kty, crv, size, insecure)
    check_outputs([public_file, private_file], force)
    password = None
    if not no_password:  # read it first: no key is made for want of a password
        password = get_password(
            password_file, "Please enter the password to encrypt the private JWK"
        )
        if not password:
            raise CLIError("the password cannot be empty")

    if from_pem is not None:
        sk = read_key(from_pem, use, password_file=password_file if not no_password else None)
        sk.alg = alg
    else:
        sk = _generate(kty, crv or "", size, use)
    sk.use = use
    if kid is not None:
        sk.kid = kid
    elif not isinstance(sk.key, bytes):
        sk.kid = json_thumbprint(sk)
    else:
        sk.kid = ""
    sk.alg = sk.alg or alg or _guess_create_alg(sk)
    validate(sk)

    write_output(public_file, indent_json(jwk_json(sk, private=False)))
    if sk.is_public:
        typer.echo(f"Your public key has been saved in {public_file}.", err=True)
        typer.echo("Only the public JWK was generated.", err=True)
        typer.echo("Cannot retrieve a private key from a public one.", err=True)
        return
    private = jwk_json(sk, private=True)
    write_output(
        private_file, indent_json(private) if password is None else _sealed(private, password)
    )
    typer.echo(f"Your public key has been saved in {public_file}.", err=True)
    typer.echo(f"Your private key has been saved in {private_file}.", err=True)


@app.command("public")
def public_command(
    password_file: Path | None = typer.Option(
        None, "--password-file", metavar="file", help=PASSWORD_FILE_HELP
    ),
) -> None:
    """Print the public JWK of the (maybe encrypted) private JWK read from standard input.

    A symmetric (oct) key has no public half and is printed as it is.

    Examples:

      $ step crypto jwk public < jwk.json

      $ step crypto jwk public --password-file pass.txt < jwk.json
    """
    sk = stdin_jwk(password_file, "your private JWK")
    typer.echo(indent_json(jwk_json(sk, private=False)).decode())


@app.command("thumbprint")
def thumbprint_command(
    password_file: Path | None = typer.Option(
        None, "--password-file", metavar="file", help=PASSWORD_FILE_HELP
    ),
) -> None:
    """Print the RFC 7638 thumbprint of the JWK read from standard input.

    The thumbprint is the base64url (unpadded) SHA-256 of the key's required members; a
    private key has its public key's thumbprint. Step uses it as the default key ID.

    Examples:

      $ step crypto jwk thumbprint < jwk.pub.json

      $ step crypto jwk create pub.json priv.json && step crypto jwk thumbprint < pub.json
    """
    sk = stdin_jwk(password_file, "your private JWK")
    typer.echo(thumbprint(jwk_json(sk, private=False)))
