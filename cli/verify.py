"""`step certificate verify`: RFC 5280 path validation, then optional CRL and OCSP checks.

Follows smallstep/cli's command/certificate/verify.go (read, not copied):

* The input is a PEM file whose first CERTIFICATE block is the leaf and whose other
  CERTIFICATE blocks are intermediates, or an ``https://host[:port]`` URL whose presented
  chain is used (the leaf first, every certificate as a possible intermediate).
* Trust anchors are ``--roots`` (a file, a comma-separated list of files or a directory) or
  else the system store, as Go finds it (``$SSL_CERT_FILE``/``$SSL_CERT_DIR`` or the usual
  bundle files); ``$STEPPATH/certs/root_ca.crt`` is *not* used.
* Any extended key usage is accepted; ``--host`` checks the leaf's DNS/IP SANs with Go's
  rules. Errors read like step's: "failed to verify certificate: x509: ...".
* ``--verify-crl`` downloads the CRL from each of the leaf's CRL distribution points in turn,
  ``--verify-ocsp`` posts an OCSP request to each of its AIA OCSP URLs in turn. An endpoint
  that cannot be reached or whose answer cannot be trusted is skipped (printed with
  ``--verbose``); a trustworthy answer decides. When none decides: "could not verify
  certificate against CRL distribution point(s)" / "... OCSP server(s)".
* ``--verbose`` prints what was checked, ending with step's "certficiate is valid" (sic).

The chain itself is validated with ``cryptography.x509.verification`` (a server verifier
when ``--host`` is given, a client verifier otherwise) with extension policies relaxed to
Go's: no EKU requirement, CA certificates need basicConstraints CA and, when they carry a
key usage, keyCertSign. When validation fails, the reason is worded the way Go's
``crypto/x509`` would word it when it can be found the way Go looks for it.

Deliberate differences from step:

* The issuer used for the CRL signature and the OCSP request is the one the chain was
  validated with (or ``--issuing-ca``); the AIA "CA Issuers" URL is never downloaded, and
  step's ``--crl-endpoint``/``--ocsp-endpoint``/``--insecure`` are not offered: only the URLs
  in the certificate are contacted. HTTP redirects are not followed, proxies are not used and
  every request times out after 10 seconds.
* CRLs must be signed by the issuer *and* name it, and must be current (nextUpdate; a
  revocation listed in a stale but authentic CRL still counts). OCSP requests carry a nonce;
  responses must be signed by the issuer or by a responder certificate the issuer signed for
  OCSP signing (id-kp-OCSPSigning), must answer for this certificate, must echo the nonce
  when they carry one and must be current. An untrusted answer is reported with step's
  "error parsing response from OCSP server: URL" followed by ": " and the reason.
* An unreadable ``--roots`` is an error (step silently falls back to the system store).
* Text after the last PEM block of CRT_FILE is ignored (Go's loop calls it an invalid block).
* What ``cryptography``'s verifier refuses and Go accepts stays refused: CA certificates
  without basicConstraints (Go takes v1 roots), RSA keys under 2048 bits.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import secrets
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from cli.certinfo import (
    Certificate,
    CertParseError,
    common_name,
    flat,
    go_rfc3339,
    ip_string,
    parse_certificate,
    pem_blocks,
    verify_signature,
)
from cli.common import CLIError, go_strerror
from cli.tlsfetch import fetch_peer_certificates, read_cert_pool, tls_client_context, trim_url

#: Seconds allowed for each network operation (connect, TLS, read) of the checks.
NETWORK_TIMEOUT = 10.0
#: Largest CRL and OCSP response read.
CRL_SIZE_LIMIT = 32 * 1024 * 1024
OCSP_SIZE_LIMIT = 1024 * 1024
#: Clock skew tolerated on OCSP thisUpdate/nextUpdate and on a CRL's thisUpdate.
CLOCK_SKEW = timedelta(minutes=5)

# Where Go's crypto/x509 looks for the system roots on Linux (root_linux.go).
_GO_CERT_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
)
_GO_CERT_DIRECTORIES = ("/etc/ssl/certs", "/etc/pki/tls/certs")

# Extensions Go's certificate parser handles; any other critical one is "unhandled".
_GO_HANDLED_EXTENSIONS = {
    f"2.5.29.{arc}" for arc in (14, 15, 17, 19, 30, 31, 32, 33, 35, 36, 37, 54)
}
_GO_HANDLED_EXTENSIONS.add("1.3.6.1.5.5.7.1.1")

_OCSP_STATUS_TEXT = {
    ocsp.OCSPResponseStatus.MALFORMED_REQUEST: "malformed",
    ocsp.OCSPResponseStatus.INTERNAL_ERROR: "internal error",
    ocsp.OCSPResponseStatus.TRY_LATER: "try later",
    ocsp.OCSPResponseStatus.SIG_REQUIRED: "signature required",
    ocsp.OCSPResponseStatus.UNAUTHORIZED: "unauthorized",
}

Report = Callable[[str], None]


@dataclass(frozen=True)
class Cert:
    """One certificate, as Go reads it (`info`) and as `cryptography` does (`x509`)."""

    info: Certificate
    x509: x509.Certificate

    @classmethod
    def from_der(cls, der: bytes) -> Cert:
        """Parse with both parsers; CertParseError with Go's wording when either refuses."""
        info = parse_certificate(der)
        try:
            with warnings.catch_warnings():
                # e.g. a serial number of zero in an old root: Go accepts it, and so do we
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                parsed = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise CertParseError(f"x509: {exc}") from None
        return cls(info, parsed)


@dataclass
class VerifyOptions:
    """The flags of `step certificate verify`."""

    host: str | None = None
    roots: str | None = None
    server_name: str | None = None
    issuing_ca: str | None = None
    verify_crl: bool = False
    verify_ocsp: bool = False
    now: datetime | None = None
    report: Report | None = None


# Loading -------------------------------------------------------------------------------------



def load_input(name: str, options: VerifyOptions) -> tuple[Cert, list[Cert]]:
    """The leaf and the candidate intermediates, from a PEM file or a TLS server."""
    target = trim_url(name)
    if target is not None:
        chain = fetch_peer_certificates(
            target[0],
            target[1],
            server_name=options.server_name,
            roots=options.roots,
            insecure=False,
            timeout=NETWORK_TIMEOUT,
        )
        try:
            certs = [Cert.from_der(der) for der in chain]
        except CertParseError as exc:
            raise CLIError(f"failed to connect: tls: failed to parse certificate: {exc}") from None
        return certs[0], certs
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        op = "read" if exc.errno == errno.EISDIR else "open"
        raise CLIError(f"{op} {name} failed: {go_strerror(exc)}") from None
    blocks = list(pem_blocks(data))
    if not blocks and data.strip():
        raise CLIError(f"{name} contains an invalid PEM block")
    leaf: Cert | None = None
    intermediates: list[Cert] = []
    for block in blocks:
        if block.type != "CERTIFICATE":
            continue
        if leaf is None:
            try:
                leaf = Cert.from_der(block.data)
            except CertParseError as exc:
                raise CLIError(str(exc)) from None
            continue
        try:
            intermediates.append(Cert.from_der(block.data))
        except CertParseError:
            continue  # x509.CertPool.AppendCertsFromPEM skips what does not parse
    if leaf is None:
        raise CLIError(f"{name} contains no PEM certificate blocks")
    other_certificates = sum(1 for block in blocks if block.type == "CERTIFICATE") - 1
    if other_certificates > 0 and not intermediates:
        raise CLIError(f"failure creating intermediate list from certificate '{name}'")
    return leaf, intermediates


def _pem_certificates(data: bytes) -> list[bytes]:
    return [b.data for b in pem_blocks(data) if b.type == "CERTIFICATE" and not b.headers]


