"""Subject alternative names split by type, the way step splits a token's `sans` (shared by
the CA, which puts them in certificates, and the client, which puts them in CSRs)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class SubjectAltNames:
    """Names split by type the way step splits a token's `sans`."""

    dns: tuple[str, ...] = ()
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()

    @classmethod
    def split(cls, names: tuple[str, ...] | list[str]) -> SubjectAltNames:
        """IP if it parses as one, URI if it has a scheme, email if it has @, else DNS."""
        dns: list[str] = []
        ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        emails: list[str] = []
        uris: list[str] = []
        for name in names:
            # An IP address has a colon (v6) or starts with a digit (v4): others skip the
            # parse, whose failure (three exceptions) costs more than the rest of the loop.
            if ":" in name or name[:1].isdigit():
                try:
                    ips.append(ipaddress.ip_address(name))
                    continue
                except ValueError:
                    pass
            if _SCHEME.match(name):
                uris.append(name)
            elif "@" in name:
                emails.append(name)
            else:
                dns.append(name)
        return cls(tuple(dns), tuple(ips), tuple(emails), tuple(uris))

    @classmethod
    def of(cls, ext_value: x509.SubjectAlternativeName | None) -> SubjectAltNames:
        """Names of a SAN extension (of a CSR or a certificate)."""
        if ext_value is None:
            return cls()
        return cls(
            tuple(ext_value.get_values_for_type(x509.DNSName)),
            tuple(
                ip
                for ip in ext_value.get_values_for_type(x509.IPAddress)
                if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address))
            ),
            tuple(ext_value.get_values_for_type(x509.RFC822Name)),
            tuple(ext_value.get_values_for_type(x509.UniformResourceIdentifier)),
        )

    def general_names(self) -> list[x509.GeneralName]:
        """The names as X.509 GeneralNames (ValueError for one X.509 cannot carry)."""
        return list(self._general_names)

    @cached_property
    def _general_names(self) -> tuple[x509.GeneralName, ...]:
        # Built once: the CA checks the names early, then puts them in the certificate.
        out: list[x509.GeneralName] = [x509.DNSName(n) for n in self.dns]
        out += [x509.IPAddress(ip) for ip in self.ips]
        out += [x509.RFC822Name(e) for e in self.emails]
        out += [x509.UniformResourceIdentifier(u) for u in self.uris]
        return tuple(out)

    def __bool__(self) -> bool:
        return bool(self.dns or self.ips or self.emails or self.uris)
