"""`step certificate sign`: a certificate from a CSR, signed by a CA's certificate and key.

Follows smallstep/cli's command/certificate/sign.go: the CSR's signature is checked, the
issuer must be a CA with keyCertSign whose key matches, the leaf profile keeps the CSR's
subject and SANs, intermediate-ca sets --path-len; the certificate goes to standard output.
Templates and the `csr` profile are not supported.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer
from cryptography import x509

from cli.certificate_create import NOT_AFTER_HELP, NOT_BEFORE_HELP, pem_chain
from cli.certificate_keys import open_signer
from cli.certificate_x509 import (
    LEAF,
    build_certificate,
    check_issuer,
    check_issuer_key,
    parse_validity,
    read_certificates,
    read_csr,
)
from cli.certificate_x509 import csr_general_names as csr_names
from cli.common import CLIError

__all__ = ["sign_command"]


def sign_command(
    csr_file: str = typer.Argument(
        ...,
        metavar="CSR_FILE",
        help="The certificate signing request to sign (PEM or DER).",
        show_default=False,
    ),
    crt_file: str = typer.Argument(
        ..., metavar="CRT_FILE", help="The issuing certificate.", show_default=False
    ),
    key_file: str = typer.Argument(
        ...,
        metavar="KEY_FILE",
        help="The issuer's private key: a PEM file or a key URI.",
        show_default=False,
    ),
    profile: str = typer.Option(
        LEAF, "--profile", metavar="PROFILE", help="leaf (a TLS certificate) or intermediate-ca."
    ),
    kms: str | None = typer.Option(None, "--kms", help="The key store that holds KEY_FILE."),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="File with the password that decrypts KEY_FILE."
    ),
    not_before: str | None = typer.Option(None, "--not-before", help=NOT_BEFORE_HELP),
    not_after: str | None = typer.Option(None, "--not-after", help=NOT_AFTER_HELP),
    path_len: int = typer.Option(
        0,
        "--path-len",
        metavar="MAXIMUM",
        help="The pathLenConstraint of an intermediate-ca; -1 for no limit.",
    ),
    omit_cn_san: bool = typer.Option(
        False,
        "--omit-cn-san",
        help="Do not add the CSR's common name as a SAN when the CSR has no SANs.",
    ),
    bundle: bool = typer.Option(
        False, "--bundle", help="Append the issuer certificate(s) to the output."
    ),
) -> None:
    """Sign a certificate signing request (CSR) and print the certificate (PEM).

    The CSR's signature is checked first. CRT_FILE and KEY_FILE are the issuer's certificate
    and key; the issuer must be a CA with the keyCertSign usage. The leaf profile keeps the
    CSR's subject and SANs (the common name becomes the SAN when there is none) and sets
    digitalSignature (plus keyEncipherment for RSA), serverAuth and clientAuth, for 24
    hours; intermediate-ca makes a CA certificate with pathLenConstraint --path-len, for 10
    years. An encrypted issuer key is opened with --password-file or a password asked on the
    terminal.

    Examples:

      $ step certificate sign leaf.csr issuer.crt issuer.key > leaf.crt

      $ step certificate sign --bundle --not-before -1m --not-after 16h \\
          leaf.csr issuer.crt issuer.key

      $ step certificate sign --profile intermediate-ca --path-len 1 \\
          intermediate.csr issuer.crt issuer.key --password-file issuer.pass

      $ step certificate sign --kms 'pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca' \\
          leaf.csr issuer.crt 'pkcs11:id=4001?pin-source=pin.txt'
    """
    if profile not in (LEAF, "intermediate-ca"):
        raise CLIError(
            f"invalid value '{profile}' for flag '--profile'; options are leaf, intermediate-ca"
        )
    if path_len < -1:
        raise CLIError(
            f"invalid value '{path_len}' for flag '--path-len': path-len must be -1 or greater"
        )
    request = read_csr(csr_file)
    issuers = read_certificates(crt_file)
    with contextlib.ExitStack() as stack:
        signer = open_signer(stack, key_file, kms, password_file, "--password-file")
        check_issuer_key(issuers[0], signer)
        check_issuer(issuers[0], profile, path_len)
        validity = parse_validity(not_before, not_after, profile)
        names = [] if profile != LEAF else csr_names(request)
        if omit_cn_san and profile == LEAF:
            names = _csr_sans_only(request)
        cert = build_certificate(
            profile=profile,
            subject=request.subject,
            sans=names,
            public_key=request.public_key(),  # type: ignore[arg-type]
            signer=signer,
            issuer=issuers[0],
            validity=validity,
            path_len=path_len if profile != LEAF else None,
        )
    chain = (cert, *issuers) if bundle else (cert,)
    typer.echo(pem_chain(*chain).decode(), nl=False)


def _csr_sans_only(request: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        return list(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []
