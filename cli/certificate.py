"""`step certificate`: create, sign, inspect, lint, convert, verify and install certificates.

Follows smallstep/cli's command/certificate/*.go: the same inputs (a PEM/DER file, a bundle,
``-`` for standard input, or an ``https://host[:port]`` URL whose presented chain is read),
the same flags, the same one-line error messages and exit statuses. `inspect`, `fingerprint`,
`verify` and `needs-renewal` are here (reading and rendering in :mod:`cli.certificate_io`,
the logic in :mod:`cli.verify` and :mod:`cli.renewal_check`); the others live in their own
modules: `create` (:mod:`cli.certificate_create`), `sign` (:mod:`cli.certificate_sign`),
`lint` (:mod:`cli.certificate_lint`), `bundle`/`key`/`format`/`p12`
(:mod:`cli.certificate_convert`) and `install`/`uninstall` (:mod:`cli.certificate_trust`).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated

import typer

from cli import (
    certificate_convert,
    certificate_create,
    certificate_lint,
    certificate_sign,
    certificate_trust,
)
from cli.certificate_io import load_target, render_certificates, render_request
from cli.common import CLIError, die
from cli.helptext import StepTyper
from cli.renewal_check import (
    EXIT_ERROR,
    EXIT_NEEDS_RENEWAL,
    EXIT_NO_RENEWAL,
    RenewalCheckError,
    needs_renewal,
)
from cli.verify import VerifyOptions, verify_certificate

app = StepTyper(help="Create, inspect and manage X.509 certificates.")

_FORMATS = ("text", "json", "pem")

# The argument and options the commands that read a file or a remote server's chain share.
_CrtFile = Annotated[
    str,
    typer.Argument(
        metavar="CRT_FILE",
        help="Certificate or CSR file (PEM or DER), '-' for standard input, or an "
        "https://host[:port] URL.",
        show_default=False,
    ),
]
_RemoteRoots = Annotated[
    str | None,
    typer.Option(
        "--roots",
        help="Root certificate(s) used to verify a remote server: a file, a comma-separated "
        "list of files or a directory.",
    ),
]
_ServerName = Annotated[
    str | None,
    typer.Option("--servername", help="TLS Server Name Indication to send to a remote server."),
]


@app.command("inspect")
def inspect_command(
    crt_file: _CrtFile = "-",
    short: bool = typer.Option(
        False, "--short", help="Print the details in a shorter and friendlier format."
    ),
    fmt: str = typer.Option(
        "text", "--format", metavar="FORMAT", help="Output format: text, json or pem."
    ),
    bundle: bool = typer.Option(
        False,
        "--bundle",
        help="Print every certificate of the bundle or of the presented chain, in order.",
    ),
    roots: _RemoteRoots = None,
    servername: _ServerName = None,
    insecure: bool = typer.Option(
        False, "--insecure", help="Do not verify the remote server's certificate chain."
    ),
) -> None:
    """Print certificate or CSR details in a human- or machine-readable format.

    Local certificates are never verified: verify a certificate before
    relying on what this command prints. Of a bundle only the first
    certificate is printed unless --bundle is given (with --format json,
    several certificates print as an array).

    A URL (https://, tls://, tcp://, smtps://, ldaps://) is dialled and the
    chain the server presents is inspected; it is verified against --roots
    or the system store unless --insecure is given.

    Examples:

      $ step certificate inspect ./certificate.crt

      $ step certificate inspect ./bundle.crt --bundle --short

      $ step certificate inspect ./certificate.crt --format json

      $ step certificate inspect foo.csr

      $ step certificate inspect https://ca.example.com:9000 \\
          --roots ./root_ca.crt --bundle

      $ step certificate inspect --insecure https://localhost:8443 \\
          --format pem
    """
    try:
        if fmt not in _FORMATS:
            raise CLIError(
                f"invalid value '{fmt}' for flag '--format'; options are text, json, pem"
            )
        if short and fmt in ("json", "pem"):
            raise CLIError(f"flag '--short' is incompatible with '--format {fmt}'")
        certs, request = load_target(crt_file, servername, roots, insecure)
        if request is not None:
            output = render_request(request, fmt, short)
        else:
            output = render_certificates(certs if bundle else certs[:1], fmt, short)
    except CLIError as exc:
        die(str(exc))
    typer.echo(output, nl=False)


def encode_fingerprint(digest: bytes, fmt: str) -> str:
    """go.step.sm/crypto/fingerprint encodings, by the names step's --format accepts."""
    name = fmt.strip().lower()
    if name == "hex":
        return digest.hex()
    if name == "base64":
        return base64.b64encode(digest).decode()
    if name in ("base64url", "base64-url"):
        return base64.urlsafe_b64encode(digest).decode()
    if name in ("base64urlraw", "base64url-raw", "base64-url-raw"):
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
    if name in ("base64raw", "base64-raw"):
        return base64.b64encode(digest).decode().rstrip("=")
    if name in ("emoji", "emojisum"):
        raise CLIError("error parsing fingerprint format: 'emoji' is not supported by Stepstone")
    raise CLIError(f"error parsing fingerprint format: '{fmt}' is not a valid fingerprint format")


@app.command("fingerprint")
def fingerprint_command(
    crt_file: _CrtFile = "-",
    fmt: str = typer.Option(
        "hex",
        "--format",
        metavar="FORMAT",
        help="Encoding: hex, base64, base64-url, base64-raw or base64-url-raw.",
    ),
    sha1: bool = typer.Option(
        False, "--sha1", help="Hash with SHA-1 instead of SHA-256 (requires --insecure)."
    ),
    bundle: bool = typer.Option(
        False, "--bundle", help="Print the fingerprint of every certificate, numbered."
    ),
    roots: _RemoteRoots = None,
    servername: _ServerName = None,
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Do not verify a remote server's chain; also required by --sha1.",
    ),
) -> None:
    """Print the fingerprint of a certificate: the SHA-256 of its DER, in hex.

    For a CSR the fingerprint of the request's DER is printed. Of a bundle
    (or of a remote server's chain) only the first certificate is used
    unless --bundle is given, which prints "N: fingerprint" for each one.

    Examples:

      $ step certificate fingerprint /path/to/root_ca.crt
      0d7d3834cf187726cf331c40a31aa7ef6b29ba4df601416c9788f6ee01058cf3

      $ step certificate fingerprint --bundle https://ca.example.com \\
          --roots root_ca.crt

      $ step certificate fingerprint --format base64-url-raw hello.csr
      PJLNhtQoBE1yGN_ZKzr4Y2U5pyqIGiyyszkoz2raDOw

      $ step certificate fingerprint --sha1 --insecure root_ca.crt
    """
    try:
        if sha1 and not insecure:
            raise CLIError("flag '--sha' requires the '--insecure' flag")
        encode_fingerprint(b"", fmt)  # reject a bad --format before any I/O, as step does
        certs, request = load_target(crt_file, servername, roots, insecure)
        raws = [c.raw for c in certs] if request is None else [request.raw]
        if not bundle:
            raws = raws[:1]
        lines: list[str] = []
        for index, raw in enumerate(raws):
            digest = hashlib.sha1(raw, usedforsecurity=False) if sha1 else hashlib.sha256(raw)
            value = encode_fingerprint(digest.digest(), fmt)
            lines.append(f"{index}: {value}" if bundle else value)
    except CLIError as exc:
        die(str(exc))
    for line in lines:
        typer.echo(line)


_ROOTS_HELP = (
    "Root certificate(s) to validate against: a file, a comma-separated list of files or a "
    "directory of PEM files. Default: the system trust store."
)


@app.command("verify")
def verify_command(
    crt_file: str = typer.Argument(
        ...,
        metavar="CRT_FILE",
        help="PEM file with the certificate to validate first, then any intermediates; or an "
        "https://host[:port] URL whose presented chain is validated.",
        show_default=False,
    ),
    host: str | None = typer.Option(
        None, "--host", help="Check that the certificate is valid for this DNS name or IP."
    ),
    roots: str | None = typer.Option(None, "--roots", help=_ROOTS_HELP),
    servername: _ServerName = None,
    issuing_ca: str | None = typer.Option(
        None,
        "--issuing-ca",
        metavar="FILE",
        help="The issuer's certificate to check the CRL and OCSP answers with. Default: the "
        "issuer the chain was validated with.",
    ),
    verify_crl: bool = typer.Option(
        False,
        "--verify-crl",
        help="Also check the certificate against the CRL of its CRL distribution points.",
    ),
    verify_ocsp: bool = typer.Option(
        False,
        "--verify-ocsp",
        help="Also check the certificate's status with the OCSP responder of its AIA extension.",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print what was verified on success."
    ),
) -> None:
    """Verify a certificate: RFC 5280 path validation, optionally CRL and OCSP checks.

    The first certificate of CRT_FILE is validated; the others may serve as
    intermediates. The chain must end at one of --roots (default: the
    system trust store), every certificate must be valid now, and with
    --host the certificate must name the host in its SANs. Any extended key
    usage is accepted. Exit status 0 when the certificate is valid (nothing
    is printed unless --verbose), 1 with a one-line error otherwise.

    --verify-crl downloads the CRL from the certificate's CRL distribution
    points and --verify-ocsp asks the OCSP responder named in its Authority
    Information Access; the answers must be signed by the issuer. Only those
    http(s) URLs are contacted, with a 10 second timeout.

    Examples:

      $ step certificate verify ./certificate.crt

      $ step certificate verify ./certificate.crt --roots ./root_ca.crt

      $ step certificate verify ./certificate.crt --host example.com \\
          --roots "./root_ca.crt,./old_root_ca.crt"

      $ step certificate verify https://smallstep.com

      $ step certificate verify ./certificate.crt --roots ./root_ca.crt \\
          --verify-crl --verify-ocsp --verbose
    """
    options = VerifyOptions(
        host=host or None,
        roots=roots or None,
        server_name=servername or None,
        issuing_ca=issuing_ca or None,
        verify_crl=verify_crl,
        verify_ocsp=verify_ocsp,
        report=typer.echo if verbose else None,
    )
    try:
        lines = verify_certificate(crt_file, options)
    except CLIError as exc:
        die(str(exc))
    if verbose:
        # step's closing line, spelling included.
        typer.echo("\n".join([*lines, "certficiate is valid"]))


