"""The long text form of a certificate: smallstep/certinfo's ``CertificateText``.

The blocks it shares with CSRs are in :mod:`.text_blocks`, the extensions in
:mod:`.text_extensions`.
"""

from __future__ import annotations

from cli.certinfo.algorithms import algorithm_display_name
from cli.certinfo.gofmt import go_validity_time, int_bytes
from cli.certinfo.model import Certificate
from cli.certinfo.text_blocks import (
    KEY_USAGE_NAMES,
    colon_hex_upper,
    hex_block,
    print_critical,
    print_name,
    print_sans,
    print_subject_information,
)
from cli.certinfo.text_extensions import print_cert_extension

# Re-exported: cli.certinfo.csr prints its blocks through this module.
__all__ = [
    "KEY_USAGE_NAMES",
    "certificate_text",
    "colon_hex_upper",
    "hex_block",
    "print_critical",
    "print_sans",
    "print_subject_information",
]


def certificate_text(cert: Certificate) -> str:
    """certinfo.CertificateText."""
    out: list[str] = ["Certificate:\n", " " * 4 + "Data:\n"]
    out.append(" " * 8 + f"Version: {cert.version} ({max(cert.version - 1, 0):#x})\n")
    serial_bytes = int_bytes(cert.serial)
    serial_hex = "0x" + serial_bytes.hex() if serial_bytes else ""
    out.append(" " * 8 + f"Serial Number: {cert.serial} ({serial_hex})\n")
    algorithm = algorithm_display_name(cert.signature_algorithm)
    out.append(" " * 8 + f"Signature Algorithm: {algorithm}\n")
    out.append(" " * 8 + "Issuer: ")
    print_name(cert.issuer, out)
    out.append(" " * 8 + "Validity\n")
    out.append(" " * 12 + f"Not Before: {go_validity_time(cert.not_before)}\n")
    out.append(" " * 12 + f"Not After : {go_validity_time(cert.not_after)}\n")
    print_subject_information(cert.subject, cert.public_key, False, out)
    for label, uid in (
        ("Issuer Unique ID", cert.issuer_unique_id),
        ("Subject Unique ID", cert.subject_unique_id),
    ):
        if uid:
            out.append(" " * 8 + f"{label}: " + ":".join(f"{b:02x}" for b in uid) + "\n")
    if cert.version == 3 and cert.extensions:
        out.append(" " * 8 + "X509v3 extensions:\n")
        for extension in cert.extensions:
            print_cert_extension(cert, extension, out)
    out.append(" " * 4 + f"Signature Algorithm: {algorithm}")
    hex_block(cert.signature, 18, 9, out)
    out.append("\n")
    return "".join(out)
