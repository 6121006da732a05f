"""The ``--short`` form of a certificate: certinfo's ``CertificateShortText``."""

from __future__ import annotations

from cli.certinfo.general_names import GeneralNames, ip_string
from cli.certinfo.gofmt import go_rfc3339
from cli.certinfo.keys import verify_signature
from cli.certinfo.model import Certificate
from cli.certinfo.names import common_name


def abbreviated(value: str) -> str:
    """certinfo's abbreviation: first4...last4 when longer than 8 characters."""
    return value if len(value) <= 8 else f"{value[:4]}...{value[-4:]}"


def short_sans(cn: str, names: GeneralNames) -> list[str]:
    values = (
        list(names.dns)
        + [ip_string(ip) for ip in names.ips]
        + list(names.emails)
        + list(names.uris)
    )
    return [value for value in values if value != cn]


def short_subject_lines(cn: str, sans: list[str]) -> list[str]:
    entries = ([cn] if cn else []) + sans
    if not entries:
        return ["  Subject: \n"]
    return [f"  Subject:     {entries[0]}\n"] + [f"               {s}\n" for s in entries[1:]]


def certificate_type(cert: Certificate) -> str:
    """TLS, Root CA (CA whose signature verifies with its own key) or Intermediate CA."""
    if not cert.is_ca:
        return "TLS"
    key_usage_ok = cert.key_usage == 0 or bool(cert.key_usage & (1 << 5))
    if key_usage_ok and verify_signature(
        cert.public_key.key,
        cert.signature_algorithm,
        cert.tbs_raw,
        cert.signature,
        go_std=True,
    ):
        return "Root CA"
    return "Intermediate CA"


def certificate_short_text(cert: Certificate) -> str:
    """certinfo.CertificateShortText."""
    cn = common_name(cert.subject)
    out = [
        f"X.509v3 {certificate_type(cert)} Certificate ({cert.public_key.short_label()}) "
        f"[Serial: {abbreviated(str(cert.serial))}]\n"
    ]
    out.extend(short_subject_lines(cn, short_sans(cn, cert.sans)))
    out.append(f"  Issuer:      {common_name(cert.issuer)}\n")
    if cert.provisioner is not None:
        provisioner = cert.provisioner
        credential = abbreviated(provisioner.credential_id)
        if credential:
            out.append(f"  Provisioner: {provisioner.name} [ID: {credential}]\n")
        else:
            out.append(f"  Provisioner: {provisioner.name}\n")
    out.append(f"  Valid from:  {go_rfc3339(cert.not_before)}\n")
    out.append(f"          to:  {go_rfc3339(cert.not_after)}\n")
    return "".join(out)