_NEEDS_RENEWAL_USAGE = "step certificate needs-renewal <cert-file or hostname>"


@app.command(
    "needs-renewal",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
)
def needs_renewal_command(
    ctx: typer.Context,
    crt_or_url: str | None = typer.Argument(
        None,
        metavar="CRT_OR_URL",
        help="Certificate file (PEM bundle or DER), or an https://host[:port] URL whose "
        "presented certificate is checked.",
        show_default=False,
    ),
    expires_in: str | None = typer.Option(
        None,
        "--expires-in",
        metavar="PERCENT|DURATION",
        help='Either a share of the lifetime followed by "%" (needs renewal once that much '
        'has passed; default 66%), or a duration such as "300ms", "1.5h" or "2h45m" (needs '
        'renewal when it expires within it). Units: "ns", "us" (or "\u00b5s"), "ms", "s", '
        '"m", "h".',
    ),
    roots: _RemoteRoots = None,
    servername: _ServerName = None,
    bundle: bool = typer.Option(
        False,
        "--bundle",
        help="Check every certificate of the bundle, in order (default: only the first).",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print whether the certificate needs renewal."
    ),
) -> None:
    """Check whether a certificate needs to be renewed.

    Exit status 0 when it needs renewal, 1 when it does not, 2 when the file
    does not exist and 255 on any other error. By default a certificate needs
    renewal once 66% of its lifetime (not before to not after) has passed;
    --expires-in sets another percentage, or a time window before expiry.
    With --bundle, it is enough that one certificate of the bundle needs
    renewal.

    Examples:

      $ step certificate needs-renewal ./certificate.crt

      $ step certificate needs-renewal https://smallstep.com

      $ step certificate needs-renewal ./certificate.crt --expires-in 1h15m

      $ step certificate needs-renewal https://smallstep.com --expires-in 0s

      $ step certificate needs-renewal ./certificate.crt --expires-in 75%

      $ step certificate needs-renewal https://ca.example.com:9000 \\
          --roots ./root_ca.crt --servername ca.example.com
    """
    if crt_or_url is None:
        die(
            f"not enough positional arguments were provided in '{_NEEDS_RENEWAL_USAGE}'", EXIT_ERROR
        )
    if ctx.args:
        die(f"too many positional arguments were provided in '{_NEEDS_RENEWAL_USAGE}'", EXIT_ERROR)
    try:
        renew = needs_renewal(
            crt_or_url,
            expires_in=expires_in,
            roots=roots or None,
            server_name=servername or None,
            bundle=bundle,
        )
    except RenewalCheckError as exc:
        die(str(exc), exc.exit_code)
    if renew:
        if verbose:
            typer.echo("certificate needs renewal")
        raise typer.Exit(EXIT_NEEDS_RENEWAL)
    if verbose:
        die("certificate does not need renewal", EXIT_NO_RENEWAL)
    raise typer.Exit(EXIT_NO_RENEWAL)


# Commands that make and convert certificates live in their own modules (one job each).
app.command("create")(certificate_create.create_command)
app.command("sign")(certificate_sign.sign_command)
app.command("lint")(certificate_lint.lint_command)
app.command("bundle")(certificate_convert.bundle_command)
app.command("key")(certificate_convert.key_command)
app.command("format")(certificate_convert.format_command)
app.command("p12")(certificate_convert.p12_command)
app.command("install")(certificate_trust.install_command)
app.command("uninstall")(certificate_trust.uninstall_command)
