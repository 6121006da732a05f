"""What `step certificate inspect` and `fingerprint` read, and how `inspect` renders it.

step's utils.ReadFile rules (``-`` for standard input, a leading BOM dropped), a bundle or
else a CSR, or the chain a TLS server presents; and the text, JSON and PEM renderings, with
a rendering failure turned into step's one-line error.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

from cli.certinfo import (
    Certificate,
    CertificateRequest,
    CertParseError,
    certificate_request_json,
    certificate_request_short_text,
    certificate_request_text,
    certificate_short_text,
    certificate_text,
    certificates_json,
    go_json,
    parse_certificate,
    parse_certificate_bundle,
    parse_certificate_request_data,
    pem_encode,
)
from cli.common import CLIError
from cli.tlsfetch import fetch_peer_certificates, trim_url


def read_input(name: str) -> bytes:
    """step's utils.ReadFile: ``-`` is standard input; a file's leading UTF-8 BOM is dropped."""
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        op = "read" if exc.errno == errno.EISDIR else "open"
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CLIError(
            f"error reading file {name}: {op} {name} failed: {reason[:1].lower() + reason[1:]}"
        ) from None
    return data.removeprefix(b"\xef\xbb\xbf")


def load_file(name: str) -> tuple[list[Certificate], CertificateRequest | None]:
    """Every certificate of a bundle, or else the CSR the file holds."""
    data = read_input(name)
    try:
        return parse_certificate_bundle(data), None
    except CertParseError:
        pass
    try:
        return [], parse_certificate_request_data(data)
    except CertParseError:
        raise CLIError(
            f"file {name} does not contain any valid CERTIFICATE or CERTIFICATE REQUEST blocks"
        ) from None


def load_remote(
    target: tuple[str, int], server_name: str | None, roots: str | None, insecure: bool
) -> list[Certificate]:
    chain = fetch_peer_certificates(
        target[0], target[1], server_name=server_name, roots=roots, insecure=insecure
    )
    try:
        return [parse_certificate(der) for der in chain]
    except CertParseError as exc:
        raise CLIError(f"failed to connect: tls: failed to parse certificate: {exc}") from None


def load_target(
    crt_file: str, servername: str | None, roots: str | None, insecure: bool
) -> tuple[list[Certificate], CertificateRequest | None]:
    """The chain a URL's server presents, or what `load_file` reads from a file."""
    target = trim_url(crt_file)
    if target is not None:
        return load_remote(target, servername, roots, insecure), None
    return load_file(crt_file)


def render_certificates(certs: list[Certificate], fmt: str, short: bool) -> str:
    try:
        if fmt == "json":
            return certificates_json(certs)
        if fmt == "pem":
            return "".join(pem_encode("CERTIFICATE", cert.raw) for cert in certs)
        render = certificate_short_text if short else certificate_text
        return "".join(render(cert) for cert in certs)
    except (ValueError, IndexError, KeyError, OverflowError) as exc:  # CertParseError included
        raise CLIError(str(exc) or "error formatting certificate") from None


def render_request(request: CertificateRequest, fmt: str, short: bool) -> str:
    try:
        if fmt == "json":
            return go_json(certificate_request_json(request))
        if fmt == "pem":
            return pem_encode("CERTIFICATE REQUEST", request.raw)
        if short:
            return certificate_request_short_text(request)
        return certificate_request_text(request)
    except (ValueError, IndexError, KeyError, OverflowError) as exc:  # CertParseError included
        raise CLIError(str(exc) or "error formatting certificate") from None
