"""`step certificate bundle`, `key`, `format` and `p12`: re-package certificates and keys.

Follows smallstep/cli's command/certificate/bundle.go, key.go, format.go and p12.go: the
same arguments and flags, output files written 0600 (format keeps the input's mode) and
replaced only with --force (or a yes on a terminal).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    KeySerializationEncryption,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    pkcs12,
)

from cli.certificate_io import read_input
from cli.certificate_keys import read_private_key, same_public_key
from cli.certificate_x509 import read_certificates
from cli.common import (
    CLIError,
    check_outputs,
    go_strerror,
    read_password_file,
    write_output,
)

__all__ = ["bundle_command", "format_command", "key_command", "p12_command"]

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)
# PBKDF2 rounds of a modern .p12 (go-pkcs12 uses 2048, readers accept any count).
_P12_ROUNDS = 600_000
_Force = typer.Option(False, "--force", "-f", help="Overwrite an existing output file.")


def _note(message: str) -> None:
    typer.echo(message, err=True)


def _first_block(path: str) -> bytes:
    """The first PEM block of a file, as step's pem.Decode takes it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"open {path}: {go_strerror(exc)}") from None
    match = _PEM_BLOCK.search(data)
    if match is None:
        raise CLIError(f"could not parse certificate file '{path}'")
    block = match.group(0)
    return block if block.endswith(b"\n") else block + b"\n"


def bundle_command(
    crt_file: str = typer.Argument(
        ..., metavar="CRT_FILE", help="The leaf certificate (PEM).", show_default=False
    ),
    ca_file: str = typer.Argument(
        ..., metavar="CA_FILE", help="The issuing CA certificate (PEM).", show_default=False
    ),
    bundle_file: Path = typer.Argument(
        ..., metavar="BUNDLE_FILE", help="Where to write the bundle.", show_default=False
    ),
    force: bool = _Force,
) -> None:
    """Bundle a certificate with its issuer: CRT_FILE then CA_FILE, in one PEM file.

    The first PEM block of each file is taken. The bundle is written 0600.

    Examples:

      $ step certificate bundle foo.crt intermediate-ca.crt foo-bundle.crt
    """
    leaf = _first_block(crt_file)
    issuer = _first_block(ca_file)
    check_outputs([bundle_file], force)
    write_output(bundle_file, leaf + issuer, mode=0o600)
    _note(f"Your certificate has been saved in {bundle_file}.")


