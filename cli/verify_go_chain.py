"""Why Go's crypto/x509 would refuse a chain, in Go's words.

`cryptography`'s verifier decides whether a chain is valid; its reasons read differently from
Go's. To print step's messages ("x509: certificate signed by unknown authority (possibly
because of ...)"), this module replays the parts of Go's buildChains that decide the error:
validity times, unhandled critical extensions, CA and path-length constraints and parent
signatures.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from cli.certinfo import Certificate, common_name, flat, go_rfc3339, verify_signature
from cli.verify_inputs import Cert

# Extensions Go's certificate parser handles; any other critical one is "unhandled".
_GO_HANDLED_EXTENSIONS = {
    f"2.5.29.{arc}" for arc in (14, 15, 17, 19, 30, 31, 32, 33, 35, 36, 37, 54)
}
_GO_HANDLED_EXTENSIONS.add("1.3.6.1.5.5.7.1.1")


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


def go_time_problem(cert: Cert, now: datetime) -> str | None:
    info = cert.info
    if now < info.not_before:
        detail = f"current time {_go_now_rfc3339(now)} is before {go_rfc3339(info.not_before)}"
    elif now > info.not_after:
        detail = f"current time {_go_now_rfc3339(now)} is after {go_rfc3339(info.not_after)}"
    else:
        return None
    return f"x509: certificate has expired or is not yet valid: {detail}"


def go_unhandled_critical(cert: Cert) -> bool:
    return any(
        ext.critical and ext.oid not in _GO_HANDLED_EXTENSIONS for ext in cert.info.extensions
    )


def go_quote(text: str) -> str:
    """Go's %q for ordinary text."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
    return f'"{escaped}"'


#: Key usage bits (as Certificate.key_usage numbers them) that let a parent sign.
KEY_USAGE_CERT_SIGN = 1 << 5
KEY_USAGE_CRL_SIGN = 1 << 6


def go_cannot_sign(parent: Certificate, key_usage_bit: int) -> str | None:
    """Go's refusal of a parent that may not sign: no CA basicConstraints, or a key usage
    without `key_usage_bit`."""
    if (parent.version == 3 and parent.basic_constraints is None) or (
        parent.basic_constraints is not None and not parent.is_ca
    ):
        return "x509: invalid signature: parent certificate cannot sign this kind of certificate"
    if parent.key_usage and not parent.key_usage & key_usage_bit:
        return "x509: invalid signature: parent certificate cannot sign this kind of certificate"
    return None


def _go_signature_problem(child: Cert, parent: Cert) -> str | None:
    """Certificate.CheckSignatureFrom: the parent may sign certificates and its key verifies."""
    info = parent.info
    problem = go_cannot_sign(info, KEY_USAGE_CERT_SIGN)
    if problem:
        return problem
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
        if go_unhandled_critical(candidate):
            return "x509: unhandled critical extension"
        problem = go_time_problem(candidate, self.now)
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
                    f" (possibly because of {go_quote(problem)} while trying to verify "
                    f"candidate authority certificate {go_quote(name)})"
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
