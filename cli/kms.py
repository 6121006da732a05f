"""`step kms`: manage keys in any key store by URI (step-kms-plugin's commands, built in).

A key URI names the store and the key at once: a file path or `file:PATH` (an encrypted PEM
file, password from `--password-file`), `pkcs11:module-path=...;token=...;id=...;object=...
?pin-source=FILE`, `yubikey:slot-id=9c?pin-source=FILE`. Only `open_keystore` and the
`KeyStore` interface are used, so every store that joins `keystores` works here.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path

import typer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance import ceremony_record
from cli import kms_attest
from cli.common import CLIError, check_writable, prompt_password, read_password_file, step_path
from cli.helptext import StepTyper
from keystores import (
    KeyLister,
    KeySpec,
    KeyStoreError,
    PublicKey,
    SigningKey,
    is_hardware,
    normalize_key_uri,
    open_keystore,
)
from keystores.file import FileKeyStore

__all__ = [
    "app",
    "file_key_path",
    "is_file_uri",
    "new_key_path",
    "record_path",
    "store_password",
]

app = StepTyper(help="Manage keys in any key store by URI: files, PKCS#11 tokens, YubiKeys.")

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
_FORMATS = ("base64", "hex", "raw")


def is_file_uri(uri: str) -> bool:
    """A key in the file store (a path, `file:` or `softkms:`): one the password decrypts."""
    return not is_hardware(uri)


def store_password(uri: str, password_file: Path | None, prompt: str) -> bytes | None:
    """The password for a file key: from `--password-file`, else asked on a terminal.

    Other stores take their PIN from the URI (`pin-source`, `pin-value`): None.
    """
    if password_file is not None:
        return read_password_file(password_file)
    if is_file_uri(uri) and sys.stdin.isatty():
        return prompt_password(prompt)
    return None


def record_path(record: Path | None) -> Path:
    """`--record`, or `$STEPPATH/ceremony/record.jsonl`."""
    return record if record is not None else ceremony_record.default_record_path(step_path())


def file_key_path(uri: str) -> Path | None:
    """The file a file-store key URI names (None for other stores, or a URI the store will
    refuse with its own error)."""
    if not is_file_uri(uri):
        return None
    try:
        return FileKeyStore().path_for(uri)
    except KeyStoreError:
        return None


def new_key_path(uri: str | None) -> Path | None:
    """The file of a file-store key that is still to be created; a key already there is only
    read (perhaps from read-only media), so it needs no writable place."""
    path = file_key_path(uri) if uri else None
    return path if path is not None and not path.exists() else None


def _pem(public: PublicKey) -> str:
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def _fail(command: str, exc: Exception) -> CLIError:
    return CLIError(f"step kms {command}: {ceremony_record.key_store_error(exc)}")


def create_command(
    uri: str = typer.Argument(..., help="The key URI (a file path, 'file:', 'pkcs11:', ...)."),
    kty: str = typer.Option("EC", "--kty", help="Key type: EC, RSA or OKP."),
    crv: str | None = typer.Option(
        None, "--crv", help="Curve: P-256 (EC default), P-384, P-521, Ed25519 (OKP)."
    ),
    size: int = typer.Option(2048, "--size", help="RSA key size in bits."),
    force: bool = typer.Option(False, "--force", help="Replace a key that is already there."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="File with the password that encrypts a file key (or a token PIN the URI lacks).",
    ),
    record: Path | None = typer.Option(
        None, "--record", help="The ceremony record (default $STEPPATH/ceremony/record.jsonl)."
    ),
) -> None:
    """Create a key in a key store and print its public key as PEM.

    An existing key is an error unless '--force' is given. File keys are encrypted at rest
    with the password from '--password-file' (PBKDF2 PKCS#8, 0600). A PKCS#11 key URI needs
    both 'id' and 'object' to create a key; the private half is generated in the token,
    sensitive and not extractable; the PIN comes from 'pin-source' (a file) or 'pin-value'.
    The creation is appended to the ceremony record (the URI with any pin-value redacted,
    the public key's SHA-256).

    Examples:

      $ step kms create --password-file pw.txt file:/media/usb/root.key

      $ step kms create --kty RSA --size 3072 \\
          'pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca;id=7331;object=ca?pin-source=pin'

      $ step kms create --kty OKP ./signing.key --password-file pw.txt > signing.pub
    """
    kty = kty.upper()
    curve = crv or ("Ed25519" if kty == "OKP" else "P-256")
    try:
        spec = KeySpec(kty, curve, size)
    except KeyStoreError as exc:
        raise _fail("create", exc) from None
    check_writable(file_key_path(uri), record_path(record))
    password = store_password(uri, password_file, "Please enter the password to encrypt the key")
    if is_file_uri(uri) and not password:
        raise CLIError("step kms create: file keys are encrypted: use '--password-file'")
    try:
        ceremony_record.check_appendable(record_path(record))
        with open_keystore(uri, password=password) as store:
            public = store.create_key(uri, spec, overwrite=force)
        details = {"kty": kty, "size": str(size)} if kty == "RSA" else {"kty": kty, "crv": curve}
        ceremony_record.append_entry(
            record_path(record),
            "step kms create",
            key_uris=[normalize_key_uri(uri)],
            public_keys=[public],
            details=details,
        )
    except (KeyStoreError, ceremony_record.CeremonyError, OSError) as exc:
        raise _fail("create", exc) from None
    typer.echo(_pem(public), nl=False)


def key_command(
    uri: str = typer.Argument(..., help="The key URI."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="File with the password that decrypts a file key (or a token PIN the URI lacks).",
    ),
) -> None:
    """Print the public key of a key in a key store, as PEM.

    Examples:

      $ step kms key \\
          'pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca;object=ca?pin-source=pin'

      $ step kms key file:/media/usb/root.key --password-file pw.txt
    """
    password = store_password(uri, password_file, "Please enter the password to decrypt the key")
    try:
        with open_keystore(uri, password=password) as store:
            public = store.public_key(uri)
    except (KeyStoreError, OSError) as exc:
        raise _fail("key", exc) from None
    typer.echo(_pem(public), nl=False)


def _hash(alg: str | None, default: hashes.HashAlgorithm) -> hashes.HashAlgorithm:
    if alg is None:
        return default
    factory = _HASHES.get(alg.upper().replace("-", ""))
    if factory is None:
        raise CLIError(f"step kms sign: unsupported --alg {alg!r} (use SHA256, SHA384 or SHA512)")
    return factory()


def _sign(key: SigningKey, data: bytes, alg: str | None, pss: bool) -> bytes:
    """Sign `data` (hashed on the host) with the key's default scheme.

    EC: ECDSA, ASN.1 DER, with the curve's hash (P-256 SHA-256, P-384 SHA-384, P-521
    SHA-512). RSA: PKCS #1 v1.5 with SHA-256, or PSS (salt = hash length) with '--pss'.
    Ed25519: pure EdDSA over the data.
    """
    if isinstance(key, ed25519.Ed25519PrivateKey):
        if alg is not None or pss:
            raise CLIError("step kms sign: Ed25519 signs the data itself: no '--alg' or '--pss'")
        return key.sign(data)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if pss:
            raise CLIError("step kms sign: '--pss' is for RSA keys")
        default: hashes.HashAlgorithm = {256: hashes.SHA256(), 384: hashes.SHA384()}.get(
            key.curve.key_size, hashes.SHA512()
        )
        return key.sign(data, ec.ECDSA(_hash(alg, default)))
    assert isinstance(key, rsa.RSAPrivateKey)
    digest = _hash(alg, hashes.SHA256())
    pad: padding.AsymmetricPadding = (
        padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
        if pss
        else padding.PKCS1v15()
    )
    return key.sign(data, pad, digest)


def sign_command(
    uri: str = typer.Argument(..., help="The key URI."),
    in_file: Path | None = typer.Option(
        None, "--in", help="The file to sign (default: standard input)."
    ),
    alg: str | None = typer.Option(
        None, "--alg", help="Hash: SHA256, SHA384, SHA512 (default: the key's own)."
    ),
    pss: bool = typer.Option(False, "--pss", help="RSA-PSS instead of PKCS #1 v1.5."),
    fmt: str = typer.Option("base64", "--format", help="Output: base64, hex or raw."),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="File with the password that decrypts a file key (or a token PIN the URI lacks).",
    ),
) -> None:
    """Sign data with a key in a key store and print the signature.

    The data is hashed on this host with the key's default: ECDSA (ASN.1 DER signature) with
    SHA-256 for P-256, SHA-384 for P-384, SHA-512 for P-521; RSA PKCS #1 v1.5 with SHA-256
    ('--pss' for RSA-PSS, salt length = hash length); Ed25519 over the data itself. '--alg'
    picks another hash. The signature is printed in base64 (default), hex, or raw bytes.

    Examples:

      $ step kms sign file:/media/usb/root.key --in manifest.json --password-file pw.txt

      $ echo -n hello | step kms sign --format hex \\
          'pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca;object=ca?pin-source=pin'

      $ step kms sign ./rsa.key --alg SHA512 --pss --format raw --in data.bin > data.sig
    """
    if fmt not in _FORMATS:
        raise CLIError(f"step kms sign: unsupported --format {fmt!r} (use base64, hex or raw)")
    try:
        data = in_file.read_bytes() if in_file is not None else sys.stdin.buffer.read()
    except OSError as exc:
        raise _fail("sign", exc) from None
    password = store_password(uri, password_file, "Please enter the password to decrypt the key")
    try:
        with open_keystore(uri, password=password) as store:
            signature = _sign(store.signer(uri), data, alg, pss)
    except (KeyStoreError, OSError) as exc:
        raise _fail("sign", exc) from None
    if fmt == "raw":
        sys.stdout.buffer.write(signature)
        sys.stdout.buffer.flush()
    elif fmt == "hex":
        typer.echo(signature.hex())
    else:
        typer.echo(base64.b64encode(signature).decode())


def list_command(
    store_uri: str = typer.Argument(..., help="The store URI, e.g. 'pkcs11:...;token=ca'."),
    as_json: bool = typer.Option(
        False, "--json", help="Print a JSON array with each key's details."
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="File with the store's PIN, if the URI gives none."
    ),
) -> None:
    """List the keys in a key store, one key URI a line.

    Only stores that can enumerate keys support this (PKCS#11 tokens: the private keys the
    PIN shows, as 'pkcs11:id=HEX;object=LABEL', the form ca.json's "key" takes; YubiKeys:
    each connected key, or the one 'yubikey:serial=N' names, with serial, firmware, form
    factor and each occupied slot's key type, policies, origin and certificate); the file
    store cannot (its keys are files anywhere on disk) and says so. '--json' prints every
    detail the store gives (label, id, type, uri).

    Examples:

      $ step kms list 'pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca?pin-source=pin'

      $ step kms list --json 'pkcs11:token=ca?pin-source=pin'

      $ step kms list yubikey:
    """
    password = read_password_file(password_file) if password_file is not None else None
    try:
        with open_keystore(store_uri, password=password) as store:
            if not isinstance(store, KeyLister):
                raise CLIError(f"step kms list: the {store.kind} key store cannot list keys")
            rows = [dict(row) for row in store.list_keys()]
    except (KeyStoreError, OSError) as exc:
        raise _fail("list", exc) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if any("firmware" in row for row in rows):
        _echo_devices(rows)
        return
    for row in rows:
        typer.echo(str(row.get("uri", "")))


def _echo_devices(rows: list[dict[str, str]]) -> None:
    """Devices with slots (YubiKeys): a line per device, then an indented line per key."""
    device = None
    for row in rows:
        if row.get("serial") != device:
            device = row.get("serial")
            typer.echo(
                f"YubiKey {device or '(no serial)'}: firmware {row.get('firmware', '?')}, "
                f"form factor {row.get('formFactor', 'unknown')}"
            )
        if "slot" not in row:
            typer.echo("  (no keys)")
            continue
        facts = [row["uri"], row.get("type", "")]
        if "pinPolicy" in row:
            facts += [f"pin-policy={row['pinPolicy']}", f"touch-policy={row['touchPolicy']}"]
            facts.append("generated on the card" if row.get("generated") == "true" else "imported")
        subject = row.get("subject")
        facts.append(f"certificate {subject}" if subject else "no certificate")
        typer.echo("  " + "  ".join(f for f in facts if f))


app.command(name="create")(create_command)
app.command(name="key")(key_command)
app.command(name="sign")(sign_command)
app.command(name="list")(list_command)
app.command(name="attest")(kms_attest.attest_command)
