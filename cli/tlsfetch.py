"""Fetch the certificate chain a TLS server presents, as `step certificate inspect URL` does.

Mirrors smallstep/cli's ``trimURL`` and ``getPeerCertificates``: the URL schemes step accepts
(``https://``, ``tls://``, ``tcp://`` on port 443, ``smtps://`` on 465, ``ldaps://`` on 636),
TLS 1.2 or later, verification against ``--roots`` (a file, a comma-separated list of files or
a directory) or the system store unless ``--insecure``, and ``--servername`` for SNI and name
verification. Only the host and port the user gave are ever contacted.
"""

from __future__ import annotations

import errno
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from cli.certinfo import CertParseError, parse_certificate, pem_blocks, pem_encode
from cli.common import CLIError, go_strerror

URL_DEFAULT_PORTS: dict[str, int] = {
    "tcp://": 443,
    "tls://": 443,
    "https://": 443,
    "smtps://": 465,
    "ldaps://": 636,
}

#: Seconds to wait for the TCP connection and the handshake.
DEFAULT_TIMEOUT = 30.0


def trim_url(ref: str) -> tuple[str, int] | None:
    """(host, port) when `ref` is a URL step would dial, None when it is a file name."""
    lowered = ref.lower()
    for prefix, default_port in URL_DEFAULT_PORTS.items():
        if not lowered.startswith(prefix):
            continue
        try:
            parts = urlsplit(ref)
            host = parts.hostname
            port = parts.port
        except ValueError as exc:
            raise CLIError(f"error parsing URL '{ref}': {exc}") from None
        netloc = parts.netloc.rpartition("@")[2]
        if not host or any(ch.isspace() for ch in netloc) or any(ch in host for ch in "/\\"):
            raise CLIError(f"error parsing URL '{ref}': invalid host")
        return host, port if port is not None else default_port
    return None



def read_cert_pool(path: str) -> list[bytes]:
    """x509util.ReadCertPool: DER of every PEM certificate in a file, list or directory."""
    target = Path(path)
    if target.is_dir():
        try:
            files = [str(child) for child in sorted(target.iterdir())]
        except OSError as exc:
            raise CLIError(
                f"failure to load root certificate pool from input path '{path}': "
                f"error reading cert pool: open {path}: {go_strerror(exc)}"
            ) from None
    else:
        files = [name.strip() for name in path.split(",")]
    found: list[bytes] = []
    for name in files:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            op = "read" if exc.errno == errno.EISDIR else "open"
            raise CLIError(
                f"failure to load root certificate pool from input path '{path}': "
                f"error reading cert pool: {op} {name}: {go_strerror(exc)}"
            ) from None
        for block in pem_blocks(data):
            if block.type != "CERTIFICATE" or block.headers:
                continue
            try:
                parse_certificate(block.data)
            except CertParseError:
                continue
            found.append(block.data)
    if not found:
        raise CLIError(
            f"failure to load root certificate pool from input path '{path}': "
            "error reading cert pool: not certificates found"
        )
    return found


def tls_client_context(roots: str | None, insecure: bool = False) -> ssl.SSLContext:
    """A TLS 1.2+ client context trusting --roots (or the system store unless `insecure`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if roots:
        pem = "".join(pem_encode("CERTIFICATE", der) for der in read_cert_pool(roots))
        context.load_verify_locations(cadata=pem)
    elif not insecure:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _presented_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """Every certificate the server sent, in its order (Go's PeerCertificates)."""
    ssl_object = getattr(tls, "_sslobj", None)
    get_chain = getattr(ssl_object, "get_unverified_chain", None)
    if get_chain is not None:
        chain = get_chain() or []
        encoding = getattr(ssl, "_ssl").ENCODING_DER  # noqa: B009 - private constant
        return [bytes(cert.public_bytes(encoding)) for cert in chain]
    leaf = tls.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def fetch_peer_certificates(
    host: str,
    port: int,
    *,
    server_name: str | None = None,
    roots: str | None = None,
    insecure: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[bytes]:
    """DER certificates presented by host:port; CLIError when the connection fails."""
    context = tls_client_context(roots, insecure)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name or host) as tls,
        ):
            chain = _presented_chain(tls)
    except ssl.SSLCertVerificationError as exc:
        raise CLIError(
            f"failed to connect: tls: failed to verify certificate: {exc.verify_message}"
        ) from None
    except ssl.SSLError as exc:
        raise CLIError(f"failed to connect: tls: {exc.reason or exc}") from None
    except socket.gaierror:
        raise CLIError(f"failed to connect: dial tcp: lookup {host}: no such host") from None
    except TimeoutError:
        raise CLIError(f"failed to connect: dial tcp {address}: i/o timeout") from None
    except OSError as exc:
        raise CLIError(
            f"failed to connect: dial tcp {address}: connect: {go_strerror(exc)}"
        ) from None
    if not chain:
        raise CLIError("failed to connect: the server presented no certificate")
    return chain
