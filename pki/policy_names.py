"""Names and constraints of certificate issuance policies (pki.policy): step-ca's parsing of
ca.json's allow/deny lists and of the names a request carries, with its error wording."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import idna

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_ATEXT = re.compile(r"(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]|\\.)+")
_QUOTED = re.compile(r'"((?:[^"\\\r\n]|\\[^\r\n])*)"')


class PolicyConfigError(ValueError):
    """A constraint step-ca refuses to load (the CA does not start)."""


def quote(text: str) -> str:
    """Go's %q, near enough."""
    return json.dumps(text, ensure_ascii=False)


# --- names --------------------------------------------------------------------------------


def idna_label(label: str) -> str:
    """A Unicode label in punycode by IDNA 2008 with UTS #46 mapping, as Go's idna package
    converts it (Python's own "idna" codec is IDNA 2003: `faß` would become `fass`)."""
    try:
        return idna.encode(label, uts46=True).decode()
    except idna.IDNAError:
        raise ValueError(f"idna: invalid label {quote(label)}") from None


def to_ascii(domain: str) -> str:
    """Go's idna.Lookup.ToASCII: lower case, letters/digits/hyphens only (STD3), no hyphen
    at a label's ends; Unicode labels to punycode. ValueError says why not."""
    out: list[str] = []
    for label in domain.lower().split("."):
        if not label.isascii():
            label = idna_label(label)
        bad = next((c for c in label if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "-")), "")
        if bad:
            raise ValueError(f"idna: disallowed rune U+{ord(bad):04X}")
        if (
            label.startswith("-")
            or label.endswith("-")
            or (label[2:4] == "--" and not label.startswith("xn--"))
        ):
            raise ValueError(f"idna: invalid label {quote(label)}")
        out.append(label)
    return ".".join(out)


def labels(domain: str) -> list[str] | None:
    """The labels last first (`a.example.com` -> com, example, a); None for an empty label
    or a character outside printable ASCII."""
    if not domain:
        return []
    labels = domain.split(".")[::-1]
    if any(not label or any(not 33 <= ord(c) <= 126 for c in label) for label in labels):
        return None
    return labels


def mailbox(text: str) -> tuple[str, str] | None:
    """RFC 2821 mailbox as (local part, domain), or None."""
    quoted = _QUOTED.match(text)
    if quoted:
        local, rest = re.sub(r"\\(.)", r"\1", quoted.group(1)), text[quoted.end() :]
    else:
        atom = _ATEXT.match(text)
        if not atom:
            return None
        raw, rest = atom.group(0), text[atom.end() :]
        local = re.sub(r"\\(.)", r"\1", raw)
        if local.startswith(".") or local.endswith(".") or ".." in local:
            return None
    if not rest.startswith("@") or labels(rest[1:]) in (None, []):
        return None
    return local, rest[1:]


def plain_ip(value: IP) -> IP:
    """An IPv4-mapped IPv6 address is the IPv4 address (Go's net.IP)."""
    if isinstance(value, ipaddress.IPv6Address) and value.ipv4_mapped is not None:
        return value.ipv4_mapped
    return value


# --- constraints (ca.json) ----------------------------------------------------------------


def _domain_constraint(value: str, what: str = "domain constraint") -> str:
    c = value.strip().lower()
    if not c:
        raise ValueError(f"constraint {quote(value)} can not be empty or white space string")
    if ".." in c:
        raise ValueError(f"{what} {quote(value)} cannot have empty labels")
    if c.startswith("."):
        raise ValueError(f"{what} {quote(value)} with wildcard should start with *")
    if c.rfind("*") > 0:
        raise ValueError(f"{what} {quote(value)} can only have wildcard as starting character")
    if len(c) >= 2 and c[0] == "*" and c[1] != ".":
        raise ValueError(
            f"wildcard character in {what} {quote(value)} can only be used to match (full) labels"
        )
    if c.startswith("*."):
        c = c[1:]  # `.example.com`: exactly one label below
    try:
        c = to_ascii(c)
    except ValueError as exc:
        raise ValueError(f"{what} {quote(value)} can not be converted to ASCII: {exc}") from None
    if labels(c.removeprefix(".")) is None:
        raise ValueError(f"cannot parse {what} {quote(value)}")
    return c