def key_command(
    crt_file: str = typer.Argument(
        ...,
        metavar="CRT_FILE",
        help="A certificate, CSR or key file (PEM); '-' for standard input.",
        show_default=False,
    ),
    out: Path | None = typer.Option(
        None, "--out", "--output-file", help="Write the public key to this file."
    ),
    force: bool = _Force,
) -> None:
    """Print the public key of a certificate (or CSR) as a PEM PUBLIC KEY block.

    Only the first PEM block of the file is read.

    Examples:

      $ step certificate key foo.crt

      $ step certificate key foo.crt --out foo.pub
    """
    data = read_input(crt_file)
    match = _PEM_BLOCK.search(data)
    block = match.group(0) if match else b""
    label = match.group(1) if match else b""
    try:
        if label == b"CERTIFICATE":
            public = x509.load_pem_x509_certificate(block).public_key()
        elif label in (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"):
            public = x509.load_pem_x509_csr(block).public_key()
        else:
            raise CLIError(f"error decoding {crt_file}: not a certificate or certificate request")
    except ValueError as exc:
        raise CLIError(f"error parsing {crt_file}: {exc}") from None
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if out is None:
        typer.echo(pem.decode(), nl=False)
        return
    check_outputs([out], force)
    write_output(out, pem, mode=0o600)
    _note(f"The public key has been saved in {out}.")


def _to_der(data: bytes) -> bytes:
    for match in _PEM_BLOCK.finditer(data):
        label, block = match.group(1), match.group(0)
        try:
            if label == b"CERTIFICATE":
                return x509.load_pem_x509_certificate(block).public_bytes(Encoding.DER)
            if label == b"CERTIFICATE REQUEST":
                return x509.load_pem_x509_csr(block).public_bytes(Encoding.DER)
        except ValueError as exc:
            what = "certificate" if label == b"CERTIFICATE" else "certificate request"
            raise CLIError(f"error parsing {what}: {exc}") from None
    raise CLIError("error decoding certificate: invalid PEM block")


def _to_pem(data: bytes) -> bytes:
    try:
        return x509.load_der_x509_certificate(data).public_bytes(Encoding.PEM)
    except ValueError:
        pass
    try:
        return x509.load_der_x509_csr(data).public_bytes(Encoding.PEM)
    except ValueError:
        raise CLIError("error parsing DER format certificate or certificate request") from None


def format_command(
    crt_file: str = typer.Argument(
        "-",
        metavar="CRT_FILE",
        help="The certificate or CSR (PEM or DER); standard input by default.",
        show_default=False,
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the result to this file."),
    force: bool = _Force,
) -> None:
    """Convert a certificate or CSR between PEM and DER.

    PEM input becomes DER (the first certificate or CSR of the file), DER input becomes
    PEM. The result goes to standard output, or to --out with the input file's permissions.

    Examples:

      $ step certificate format foo.pem --out foo.der

      $ step certificate format foo.der --out foo.pem

      $ step certificate format foo.der > foo.pem
    """
    data = read_input(crt_file)
    converted = _to_der(data) if b"-----BEGIN " in data else _to_pem(data)
    if out is None:
        sys.stdout.buffer.write(converted)
        sys.stdout.buffer.flush()
        return
    mode = 0o600
    if crt_file != "-":
        with contextlib.suppress(OSError):
            mode = os.stat(crt_file).st_mode & 0o777
    check_outputs([out], force)
    write_output(out, converted, mode=mode)
    _note(f"Your certificate has been saved in {out}")


def _p12_password(password_file: Path | None) -> bytes:
    if password_file is not None:
        password = read_password_file(password_file)
        if password:
            return password
    if not sys.stdin.isatty():
        raise CLIError(
            "a password is needed to encrypt the .p12 file: use '--password-file', "
            "or '--no-password --insecure'"
        )
    while True:
        value: str = typer.prompt(
            "Please enter a password to encrypt the .p12 file",
            hide_input=True,
            confirmation_prompt=True,
        )
        if value:
            return value.encode()
        typer.echo("the password cannot be empty", err=True)


def _encryption(password: bytes | None, legacy: bool) -> KeySerializationEncryption:
    """go-pkcs12's Modern (PBES2, PBKDF2-SHA256, AES-256-CBC, SHA-256 MAC) or LegacyRC2."""
    if password is None:
        return NoEncryption()
    if legacy:
        return (
            PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(password)
        )
    return (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(_P12_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )


def p12_command(
    p12_file: Path = typer.Argument(
        ..., metavar="P12_FILE", help="Where to write the PKCS#12 file.", show_default=False
    ),
    crt_file: str | None = typer.Argument(
        None,
        metavar="CRT_FILE",
        help="The certificate (PEM); the certificates after the first are added as CAs.",
        show_default=False,
    ),
    key_file: str | None = typer.Argument(
        None, metavar="KEY_FILE", help="The certificate's private key (PEM).", show_default=False
    ),
    ca: list[str] | None = typer.Option(
        None,
        "--ca",
        metavar="FILE",
        help="A CA or intermediate certificate file to add; repeat for several.",
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="File with the password that encrypts the .p12 file."
    ),
    key_password_file: Path | None = typer.Option(
        None, "--key-password-file", help="File with the password that decrypts KEY_FILE."
    ),
    no_password: bool = typer.Option(
        False, "--no-password", help="Do not encrypt the .p12 file; requires --insecure."
    ),
    legacy: bool = typer.Option(
        False,
        "--legacy",
        help="Use the traditional algorithms (PBE-SHA1-3DES, SHA-1 MAC) for old readers.",
    ),
    insecure: bool = typer.Option(False, "--insecure", hidden=True),
    force: bool = _Force,
) -> None:
    """Package a certificate, its private key and CA certificates in a PKCS#12 (.p12) file.

    With CRT_FILE and KEY_FILE the file is an identity (key, certificate and chain); with
    only --ca flags it is a trust store of those certificates. The file is encrypted with
    the password of --password-file or one asked twice on the terminal (PBES2, PBKDF2-SHA256,
    AES-256-CBC, SHA-256 MAC; --legacy for readers that need 3DES and SHA-1). An encrypted
    key is opened with --key-password-file or a password asked on the terminal.

    Examples:

      $ step certificate p12 foo.p12 foo.crt foo.key --ca intermediate.crt

      $ step certificate p12 foo.p12 foo.crt foo.key --password-file p12.pass

      $ step certificate p12 trust.p12 --ca root_ca.crt --ca intermediate_ca.crt

      $ step certificate p12 foo.p12 foo.crt foo.key --no-password --insecure
    """
    cas_files = list(ca or [])
    if (crt_file is None) != (key_file is None):
        raise CLIError("missing positional argument <key-file>")
    if crt_file is None and not cas_files:
        raise CLIError("flag '--ca' must be provided when no <crt_path> and <key_path> are present")
    if password_file is not None and no_password:
        raise CLIError("flag '--no-password' is incompatible with flag '--password-file'")
    if no_password and not insecure:
        raise CLIError("flag '--no-password' requires the '--insecure' flag")
    cas = [cert for path in cas_files for cert in read_certificates(path)]
    check_outputs([p12_file], force)
    if crt_file is not None and key_file is not None:
        chain = read_certificates(crt_file)
        key = read_private_key(key_file, key_password_file, "--key-password-file")
        if not same_public_key(chain[0].public_key(), key.public_key()):
            raise CLIError(f"the private key {key_file} does not match the certificate {crt_file}")
        password = None if no_password else _p12_password(password_file)
        try:
            data = pkcs12.serialize_key_and_certificates(
                None, key, chain[0], [*chain[1:], *cas] or None, _encryption(password, legacy)
            )
        except (ValueError, TypeError) as exc:
            raise CLIError(f"failed to encode PKCS12 data: {exc}") from None
    else:
        password = None if no_password else _p12_password(password_file)
        entries = [pkcs12.PKCS12Certificate(cert, _friendly_name(cert)) for cert in cas]
        data = pkcs12.serialize_java_truststore(entries, _encryption(password, legacy))
    write_output(p12_file, data, mode=0o600)
    _note(f"Your .p12 bundle has been saved as {p12_file}.")


def _friendly_name(cert: x509.Certificate) -> bytes:
    """go-pkcs12's trust store entry name: `<subject> - <SHA-256 fingerprint>`."""
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    return f"{cert.subject.rfc4514_string()} - {fingerprint}".encode()