def system_roots() -> list[Cert]:
    """The system trust store the way Go finds it on Linux."""
    cert_file = os.environ.get("SSL_CERT_FILE", "")
    cert_dirs = os.environ.get("SSL_CERT_DIR", "")
    files = [cert_file] if cert_file else list(_GO_CERT_FILES)
    directories = cert_dirs.split(":") if cert_dirs else list(_GO_CERT_DIRECTORIES)
    found: dict[bytes, None] = {}
    for name in files:
        try:
            data = Path(name).read_bytes()
        except OSError:
            continue
        found.update(dict.fromkeys(_pem_certificates(data)))
        break
    for directory in directories:
        try:
            entries = sorted(Path(directory).iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_file():
                    found.update(dict.fromkeys(_pem_certificates(entry.read_bytes())))
            except OSError:
                continue
    roots: list[Cert] = []
    for der in found:
        try:
            roots.append(Cert.from_der(der))
        except CertParseError:
            continue  # x509.CertPool.AppendCertsFromPEM skips what does not parse
    if not roots:
        raise CLIError(
            "failed to verify certificate: x509: failed to load system roots and no roots provided"
        )
    return roots


def load_roots(roots: str | None) -> list[Cert]:
    """--roots (step's x509util.ReadCertPool) or the system store."""
    if not roots:
        return system_roots()
    found: list[Cert] = []
    for der in read_cert_pool(roots):
        try:
            found.append(Cert.from_der(der))
        except CertParseError:
            continue
    if not found:
        raise CLIError(
            f"failure to load root certificate pool from input path '{roots}': "
            "error reading cert pool: not certificates found"
        )
    return found


def load_issuing_ca(path: str) -> Cert:
    """--issuing-ca: the first PEM block of the file, which must be a certificate."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        raise CLIError("unable to load the issuing CA certificate file") from None
    block = next(iter(pem_blocks(data)), None)
    if block is None or block.type != "CERTIFICATE":
        raise CLIError("failed to decode the issuing CA certificate")
    try:
        return Cert.from_der(block.data)
    except CertParseError:
        raise CLIError("failed to parse the issuing CA certificate") from None


# Go's wording: times, host names -------------------------------------------------------------


def _go_now_rfc3339(now: datetime) -> str:
    """time.Now().Format(time.RFC3339): local time, "Z" when the offset is zero."""
    local = now.astimezone()
    offset = local.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _go_time_problem(cert: Cert, now: datetime) -> str | None:
    info = cert.info
    if now < info.not_before:
        detail = f"current time {_go_now_rfc3339(now)} is before {go_rfc3339(info.not_before)}"
    elif now > info.not_after:
        detail = f"current time {_go_now_rfc3339(now)} is after {go_rfc3339(info.not_after)}"
    else:
        return None
    return f"x509: certificate has expired or is not yet valid: {detail}"


def _go_unhandled_critical(cert: Cert) -> bool:
    return any(
        ext.critical and ext.oid not in _GO_HANDLED_EXTENSIONS for ext in cert.info.extensions
    )


def _go_parse_ip(text: str) -> bytes | None:
    """net.ParseIP as 16 bytes (IPv4 mapped), None when `text` is not an IP literal."""
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed).packed
    return address.packed


def _ip16(raw: bytes) -> bytes:
    return b"\0" * 10 + b"\xff\xff" + raw if len(raw) == 4 else raw


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _valid_hostname(host: str, *, pattern: bool) -> bool:
    if not pattern:
        host = host.removesuffix(".")
    if not host:
        return False
    for index, label in enumerate(host.split(".")):
        if not label:
            return False
        if pattern and index == 0 and label == "*":
            continue
        for position, char in enumerate(label):
            if "a" <= char <= "z" or "0" <= char <= "9" or "A" <= char <= "Z" or char == "_":
                continue
            if char == "-" and position != 0:
                continue
            return False
    return True


def _match_hostnames(pattern: str, host: str) -> bool:
    pattern = _ascii_lower(pattern)
    host = _ascii_lower(host.removesuffix("."))
    if not pattern or not host:
        return False
    pattern_labels, host_labels = pattern.split("."), host.split(".")
    if len(pattern_labels) != len(host_labels):
        return False
    return all(
        (index == 0 and p == "*") or p == h
        for index, (p, h) in enumerate(zip(pattern_labels, host_labels, strict=True))
    )


def _match_exactly(a: str, b: str) -> bool:
    if a in ("", ".") or b in ("", "."):
        return False
    return _ascii_lower(a) == _ascii_lower(b)


def go_hostname_problem(cert: Cert, host: str) -> str | None:
    """Certificate.VerifyHostname and HostnameError's wording; None when the host matches."""
    info = cert.info
    candidate_ip = host[1:-1] if len(host) >= 3 and host[0] == "[" and host[-1] == "]" else host
    wanted_ip = _go_parse_ip(candidate_ip)
    if wanted_ip is not None:
        if any(_ip16(ip) == wanted_ip for ip in info.sans.ips):
            return None
        shown = candidate_ip
    else:
        name = _ascii_lower(host)
        valid_name = _valid_hostname(name, pattern=False)
        for pattern in info.sans.dns:
            if valid_name and _valid_hostname(pattern, pattern=True):
                if _match_hostnames(pattern, name):
                    return None
            elif _match_exactly(pattern, name):
                return None
        shown = host
    has_san = info.extension("2.5.29.17") is not None
    if not has_san and _match_hostnames(common_name(info.subject), shown):
        return "x509: certificate relies on legacy Common Name field, use SANs instead"
    if _go_parse_ip(shown) is not None:
        if not info.sans.ips:
            return (
                f"x509: cannot validate certificate for {shown} because it doesn't contain "
                "any IP SANs"
            )
        valid = ", ".join(ip_string(ip) for ip in info.sans.ips)
    else:
        valid = ", ".join(info.sans.dns)
    if not valid:
        return f"x509: certificate is not valid for any names, but wanted to match {shown}"
    return f"x509: certificate is valid for {valid}, not {shown}"


# Go's chain building, for the wording of failures -----------------------------------------------


def _go_quote(text: str) -> str:
    """Go's %q for ordinary text."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
    return f'"{escaped}"'


def _go_signature_problem(child: Cert, parent: Cert) -> str | None:
    """Certificate.CheckSignatureFrom: the parent may sign certificates and its key verifies."""
    info = parent.info
    if (info.version == 3 and info.basic_constraints is None) or (
        info.basic_constraints is not None and not info.is_ca
    ):
        return "x509: invalid signature: parent certificate cannot sign this kind of certificate"
    if info.key_usage and not info.key_usage & (1 << 5):
        return "x509: invalid signature: parent certificate cannot sign this kind of certificate"
    key = info.public_key.key
    if key is None:
        return "x509: cannot verify signature: algorithm unimplemented"
    if verify_signature(
        key,
        child.info.signature_algorithm,
        child.info.tbs_raw,
        child.info.signature,
        go_std=True,
    ):
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return "crypto/rsa: verification error"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "x509: ECDSA verification failure"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "x509: Ed25519 verification failure"
    return "x509: cannot verify signature: algorithm unimplemented"


def _already_in_chain(candidate: Cert, chain: list[Cert]) -> bool:
    def san(cert: Cert) -> bytes | None:
        extension = cert.info.extension("2.5.29.17")
        return None if extension is None else extension.value

    return any(
        cert.info.subject_raw == candidate.info.subject_raw
        and cert.info.public_key.raw == candidate.info.public_key.raw
        and san(cert) == san(candidate)
        for cert in chain
    )


def _potential_parents(child: Cert, pool: list[Cert]) -> list[Cert]:
    """CertPool.findPotentialParents: same name, key identifiers matching first."""
    ranked: list[tuple[int, int, Cert]] = []
    for index, cert in enumerate(pool):
        if cert.info.subject_raw != child.info.issuer_raw:
            continue
        akid, skid = child.info.authority_key_id, cert.info.subject_key_id
        rank = 0 if akid and skid and akid == skid else 2 if akid and skid else 1
        ranked.append((rank, index, cert))
    return [cert for _, _, cert in sorted(ranked, key=lambda item: (item[0], item[1]))]


class _ChainSearch:
    """Go's buildChains, reduced to what decides its error message."""

    def __init__(self, intermediates: list[Cert], roots: list[Cert], now: datetime) -> None:
        self.intermediates = intermediates
        self.roots = roots
        self.now = now
        self.signature_checks = 0

    def candidate_problem(self, candidate: Cert, chain: list[Cert], is_root: bool) -> str | None:
        """Certificate.isValid for a CA candidate appended to `chain`."""
        if _go_unhandled_critical(candidate):
            return "x509: unhandled critical extension"
        problem = _go_time_problem(candidate, self.now)
        if problem:
            return problem
        info = candidate.info
        if not is_root and not info.is_ca:
            return "x509: certificate is not authorized to sign other certificates"
        max_path = info.basic_constraints[1] if info.basic_constraints else -1
        if max_path >= 0 and len(chain) - 1 > max_path:
            return "x509: too many intermediates for path length constraint"
        return None

    def build(self, chain: list[Cert]) -> tuple[bool, str | None]:
        """(found a chain, Go's error when not)."""
        child = chain[-1]
        found = False
        error: str | None = None
        hint: tuple[str, Cert] | None = None
        candidates = [(True, c) for c in _potential_parents(child, self.roots)]
        candidates += [(False, c) for c in _potential_parents(child, self.intermediates)]
        for is_root, candidate in candidates:
            if _already_in_chain(candidate, chain):
                continue
            self.signature_checks += 1
            if self.signature_checks > 100:
                error = (
                    "x509: signature check attempts limit reached while verifying certificate chain"
                )
                continue
            signature_problem = _go_signature_problem(child, candidate)
            if signature_problem:
                hint = hint or (signature_problem, candidate)
                continue
            error = self.candidate_problem(candidate, chain, is_root)
            if error:
                continue
            if is_root:
                found = True
            else:
                child_found, error = self.build([*chain, candidate])
                found = found or child_found
        if found:
            return True, None
        if error is None:
            error = "x509: certificate signed by unknown authority"
            if hint is not None:
                problem, cert = hint
                organization = [a.value for a in flat(cert.info.subject) if a.oid == "2.5.4.10"]
                name = (
                    common_name(cert.info.subject)
                    or (organization[0] if organization else "")
                    or f"serial:{cert.info.serial}"
                )
                error += (
                    f" (possibly because of {_go_quote(problem)} while trying to verify "
                    f"candidate authority certificate {_go_quote(name)})"
                )
        return False, error


def go_chain_problem(
    leaf: Cert, intermediates: list[Cert], roots: list[Cert], now: datetime
) -> str | None:
    """The error Go's chain building reports, None when Go finds a chain."""
    if any(root.info.raw == leaf.info.raw for root in roots):
        return None
    _, problem = _ChainSearch(intermediates, roots, now).build([leaf])
    return problem


# Validation with cryptography ---------------------------------------------------------------


def _ca_key_usage(_policy: Policy, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("parent certificate cannot sign this kind of certificate")


def _ca_policy() -> ExtensionPolicy:
    return (
        ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage)
    )


def _server_subject(host: str) -> x509.verification.Subject | None:
    """The subject for cryptography's server verifier, None when it cannot express it."""
    candidate = host[1:-1] if len(host) >= 3 and host[0] == "[" and host[-1] == "]" else host
    if _go_parse_ip(candidate) is not None:
        return x509.IPAddress(ipaddress.ip_address(candidate))
    try:
        return x509.DNSName(_ascii_lower(host.removesuffix(".")))
    except ValueError:
        return None


def _cryptography_reason(exc: Exception) -> str:
    text = str(exc)
    return text.split(" (encountered processing", 1)[0]


def verify_chain(
    leaf: Cert, intermediates: list[Cert], roots: list[Cert], host: str | None, now: datetime
) -> list[x509.Certificate]:
    """The validated chain (leaf first); CLIError "failed to verify certificate: ..."."""
    problem = "x509: unhandled critical extension" if _go_unhandled_critical(leaf) else None
    problem = problem or _go_time_problem(leaf, now)
    if host and not problem:
        problem = go_hostname_problem(leaf, host)
    if problem:
        raise CLIError(f"failed to verify certificate: {problem}")
    builder = PolicyBuilder().store(Store([root.x509 for root in roots])).time(now)
    candidates = [cert.x509 for cert in intermediates]
    subject = _server_subject(host) if host else None
    try:
        if subject is not None:
            server_policy = ExtensionPolicy.permit_all().require_present(
                x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
            )
            verifier = builder.extension_policies(
                ca_policy=_ca_policy(), ee_policy=server_policy
            ).build_server_verifier(subject)
            return verifier.verify(leaf.x509, candidates)
        client = builder.extension_policies(
            ca_policy=_ca_policy(), ee_policy=ExtensionPolicy.permit_all()
        ).build_client_verifier()
        return client.verify(leaf.x509, candidates).chain
    except VerificationError as exc:
        reason = go_chain_problem(leaf, intermediates, roots, now) or _cryptography_reason(exc)
        raise CLIError(f"failed to verify certificate: {reason}") from None


# HTTP ----------------------------------------------------------------------------------------


class _EndpointError(Exception):
    """One endpoint failed; `received` when its answer is trustworthy and decides."""

    def __init__(self, message: str, *, received: bool = False) -> None:
        super().__init__(message)
        self.received = received


class _TooLarge(Exception):
    pass


def http_client(roots: str | None) -> httpx.Client:
    """No proxies, no redirects, TLS verified against --roots (or the system store)."""
    return httpx.Client(
        verify=tls_client_context(roots),
        timeout=NETWORK_TIMEOUT,
        follow_redirects=False,
        trust_env=False,
    )


def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _scheme_problem(url: str) -> str | None:
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return None
    return f"unsupported protocol scheme {_go_quote(scheme)}"


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "i/o timeout"
    return str(exc) or type(exc).__name__


def _public_key_verifies(
    key: object,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None,
    algorithm_oid: x509.ObjectIdentifier,
) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey) and hash_algorithm is not None:
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
            if algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
                pad = padding.PSS(padding.MGF1(hash_algorithm), padding.PSS.AUTO)
            key.verify(signature, data, pad, hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and hash_algorithm is not None:
            key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


# CRL -----------------------------------------------------------------------------------------


def _load_crl(body: bytes) -> x509.CertificateRevocationList:
    try:
        return x509.load_der_x509_crl(body)
    except ValueError as exc:
        if b"-----BEGIN X509 CRL-----" in body:
            try:
                return x509.load_pem_x509_crl(body)
            except ValueError:
                pass
        raise _EndpointError(f"error parsing crl: {exc}") from None


def _crl_signature_problem(crl: x509.CertificateRevocationList, issuer: Cert) -> str | None:
    """RevocationList.CheckSignatureFrom, plus the CRL must name the issuer."""
    info = issuer.info
    if (info.version == 3 and info.basic_constraints is None) or (
        info.basic_constraints is not None and not info.is_ca
    ):
        return "x509: invalid signature: parent certificate cannot sign this kind of certificate"
    if info.key_usage and not info.key_usage & (1 << 6):
        return "x509: invalid signature: parent certificate cannot sign this kind of certificate"
    if crl.issuer != issuer.x509.subject:
        return "the CRL issuer is not the certificate's issuer"
    key = issuer.x509.public_key()
    if not isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return "x509: cannot verify signature: algorithm unimplemented"
    try:
        valid = crl.is_signature_valid(key)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        valid = False
    if valid:
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return "crypto/rsa: verification error"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "x509: ECDSA verification failure"
    return "x509: Ed25519 verification failure"


def check_crl(endpoint: str, leaf: Cert, issuer: Cert, client: httpx.Client, now: datetime) -> None:
    """Raise _EndpointError unless the CRL at `endpoint` shows `leaf` as not revoked."""
    problem = _scheme_problem(endpoint)
    if problem:
        raise _EndpointError(f"error downloading crl: Get {_go_quote(endpoint)}: {problem}")
    try:
        with client.stream("GET", endpoint) as response:
            if not 200 <= response.status_code < 300:
                raise _EndpointError(f"error downloading crl: status code {response.status_code}")
            body = _read_limited(response, CRL_SIZE_LIMIT)
    except _TooLarge:
        raise _EndpointError("error downloading crl: the CRL is too large") from None
    except httpx.HTTPError as exc:
        raise _EndpointError(
            f"error downloading crl: Get {_go_quote(endpoint)}: {_describe(exc)}"
        ) from None
    crl = _load_crl(body)
    problem = _crl_signature_problem(crl, issuer)
    if problem:
        raise _EndpointError(f"error validating the CRL against the CA issuer: {problem}")
    if crl.get_revoked_certificate_by_serial_number(leaf.info.serial) is not None:
        raise _EndpointError(f"certificate marked as revoked in CRL {endpoint}", received=True)
    if crl.last_update_utc > now + CLOCK_SKEW:
        raise _EndpointError(
            f"error validating the CRL: CRL {endpoint} is not valid before "
            f"{go_rfc3339(crl.last_update_utc)}"
        )
    next_update = crl.next_update_utc
    if next_update is not None and next_update < now:
        raise _EndpointError(
            f"error validating the CRL: CRL {endpoint} expired at {go_rfc3339(next_update)}"
        )


# OCSP ----------------------------------------------------------------------------------------


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    context = hashes.Hash(algorithm)
    context.update(data)
    return context.finalize()


def _key_hash(cert: Cert) -> bytes:
    """SHA-1 of the subjectPublicKey bits (OCSP ResponderID byKey)."""
    return hashlib.sha1(cert.info.public_key.key_bytes, usedforsecurity=False).digest()


class _BadResponse(Exception):
    pass


def _is_responder(cert: Cert, response: ocsp.OCSPResponse) -> bool:
    if response.responder_key_hash is not None:
        return response.responder_key_hash == _key_hash(cert)
    return response.responder_name == cert.x509.subject


def _ocsp_signer(response: ocsp.OCSPResponse, issuer: Cert, now: datetime) -> Cert:
    """The issuer itself, or a delegated responder certificate the issuer authorised."""
    if _is_responder(issuer, response):
        return issuer
    for der in (c.public_bytes(serialization.Encoding.DER) for c in response.certificates):
        try:
            candidate = Cert.from_der(der)
        except CertParseError:
            continue
        if not _is_responder(candidate, response):
            continue
        if candidate.info.issuer_raw != issuer.info.subject_raw or not _public_key_verifies(
            issuer.x509.public_key(),
            candidate.x509.signature,
            candidate.x509.tbs_certificate_bytes,
            candidate.x509.signature_hash_algorithm,
            candidate.x509.signature_algorithm_oid,
        ):
            raise _BadResponse("the responder certificate is not signed by the issuing CA")
        if ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string not in candidate.info.ext_key_usage:
            raise _BadResponse("the responder certificate is not authorized to sign OCSP responses")
        if _go_time_problem(candidate, now):
            raise _BadResponse("the responder certificate has expired or is not yet valid")
        return candidate
    raise _BadResponse("the response is not signed by the issuing CA or a responder it authorized")


def _ocsp_answer(
    response: ocsp.OCSPResponse, leaf: Cert, issuer: Cert, nonce: bytes, now: datetime
) -> ocsp.OCSPSingleResponse:
    """The single response for `leaf`, once the response is known to be trustworthy."""
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        status = _OCSP_STATUS_TEXT.get(response.response_status, "unknown response status")
        raise _BadResponse(f"ocsp: error from server: {status}")
    signer = _ocsp_signer(response, issuer, now)
    if not _public_key_verifies(
        signer.x509.public_key(),
        response.signature,
        response.tbs_response_bytes,
        response.signature_hash_algorithm,
        response.signature_algorithm_oid,
    ):
        raise _BadResponse("bad OCSP signature")
    try:
        echoed: bytes | None = response.extensions.get_extension_for_class(
            x509.OCSPNonce
        ).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    if echoed is not None and echoed != nonce:
        raise _BadResponse("the response nonce does not match the request")
    for single in response.responses:
        algorithm = single.hash_algorithm
        if (
            single.serial_number == leaf.info.serial
            and single.issuer_name_hash == _digest(algorithm, issuer.info.subject_raw)
            and single.issuer_key_hash == _digest(algorithm, issuer.info.public_key.key_bytes)
        ):
            break
    else:
        raise _BadResponse("the response does not cover the certificate")
    if single.this_update_utc > now + CLOCK_SKEW:
        raise _BadResponse(f"the response is not valid before {go_rfc3339(single.this_update_utc)}")
    next_update = single.next_update_utc
    if next_update is not None and next_update < now - CLOCK_SKEW:
        raise _BadResponse(f"the response expired at {go_rfc3339(next_update)}")
    return single


def check_ocsp(
    endpoint: str, leaf: Cert, issuer: Cert, client: httpx.Client, now: datetime
) -> None:
    """Raise _EndpointError unless the OCSP responder at `endpoint` says "good"."""
    nonce = secrets.token_bytes(16)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf.x509, issuer.x509, hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    contacting = f"error contacting OCSP server: {endpoint}"
    if _scheme_problem(endpoint):
        raise _EndpointError(contacting)
    headers = {"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"}
    payload = request.public_bytes(serialization.Encoding.DER)
    try:
        with client.stream("POST", endpoint, content=payload, headers=headers) as response:
            status = response.status_code
            try:
                body = _read_limited(response, OCSP_SIZE_LIMIT)
            except (httpx.HTTPError, _TooLarge):
                raise _EndpointError(
                    f"error reading response from OCSP server: {endpoint}"
                ) from None
    except httpx.HTTPError:
        raise _EndpointError(contacting) from None
    parsing = f"error parsing response from OCSP server: {endpoint}"
    try:
        if status != 200:
            raise _BadResponse(f"HTTP status {status}")
        try:
            parsed = ocsp.load_der_ocsp_response(body)
        except ValueError:
            raise _BadResponse("malformed OCSP response") from None
        try:
            answer = _ocsp_answer(parsed, leaf, issuer, nonce, now)
        except ValueError as exc:
            raise _BadResponse(f"malformed OCSP response: {exc}") from None
    except _BadResponse as exc:
        raise _EndpointError(f"{parsing}: {exc}") from None
    if answer.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        raise _EndpointError(
            f"certificate has been revoked according to OCSP {endpoint}", received=True
        )
    if answer.certificate_status != ocsp.OCSPCertStatus.GOOD:
        raise _EndpointError(
            f"certificate status is unknown according to OCSP {endpoint}", received=True
        )


# The command ---------------------------------------------------------------------------------


def _try_endpoints(
    endpoints: list[str],
    check: Callable[[str], None],
    report: Report | None,
) -> str | None:
    """The first endpoint whose check passes; a trustworthy negative answer raises."""
    for endpoint in endpoints:
        try:
            check(endpoint)
        except _EndpointError as exc:
            if exc.received:
                raise CLIError(str(exc)) from None
            if report is not None:
                report(str(exc))
            continue
        return endpoint
    return None


def verify_certificate(crt: str, options: VerifyOptions) -> list[str]:
    """Run step's checks; the --verbose lines on success, CLIError on any failure."""
    leaf, intermediates = load_input(crt, options)
    roots = load_roots(options.roots)
    now = options.now or datetime.now(UTC)
    chain = verify_chain(leaf, intermediates, roots, options.host, now)
    lines = ["certificate validated against roots"]
    if options.host:
        lines.append("certificate host name validated")
    issuer_override = load_issuing_ca(options.issuing_ca) if options.issuing_ca else None
    if not (options.verify_crl or options.verify_ocsp):
        return lines
    if issuer_override is not None:
        issuer = issuer_override
    else:
        known = {cert.info.raw: cert for cert in (leaf, *intermediates, *roots)}
        issuer = known[chain[1 if len(chain) > 1 else 0].public_bytes(serialization.Encoding.DER)]
    with http_client(options.roots) as client:
        if options.verify_crl:
            if not leaf.info.crl_distribution_points:
                raise CLIError("CRL distribution endpoint not found in certificate")
            endpoint = _try_endpoints(
                list(leaf.info.crl_distribution_points),
                lambda url: check_crl(url, leaf, issuer, client, now),
                options.report,
            )
            if endpoint is None:
                raise CLIError("could not verify certificate against CRL distribution point(s)")
            lines.append(f"certificate not revoked in CRL {endpoint}")
        if options.verify_ocsp:
            if not leaf.info.aia.ocsp:
                raise CLIError("no OCSP AIA extension found")
            endpoint = _try_endpoints(
                list(leaf.info.aia.ocsp),
                lambda url: check_ocsp(url, leaf, issuer, client, now),
                options.report,
            )
            if endpoint is None:
                raise CLIError("could not verify certificate against OCSP server(s)")
            lines.append(f"certificate status is good according OCSP {endpoint}")
    return lines