def _uri_constraint(value: str) -> str:
    c = value.strip().lower()
    what = "URI domain constraint"
    if not c:
        raise ValueError(f"{what} {quote(value)} cannot be empty or white space string")
    if "://" in c:
        raise ValueError(f"{what} {quote(value)} contains scheme (not supported yet)")
    if "[" in c or "]" in c:
        raise ValueError(f"{what} {quote(value)} contains invalid square brackets")
    if c.count(":") == 1:  # Go's SplitHostPort succeeds
        raise ValueError(f"{what} {quote(value)} cannot contain port")
    try:
        ipaddress.ip_address(c)
    except ValueError:
        return _domain_constraint(value, what)
    raise ValueError(f"{what} {quote(value)} cannot be an IP")


def _email_constraint(value: str) -> str:
    c = value.strip().lower()
    if not c:
        raise ValueError(f"email constraint {quote(value)} can not be empty or white space string")
    if "*" in c:
        raise ValueError(f"email constraint {quote(value)} cannot contain asterisk wildcard")
    if c.count("@") > 1:
        raise ValueError(f"email constraint {quote(value)} contains too many @ characters")
    c = c.removeprefix("@")  # `@example.com`: any mailbox at example.com
    if c.startswith("."):
        raise ValueError(f"email constraint {quote(value)} cannot start with period")
    if "@" in c:
        box = mailbox(c)
        if box is None:
            raise ValueError(f"cannot parse email constraint {quote(value)} as RFC 2821 mailbox")
        try:
            c = box[0] + "@" + to_ascii(box[1])
        except ValueError as exc:
            raise ValueError(
                f"email constraint {quote(value)} domain part {quote(box[1])} cannot be converted "
                f"to ASCII: {exc}"
            ) from None
    else:
        try:
            c = to_ascii(c)
        except ValueError as exc:
            raise ValueError(
                f"email constraint {quote(value)} cannot be converted to ASCII: {exc}"
            ) from None
    if labels(c) is None:
        raise ValueError(f"cannot parse email domain constraint {quote(value)}")
    return c


def _network(value: str) -> Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("as IP nor CIDR") from None


def _cn_constraint(value: str) -> str:
    c = value.strip().lower()
    if not c:
        raise ValueError(f"constraint {quote(value)} can not be empty or white space string")
    if c == "*":
        raise ValueError(f"wildcard constraint {quote(value)} is not supported")
    return c


@dataclass(frozen=True)
class Names:
    """One allow or deny block of ca.json, by name type."""

    cn: Sequence[str] = ()
    dns: Sequence[str] = ()
    ip: Sequence[str] = ()
    email: Sequence[str] = ()
    uri: Sequence[str] = ()
    principal: Sequence[str] = ()

    def __bool__(self) -> bool:
        return any((self.cn, self.dns, self.ip, self.email, self.uri, self.principal))


_WORDS = {"dns": "domain", "email": "email", "uri": "URI domain", "cn": "common name"}


def compiled(names: Names, side: str) -> dict[str, tuple[object, ...]]:
    """The block's constraints normalised; PolicyConfigError in step-ca's words."""
    out: dict[str, tuple[object, ...]] = {}
    normalise = {"cn": _cn_constraint, "dns": _domain_constraint, "email": _email_constraint,
                 "uri": _uri_constraint}  # fmt: skip
    for kind, fn in normalise.items():
        items: list[object] = []
        for value in getattr(names, kind):
            try:
                items.append(fn(value))
            except ValueError as exc:
                raise PolicyConfigError(
                    f"cannot parse {side} {_WORDS[kind]} constraint {quote(value)}: {exc}"
                ) from None
        out[kind] = tuple(dict.fromkeys(items))
    nets: list[object] = []
    for value in names.ip:
        try:
            nets.append(_network(value))
        except ValueError:
            raise PolicyConfigError(
                f"cannot parse {side} constraint {quote(value)} as IP nor CIDR"
            ) from None
    out["ip"] = tuple(dict.fromkeys(nets))
    out["principal"] = tuple(dict.fromkeys(names.principal))
    return out
