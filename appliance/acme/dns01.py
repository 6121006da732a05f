"""dns-01 (RFC 8555 §8.4) and the CA's name lookups, with dnspython.

The client proves control of NAME by publishing base64url(SHA-256(keyAuthorization)) in a TXT
record at `_acme-challenge.NAME` (for `*.NAME`, the same base name). The lookups go to the
system's resolver, or to the one `step-ca --resolver HOST:PORT` names; with that flag the
addresses of http-01 and tls-alpn-01 names come from it too (`addresses`), as step-ca replaces
Go's resolver for every lookup.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from typing import Any

import dns.exception
import dns.rdatatype
import dns.resolver

from appliance.acme.problems import ACMEProblem

#: (address, port) of a resolver; None: the system's (/etc/resolv.conf).
Nameserver = tuple[str, int] | None
DNS_PORT = 53


class LookupFailed(Exception):
    """A lookup gave no answer; the message says why, for the problem's detail."""


def parse_nameserver(text: str) -> tuple[str, int]:
    """`HOST[:PORT]` or `[V6]:PORT` as step-ca's `--resolver` takes it; HOST must be an IP
    address (the resolver cannot be found by name). ValueError says what is wrong."""
    host, port = text.strip(), DNS_PORT
    if host.startswith("["):
        inner, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not HOST:PORT")
        host, port_text = inner, rest[1:]
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
    else:
        port_text = ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: the resolver must be an IP address") from None
    return str(address), port


def resolver(nameserver: Nameserver, timeout: float) -> dns.resolver.Resolver:
    """A resolver without a cache (a client fixing its record must be seen at once)."""
    try:
        res = dns.resolver.Resolver(configure=nameserver is None)
    except dns.exception.DNSException as exc:  # no /etc/resolv.conf
        raise LookupFailed(f"no system resolver: {exc}") from None
    if nameserver is not None:
        res.nameservers = [nameserver[0]]
        res.port = nameserver[1]
    res.timeout = res.lifetime = timeout
    res.cache = None
    return res


def _resolve(name: str, rdtype: str, nameserver: Nameserver, timeout: float) -> list[Any]:
    try:
        answer = resolver(nameserver, timeout).resolve(name, rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        raise LookupFailed(f"{name} does not exist (NXDOMAIN)") from None
    except dns.resolver.NoAnswer:
        raise LookupFailed(f"no {rdtype} records found for {name}") from None
    except dns.exception.Timeout:
        raise LookupFailed(f"timed out looking up {rdtype} records for {name}") from None
    except dns.exception.DNSException as exc:
        raise LookupFailed(f"looking up {rdtype} records for {name}: {exc}") from None
    return list(answer)


def txt_name(domain: str) -> str:
    return "_acme-challenge." + domain.removeprefix("*.").rstrip(".")


def txt_value(key_authorization: str) -> str:
    digest = hashlib.sha256(key_authorization.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def lookup_txt(name: str, nameserver: Nameserver, timeout: float) -> list[str]:
    """The TXT values at `name`, each record's strings joined (RFC 7208 style)."""
    return [
        b"".join(r.strings).decode(errors="replace")
        for r in _resolve(name, "TXT", nameserver, timeout)
    ]


def addresses(name: str, nameserver: Nameserver, timeout: float) -> list[str]:
    """The IPv4 then IPv6 addresses of `name`; LookupFailed when it has neither."""
    found: list[str] = []
    reasons: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            found += [r.address for r in _resolve(name, rdtype, nameserver, timeout)]
        except LookupFailed as exc:
            reasons.append(str(exc))
    if not found:
        raise LookupFailed("; ".join(reasons))
    return found


def check(
    domain: str, key_authorization: str, nameserver: Nameserver, timeout: float
) -> tuple[dict[str, Any] | None, bool]:
    """(None, _) when a TXT record holds the digest, else (the problem, whether another
    attempt may do better: a missing record may still be propagating; a wrong one is wrong)."""
    name = txt_name(domain)
    try:
        values = lookup_txt(name, nameserver, timeout)
    except LookupFailed as exc:
        detail = f"error looking up TXT records for domain {domain}: {exc}"
        return ACMEProblem("dns", detail).document(), True
    expected = txt_value(key_authorization)
    if expected in values:
        return None, False
    detail = f"keyAuthorization does not match; expected TXT {expected} at {name}, but got {values}"
    return ACMEProblem("incorrectResponse", detail).document(), False
