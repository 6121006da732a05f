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

The work is split by concern: :mod:`cli.verify_inputs` (what is read), :mod:`cli.verify_hostname`
and :mod:`cli.verify_go_chain` (Go's wording of failures), :mod:`cli.verify_revocation` (CRL
and OCSP); this module validates the chain with `cryptography` and runs the command's steps.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from cli.common import CLIError
from cli.verify_go_chain import go_chain_problem, go_time_problem, go_unhandled_critical
from cli.verify_hostname import ascii_lower, go_hostname_problem, go_parse_ip
from cli.verify_inputs import Cert, load_input, load_issuing_ca, load_roots
from cli.verify_revocation import EndpointError, check_crl, check_ocsp, http_client

Report = Callable[[str], None]


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
    if go_parse_ip(candidate) is not None:
        return x509.IPAddress(ipaddress.ip_address(candidate))
    try:
        return x509.DNSName(ascii_lower(host.removesuffix(".")))
    except ValueError:
        return None


def _cryptography_reason(exc: Exception) -> str:
    text = str(exc)
    return text.split(" (encountered processing", 1)[0]


def verify_chain(
    leaf: Cert, intermediates: list[Cert], roots: list[Cert], host: str | None, now: datetime
) -> list[x509.Certificate]:
    """The validated chain (leaf first); CLIError "failed to verify certificate: ..."."""
    problem = "x509: unhandled critical extension" if go_unhandled_critical(leaf) else None
    problem = problem or go_time_problem(leaf, now)
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
        except EndpointError as exc:
            if exc.received:
                raise CLIError(str(exc)) from None
            if report is not None:
                report(str(exc))
            continue
        return endpoint
    return None


def verify_certificate(crt: str, options: VerifyOptions) -> list[str]:
    """Run step's checks; the --verbose lines on success, CLIError on any failure."""
    leaf, intermediates = load_input(crt, server_name=options.server_name, roots=options.roots)
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
