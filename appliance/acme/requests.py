"""Checks on what an ACME client sends, shared by the service's steps: contacts,
identifiers, the finalize CSR's names, the number of identifiers an order may hold."""

from __future__ import annotations

import ipaddress
from typing import Any

from cryptography import x509

from appliance.acme.problems import ACMEProblem, malformed
from pki.sans import SubjectAltNames

#: Identifiers one order may carry (Let's Encrypt's limit): each is an authorization, a
#: challenge or more, and a validation job.
MAX_IDENTIFIERS = 100


def contact_urls(value: Any) -> list[str]:
    """An account's `contact`: mailto: URLs only, as step-ca accepts."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise malformed("contact must be a list of URLs")
    for item in value:
        if not item.startswith("mailto:"):
            raise ACMEProblem("unsupportedContact", f"contact {item!r} is not a mailto: URL")
    return list(value)


def is_ip(value: str) -> bool:
    """An IP address without a zone (`fe80::1%eth0` names an interface of the CA's own)."""
    if "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def csr_names(csr: x509.CertificateSigningRequest, names: list[str]) -> str:
    """The CSR's common name ("" when none); badCSR unless its names are the order's."""
    cns = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    common_name = str(cns[0].value).lower() if cns else ""
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        ext = None
    except ValueError as exc:  # an extension that does not parse
        raise ACMEProblem("badCSR", f"the csr's extensions cannot be parsed: {exc}") from None
    sans = SubjectAltNames.of(ext)
    requested = {n.lower() for n in sans.dns} | {str(ip) for ip in sans.ips}
    if sans.emails or sans.uris:
        raise ACMEProblem("badCSR", "the csr has names that are neither DNS names nor IPs")
    if common_name:
        requested.add(common_name)
    if requested != {n.lower() for n in names}:
        raise ACMEProblem(
            "badCSR", f"the csr's names {sorted(requested)} are not the order's {sorted(names)}"
        )
    return common_name
