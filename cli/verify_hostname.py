"""Go's host-name check (crypto/x509 Certificate.VerifyHostname) and its error wording.

`step certificate verify --host` fails the way Go fails: IP literals against IP SANs,
names against DNS SANs with Go's wildcard and validity rules, and HostnameError's messages,
including the legacy Common Name hint.
"""

from __future__ import annotations

import ipaddress

from cli.certinfo import common_name, ip_string
from cli.verify_inputs import Cert


def go_parse_ip(text: str) -> bytes | None:
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


def ascii_lower(text: str) -> str:
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
    pattern = ascii_lower(pattern)
    host = ascii_lower(host.removesuffix("."))
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
    return ascii_lower(a) == ascii_lower(b)


def go_hostname_problem(cert: Cert, host: str) -> str | None:
    """Certificate.VerifyHostname and HostnameError's wording; None when the host matches."""
    info = cert.info
    candidate_ip = host[1:-1] if len(host) >= 3 and host[0] == "[" and host[-1] == "]" else host
    wanted_ip = go_parse_ip(candidate_ip)
    if wanted_ip is not None:
        if any(_ip16(ip) == wanted_ip for ip in info.sans.ips):
            return None
        shown = candidate_ip
    else:
        name = ascii_lower(host)
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
    if go_parse_ip(shown) is not None:
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
