"""``--format json`` of certificates: the JSON of smallstep/zcrypto's ``x509.Certificate``.

The pieces shared with CSRs are in :mod:`.json_common`, the extensions in
:mod:`.json_extensions`; this module assembles a certificate's document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from cli.certinfo.der import children, parse_one
from cli.certinfo.extensions import (
    parse_extension,
)
from cli.certinfo.general_names import ip_string
from cli.certinfo.gofmt import go_rfc3339
from cli.certinfo.govalidator import is_url
from cli.certinfo.json_common import (
    b64,
    go_html_escape,
    go_json,
    key_algorithm_name,
    name_dn,
    name_json,
    signature_algorithm_json,
    subject_key_info_json,
)
from cli.certinfo.json_extensions import extensions_json
from cli.certinfo.keys import verify_signature
from cli.certinfo.model import Certificate
from cli.certinfo.names import common_name, flat

# Re-exported: cli.certinfo and cli.certinfo.csr take the shared pieces from this module.
__all__ = [
    "b64",
    "certificate_json",
    "certificates_json",
    "go_html_escape",
    "go_json",
    "key_algorithm_name",
    "name_dn",
    "name_json",
    "signature_algorithm_json",
]


def _tbs_without_ct(cert: Certificate) -> bytes:
    """The TBSCertificate re-encoded without the CT poison and SCT list extensions."""
    drop = {"1.3.6.1.4.1.11129.2.4.2", "1.3.6.1.4.1.11129.2.4.3"}
    if not any(e.oid in drop for e in cert.extensions):
        return cert.tbs_raw
    pieces: list[bytes] = []
    for part in cert.tbs_parts:
        if part.is_context(3) and part.constructed:
            kept = [
                item.raw
                for item in children(parse_one(part.content))
                if parse_extension(item).oid not in drop
            ]
            if kept:
                pieces.append(_tlv(0xA3, _tlv(0x30, b"".join(kept))))
        else:
            pieces.append(part.raw)
    return _tlv(0x30, b"".join(pieces))


def _tlv(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + body


_CABF_EV = {"2.23.140.1.1", "2.23.140.1.3", "2.23.140.1.31"}
_CABF_OV = {"2.23.140.1.2.2", "2.23.140.1.2.3"}
_CABF_DV = {"2.23.140.1.2.1"}


def _validation_level(cert: Certificate, self_signed: bool) -> str:
    if cert.extension("2.5.29.32") is None or self_signed:
        return "unknown"
    level = 0
    for policy in cert.policies:
        if policy.oid in _CABF_EV:
            return "EV"
        if policy.oid in _CABF_OV:
            level = max(level, 2)
        elif policy.oid in _CABF_DV:
            level = max(level, 1)
    if level == 0:
        subject = flat(cert.subject)
        organization = [a.value for a in subject if a.oid == "2.5.4.10"]
        units = [a.value for a in subject if a.oid == "2.5.4.11"]
        cn = common_name(cert.subject)
        if (organization and organization[0] == cn) or (
            units and "Domain Control Validated" in units[0]
        ):
            if not any(a.oid in ("2.5.4.7", "2.5.4.8", "2.5.4.17") for a in subject):
                level = 1
        elif (
            organization
            and organization[0] == "Persona Not Validated"
            and "StartCom" in common_name(cert.issuer)
        ):
            level = 1
    return {0: "unknown", 1: "DV", 2: "OV", 3: "EV"}[level]


def _json_names(cert: Certificate) -> list[str]:
    names: list[str] = []
    cn = common_name(cert.subject)

    def valid_name(name: str) -> bool:
        if name.startswith(("?.", "*.")):
            return valid_name(name[2:])
        return is_url(name)

    if valid_name(cn):
        names.append(cn)
    for dns in cert.sans.dns:
        if valid_name(dns) or "." not in dns:
            names.append(dns)
    names.extend(uri for uri in cert.sans.uris if is_url(uri))
    names.extend(ip_string(ip) for ip in cert.sans.ips if is_url(ip_string(ip)))
    return list(dict.fromkeys(names))


def _validity_seconds(start: datetime, end: datetime) -> int:
    """int(time.Sub().Seconds()) with Go's Duration saturation at +-2^63 ns."""
    delta = end - start
    nanoseconds = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    nanoseconds = max(-(2**63), min(2**63 - 1, nanoseconds))
    return int(nanoseconds / 10**9) if abs(nanoseconds) < 2**52 else nanoseconds // 10**9


def _clamped(when: datetime) -> str:
    return go_rfc3339(min(when, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)))


def certificate_json(cert: Certificate) -> dict[str, object]:
    """The object zcrypto's Certificate.MarshalJSON produces, keys in Go's order."""
    extensions, unknown = extensions_json(cert)
    self_signed = cert.subject_raw == cert.issuer_raw and verify_signature(
        cert.public_key.key,
        cert.tbs_signature_algorithm,
        cert.tbs_raw,
        cert.signature,
        go_std=False,
    )
    signature_algorithm = signature_algorithm_json(cert.tbs_signature_algorithm)
    out: dict[str, object] = {
        "version": cert.version,
        "serial_number": str(cert.serial),
        "signature_algorithm": signature_algorithm,
        "issuer": name_json(cert.issuer),
    }
    issuer_dn = name_dn(cert.issuer)
    if issuer_dn:
        out["issuer_dn"] = issuer_dn
    out["validity"] = {
        "start": _clamped(cert.not_before),
        "end": _clamped(cert.not_after),
        "length": _validity_seconds(cert.not_before, cert.not_after),
    }
    out["subject"] = name_json(cert.subject)
    subject_dn = name_dn(cert.subject)
    if subject_dn:
        out["subject_dn"] = subject_dn
    out["subject_key_info"] = subject_key_info_json(cert.public_key)
    out["extensions"] = extensions
    if unknown:
        out["unknown_extensions"] = unknown
    out["signature"] = {
        "signature_algorithm": signature_algorithm,
        "value": b64(cert.signature),
        "valid": False,
        "self_signed": self_signed,
    }
    out["fingerprint_md5"] = hashlib.md5(cert.raw, usedforsecurity=False).hexdigest()
    out["fingerprint_sha1"] = hashlib.sha1(cert.raw, usedforsecurity=False).hexdigest()
    out["fingerprint_sha256"] = hashlib.sha256(cert.raw).hexdigest()
    out["tbs_noct_fingerprint"] = hashlib.sha256(_tbs_without_ct(cert)).hexdigest()
    out["spki_subject_fingerprint"] = hashlib.sha256(
        cert.public_key.raw + cert.subject_raw
    ).hexdigest()
    out["tbs_fingerprint"] = hashlib.sha256(cert.tbs_raw).hexdigest()
    out["validation_level"] = _validation_level(cert, self_signed)
    names = _json_names(cert)
    if names:
        out["names"] = names
    out["redacted"] = any(name.startswith("?") for name in names)
    return out


def certificates_json(certs: Sequence[Certificate]) -> str:
    """step's JSON output: one object for one certificate, else an array."""
    if len(certs) == 1:
        return go_json(certificate_json(certs[0]))
    return go_json([certificate_json(cert) for cert in certs])
