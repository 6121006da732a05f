"""`step certificate create`.

Follows smallstep/cli's command/certificate/create.go: the same arguments, flags,
profiles and defaults (leaf signed by --ca/--ca-key for 24 hours, intermediate-ca for 10
years, root-ca self-signed for 10 years, self-signed leaf only with --subtle). Templates
(--template, --set, --set-file) are not supported. Certificates are built by
:mod:`cli.certificate_x509`, keys handled by :mod:`cli.certificate_keys`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding

from cli.certificate_keys import generate_key, is_store_uri, open_signer
from cli.certificate_x509 import (
    LEAF,
    PROFILES,
    build_certificate,
    check_issuer,
    check_issuer_key,
    general_names,
    parse_validity,
    read_certificates,
    subject_name,
)
from cli.common import CLIError, check_outputs, write_output
from cli.crypto_keyio import new_password, private_pem
from keystores import SigningKey

__all__ = ["NOT_AFTER_HELP", "NOT_BEFORE_HELP", "create_command", "pem_chain"]

NOT_BEFORE_HELP = (
    "The <time|duration> set in the NotBefore of the certificate: an RFC 3339 time, or a "
    'duration from now such as "300ms", "-1.5h" or "2h45m" (units "ns", "us", "ms", "s", '
    '"m", "h"). Default: now.'
)
NOT_AFTER_HELP = (
    "The <time|duration> set in the NotAfter of the certificate: an RFC 3339 time or a "
    "duration from now. Default: 24h for leaf and self-signed, 10 years (87600h) for CAs."
)


def _note(message: str) -> None:
    typer.echo(message, err=True)


def pem_chain(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def _check_profile_flags(
    profile: str, ca: str | None, ca_key: str | None, subtle: bool, bundle: bool
) -> None:
    if profile not in PROFILES:
        raise CLIError(
            f"invalid value '{profile}' for flag '--profile'; options are leaf, "
            "intermediate-ca, root-ca, self-signed"
        )
    if bundle and profile != LEAF:
        raise CLIError(f"flag '--bundle' is incompatible with flag '--profile {profile}'")
    if profile == "self-signed" and not subtle:
        raise CLIError("flag '--profile self-signed' requires the '--subtle' flag")
    if profile in (LEAF, "intermediate-ca"):
        for flag, value in (("ca", ca), ("ca-key", ca_key)):
            if not value:
                raise CLIError(f"flag '--profile {profile}' requires the '--{flag}' flag")
    else:
        for flag, value in (("ca", ca), ("ca-key", ca_key)):
            if value:
                raise CLIError(f"flag '--{flag}' is incompatible with flag '--profile {profile}'")


def _write_key(key_file: Path, key: SigningKey, password: bytes | None) -> None:
    write_output(key_file, private_pem(key, password), mode=0o600)


def create_command(
    subject: str = typer.Argument(
        ...,
        metavar="SUBJECT",
        help="The subject (common name) of the certificate.",
        show_default=False,
    ),
    crt_file: Path = typer.Argument(
        ...,
        metavar="CRT_FILE",
        help="File to write the certificate or CSR to (PEM).",
        show_default=False,
    ),
    key_file: Path | None = typer.Argument(
        None,
        metavar="KEY_FILE",
        help="File to write the private key to (PEM); optional with --key.",
        show_default=False,
    ),
    profile: str = typer.Option(
        LEAF,
        "--profile",
        metavar="PROFILE",
        help="leaf (a TLS certificate signed by --ca), intermediate-ca, root-ca, or "
        "self-signed (a self-signed TLS leaf; requires --subtle).",
    ),
    csr: bool = typer.Option(
        False, "--csr", help="Create a certificate signing request instead of a certificate."
    ),
    sans: list[str] | None = typer.Option(
        None,
        "--san",
        help="A subject alternative name (DNS name, IP, email or URI); repeat for several. "
        "Default: the subject, for leaf certificates and CSRs.",
    ),
    not_before: str | None = typer.Option(None, "--not-before", help=NOT_BEFORE_HELP),
    not_after: str | None = typer.Option(None, "--not-after", help=NOT_AFTER_HELP),
    ca: str | None = typer.Option(
        None,
        "--ca",
        metavar="FILE",
        help="The issuer's certificate (PEM), for leaf and intermediate-ca.",
    ),
    ca_key: str | None = typer.Option(
        None,
        "--ca-key",
        metavar="FILE|URI",
        help="The issuer's private key: a PEM file or a key URI (pkcs11:, yubikey:, ...).",
    ),
    ca_password_file: Path | None = typer.Option(
        None, "--ca-password-file", help="File with the password that decrypts --ca-key."
    ),
    ca_kms: str | None = typer.Option(
        None, "--ca-kms", metavar="URI", help="The key store that holds --ca-key."
    ),
    key: str | None = typer.Option(
        None,
        "--key",
        metavar="FILE|URI",
        help="Use this existing private key (PEM file or key URI) instead of creating one.",
    ),
    kms: str | None = typer.Option(None, "--kms", help="The key store that holds --key."),
    kty: str = typer.Option("EC", "--kty", metavar="KTY", help="Key type: EC, RSA or OKP."),
    curve: str | None = typer.Option(
        None,
        "--curve",
        "--crv",
        metavar="CURVE",
        help="EC curve P-256 (default), P-384 or P-521; Ed25519 for OKP.",
    ),
    size: int | None = typer.Option(
        None, "--size", metavar="SIZE", help="RSA key size in bits (default 2048)."
    ),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="File with the password that encrypts the new key (or decrypts --key).",
    ),
    no_password: bool = typer.Option(
        False,
        "--no-password",
        help="Write the private key unencrypted. Not recommended; requires --insecure.",
    ),
    insecure: bool = typer.Option(False, "--insecure", hidden=True),
    bundle: bool = typer.Option(
        False, "--bundle", help="Append the issuer certificate to a leaf (requires --ca)."
    ),
    subtle: bool = typer.Option(False, "--subtle", help="Allow the self-signed profile."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing files."),
) -> None:
    """Create a certificate (or a CSR) and its private key.

    The default profile, leaf, makes a TLS certificate (key usage digitalSignature,
    extended key usages serverAuth and clientAuth, the subject as SAN unless --san is given)
    signed by --ca and --ca-key and valid for 24 hours. intermediate-ca makes a CA
    certificate signed by --ca (pathLenConstraint 0, 10 years); root-ca a self-signed root
    (pathLenConstraint 1, 10 years). With --csr a certificate signing request is written
    instead, to be signed later with 'step certificate sign'.

    The new key is EC P-256 unless --kty/--curve/--size say otherwise. It is written
    encrypted (PKCS#8, PBKDF2-SHA256, AES-256-CBC) with the password of --password-file or
    one asked twice on the terminal; --no-password --insecure writes it in the clear.
    Files are written 0600 and existing ones are replaced only with --force.

    Examples:

      $ step certificate create root-ca root-ca.crt root-ca.key --profile root-ca

      $ step certificate create intermediate-ca intermediate-ca.crt intermediate-ca.key \\
          --profile intermediate-ca --ca ./root-ca.crt --ca-key ./root-ca.key

      $ step certificate create foo foo.crt foo.key --profile leaf \\
          --ca ./intermediate-ca.crt --ca-key ./intermediate-ca.key \\
          --ca-password-file ./intermediate.pass --san foo.internal --san 10.0.0.7

      $ step certificate create foo foo.csr foo.key --csr --no-password --insecure

      $ step certificate create root-ca root-ca.crt root-ca.key --profile root-ca \\
          --kty OKP --curve Ed25519

      $ step certificate create 'My Intermediate' intermediate.crt intermediate.key \\
          --profile intermediate-ca --ca root_ca.crt \\
          --ca-kms 'pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca' \\
          --ca-key 'pkcs11:id=4000?pin-source=pin.txt'
    """
    if no_password and not insecure:
        raise CLIError("flag '--no-password' requires the '--insecure' flag")
    if key_file is None and key is None:
        raise CLIError("not enough positional arguments were provided: <key-file> is required")
    if key_file is not None and key_file == crt_file:
        raise CLIError("positional arguments <crt-file> and <key-file> cannot be equal")
    if key is not None and (kty != "EC" or curve is not None or size is not None):
        raise CLIError("flag '--key' is incompatible with '--kty', '--curve' and '--size'")
    names = list(sans or [])
    # A key held in a key store stays there: only generated or file keys are written.
    key_out = key_file if key is None or not (kms or is_store_uri(key)) else None
    outputs = [crt_file] + ([key_out] if key_out is not None else [])
    with contextlib.ExitStack() as stack:
        if csr:
            for flag, value in (
                ("bundle", bundle),
                ("ca", ca),
                ("ca-key", ca_key),
                ("ca-password-file", ca_password_file),
                ("not-before", not_before),
                ("not-after", not_after),
            ):
                if value:
                    raise CLIError(f"flag '--{flag}' is incompatible with flag '--csr'")
            if profile != LEAF:
                raise CLIError("flag '--profile' is incompatible with flag '--csr'")
            check_outputs(outputs, force)
            private = _subject_key(stack, key, kms, password_file, kty, curve, size)
            password = _new_password(key_out, no_password, password_file)
            request = _make_csr(subject, names or [subject], private)
            if key_out is not None:
                _write_key(key_out, private, password)
            write_output(crt_file, request.public_bytes(Encoding.PEM), mode=0o600)
            _note(f"Your certificate signing request has been saved in {crt_file}.")
            if key_out is not None:
                _note(f"Your private key has been saved in {key_out}.")
            return
        _check_profile_flags(profile, ca, ca_key, subtle, bundle)
        validity = parse_validity(not_before, not_after, profile)
        check_outputs(outputs, force)
        issuer: x509.Certificate | None = None
        private = _subject_key(stack, key, kms, password_file, kty, curve, size)
        signer = private
        if ca and ca_key:
            issuer = read_certificates(ca)[0]
            signer = open_signer(stack, ca_key, ca_kms, ca_password_file, "--ca-password-file")
            check_issuer_key(issuer, signer)
            check_issuer(issuer, profile, 0)
        password = _new_password(key_out, no_password, password_file)
        if not names and profile in (LEAF, "self-signed"):
            names = [subject]
        cert = build_certificate(
            profile=profile,
            subject=subject_name(subject),
            sans=general_names(names),
            public_key=private.public_key(),
            signer=signer,
            issuer=issuer,
            validity=validity,
        )
        if key_out is not None:
            _write_key(key_out, private, password)
        chain = (cert, issuer) if bundle and issuer is not None else (cert,)
        write_output(crt_file, pem_chain(*chain), mode=0o600)
    _note(f"Your certificate has been saved in {crt_file}.")
    if key_out is not None:
        _note(f"Your private key has been saved in {key_out}.")


def _subject_key(
    stack: contextlib.ExitStack,
    key: str | None,
    kms: str | None,
    password_file: Path | None,
    kty: str,
    curve: str | None,
    size: int | None,
) -> SigningKey:
    if key is None:
        return generate_key(kty, curve, size)
    return open_signer(stack, key, kms, password_file, "--password-file")


def _new_password(
    key_out: Path | None, no_password: bool, password_file: Path | None
) -> bytes | None:
    if key_out is None or no_password:
        return None
    return new_password(password_file, "the private key")


def _make_csr(subject: str, names: list[str], key: SigningKey) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject_name(subject))
    builder = builder.add_extension(x509.SubjectAlternativeName(general_names(names)), False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)
