"""Certificate issuance policies: step-ca's allow/deny name rules (`authority.policy` and a
provisioner's `policy` in ca.json), as pure name matching.

The rules are step-ca's (its `policy` package), so a ca.json means the same here:
- a constraint list of one type (dns, ip, email, uri, cn, principal) allows or denies names of
  that type; deny wins over allow;
- once any allow list is set, a name of a type with no list at all is refused;
- `*.example.com` matches exactly one label below example.com (not example.com itself, not
  a.b.example.com); `example.com` only itself; case never matters;
- email: `@example.com` (or `example.com`) is any mailbox at that domain, a full address that
  mailbox; ip: an address or a CIDR range; uri: the host of the URI, as a dns constraint;
- a literal wildcard name (`*.example.com` in a request) matches only when
  `allowWildcardNames` is set;
- X.509: the SANs, then the subject CN: allowed by a `cn` list, else checked as the SAN type
  it looks like (IP, URI, email, DNS name).

A refusal is a PolicyError, a CAError (403) worded as step-ca words it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from pki.errors import CAError, ErrorKind
from pki.policy_names import (
    IP,
    Names,
    Network,
    PolicyConfigError,
    compiled,
    idna_label,
    labels,
    mailbox,
    plain_ip,
    quote,
    to_ascii,
)
from pki.sans import SubjectAltNames

#: An authority as RFC 3986 spells it, percent-encoding left out (see `_match_uri`).
_AUTHORITY = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@\[\]]*")

__all__ = [
    "IssuancePolicy",
    "NamePolicy",
    "Names",
    "PolicyConfigError",
    "PolicyError",
    "ssh_policy",
    "x509_policy",
]

FORBIDDEN_PREFIX = "The request was forbidden by the certificate authority: "


class Reason(Enum):
    NOT_ALLOWED = 1
    CANNOT_PARSE_DOMAIN = 2
    CANNOT_PARSE_RFC822NAME = 3
    CANNOT_MATCH = 4
    OTHER = 5


class _Refused(Exception):
    def __init__(self, reason: Reason, kind: str, name: str, text: str = "") -> None:
        super().__init__(text)
        self.reason, self.kind, self.name, self.text = reason, kind, name, text

    def message(self) -> str:
        """step-ca's NamePolicyError text."""
        q = quote(self.name)
        return {
            Reason.NOT_ALLOWED: f"{self.kind} name {q} not allowed",
            Reason.CANNOT_PARSE_DOMAIN: f"cannot parse {self.kind} domain {q}",
            Reason.CANNOT_PARSE_RFC822NAME: f"cannot parse {self.kind} rfc822Name {q}",
            Reason.CANNOT_MATCH: f"error matching {self.kind} name {q} to constraint",
        }.get(self.reason, self.text)


class PolicyError(CAError):
    """A name the policy refuses: 403 `...: dns name "x" not allowed` (step-ca's text); a name
    that cannot be parsed or matched: 403 `error validating <what>`, the detail logged."""

    def __init__(self, refused: _Refused, what: str) -> None:
        message = refused.message()
        if refused.reason is Reason.NOT_ALLOWED:
            super().__init__(
                ErrorKind.FORBIDDEN, message, public=FORBIDDEN_PREFIX + message, verbatim=True
            )
        else:
            super().__init__(ErrorKind.FORBIDDEN, message, public=f"error validating {what}")
        self.refusal = refused.reason
        self.message = message


# --- the engine -----------------------------------------------------------------------------


class NamePolicy:
    """One set of allow/deny rules (step-ca's NamePolicyEngine), compiled once at load."""

    def __init__(
        self, allow: Names, deny: Names, *, wildcards: bool = False, verify_cn: bool = False
    ) -> None:
        self.permitted = compiled(allow, "permitted")
        self.excluded = compiled(deny, "excluded")
        self.wildcards = wildcards
        self.verify_cn = verify_cn
        self.count = {k: len(v) + len(self.excluded[k]) for k, v in self.permitted.items()}
        self.any_permitted = any(self.permitted.values())
        self.total = sum(self.count.values())

    # public checks: PolicyError when a name is refused

    def check_x509(self, common_name: str, sans: SubjectAltNames) -> None:
        """A certificate's SANs, then its subject CN."""
        try:
            self._names(sans.dns, sans.ips, sans.emails, sans.uris, ())
            if self.verify_cn:
                self._common_name(common_name)
        except _Refused as refused:
            raise PolicyError(refused, "certificate") from None

    def check_sans(self, names: Iterable[str]) -> None:
        """Names typed the way step splits `sans` (step-ca's AreSANsAllowed)."""
        split = SubjectAltNames.split(tuple(names))
        try:
            self._names(split.dns, split.ips, split.emails, split.uris, ())
        except _Refused as refused:
            raise PolicyError(refused, "certificate") from None

    def check_ssh(self, host: bool, principals: Iterable[str]) -> None:
        """An SSH certificate's principals: a host's are DNS names, IPs and emails; a user's
        emails and user names."""
        split = SubjectAltNames.split(tuple(principals))
        try:
            if split.uris:
                raise _Refused(Reason.OTHER, "uri", split.uris[0], "URL principals not expected")
            if host:
                self._names(split.dns, split.ips, split.emails, (), ())
            else:
                if split.ips:
                    raise _Refused(Reason.OTHER, "ip", str(split.ips[0]), "IP principals not "
                                   "expected in SSH user certificate")  # fmt: skip
                self._names((), (), split.emails, (), split.dns)
        except _Refused as refused:
            raise PolicyError(refused, "ssh certificate") from None

    # step-ca's validateNames / validateCommonName

    def _implicit(self, kind: str, name: str) -> None:
        """With any allow list, a type with no list at all is not allowed."""
        if self.count[kind] == 0 and self.any_permitted:
            raise _Refused(Reason.NOT_ALLOWED, kind, name)

    def _names(
        self,
        dns: Iterable[str],
        ips: Iterable[IP],
        emails: Iterable[str],
        uris: Iterable[str],
        principals: Iterable[str],
    ) -> None:
        if self.total == 0:
            return
        for name in dns:
            self._implicit("dns", name)
            wildcard = name.startswith("*.")
            try:
                parsed = to_ascii(name[1:] if wildcard else name)
            except ValueError:
                raise _Refused(Reason.CANNOT_PARSE_DOMAIN, "dns", name) from None
            parsed = "*" + parsed if wildcard else parsed
            if labels(parsed) is None:
                raise _Refused(Reason.CANNOT_PARSE_DOMAIN, "dns", name)
            self._check("dns", name, parsed)
        for ip in ips:
            self._implicit("ip", str(plain_ip(ip)))
            self._check("ip", str(plain_ip(ip)), plain_ip(ip))
        for email in emails:
            self._implicit("email", email)
            box = mailbox(email)
            if box is None:
                raise _Refused(Reason.CANNOT_PARSE_RFC822NAME, "email", email)
            domain = box[1]
            if not domain.isascii():
                try:
                    domain = ".".join(idna_label(label) for label in domain.split("."))
                except ValueError:
                    raise _Refused(Reason.CANNOT_PARSE_DOMAIN, "email", email) from None
            self._check("email", email, (box[0], domain))
        for uri in uris:
            self._implicit("uri", uri)
            self._check("uri", uri, uri)
        for principal in principals:
            self._implicit("principal", principal)
            self._check("principal", principal, principal)

    def _common_name(self, common_name: str) -> None:
        """Allowed by a `cn` list, or else as the SAN type it looks like."""
        if self.total == 0 or not common_name:
            return
        if self.count["cn"]:
            # Stricter than step-ca, which then checks a denied CN as a SAN (and may allow
            # it): here a matching deny entry refuses it.
            if any(self._match_cn(common_name, str(c)) for c in self.excluded["cn"]):
                raise _Refused(Reason.NOT_ALLOWED, "cn", common_name)
            try:
                self._check("cn", common_name, common_name)
                return
            except _Refused:
                pass
        split = SubjectAltNames.split((common_name,))
        try:
            self._names(split.dns, split.ips, split.emails, split.uris, ())
        except _Refused as refused:
            refused.kind = "cn"
            raise

    def _check(self, kind: str, name: str, parsed: object) -> None:
        """Denied if a deny constraint matches; else allowed if there is no allow list or
        one of it matches."""
        match: Callable[[Any, Any], bool] = getattr(self, "_match_" + kind)
        # Stricter than step-ca: a deny entry matches a literal wildcard name even when
        # wildcard names are not allowed (step-ca lets `*.x` past a `*.x` deny entry).
        deny: Callable[[Any, Any], bool] = (
            partial(self._match_dns, deny=True) if kind == "dns" else match
        )
        try:
            if any(deny(parsed, c) for c in self.excluded[kind]):
                raise _Refused(Reason.NOT_ALLOWED, kind, name)
            permitted = self.permitted[kind]
            if permitted and not any(match(parsed, c) for c in permitted):
                raise _Refused(Reason.NOT_ALLOWED, kind, name)
        except ValueError as exc:
            raise _Refused(Reason.CANNOT_MATCH, kind, name, str(exc)) from None

    # matchers: ValueError when the name cannot be compared

    def _match_dns(self, domain: str, constraint: str, deny: bool = False) -> bool:
        if domain in ("", " ") or domain[0] == ".":
            return False
        if domain[0] == "*" and not domain.startswith("*."):
            return False
        if domain.startswith("*.") and not (self.wildcards or deny):
            return False
        if domain.rfind("*") > 0 or ".." in constraint:
            return False
        found = labels(domain)
        if found is None:
            raise ValueError(f"cannot parse domain {quote(domain)}")
        below = constraint.startswith(".")  # exactly one more label
        wanted = labels(constraint[1:] if below else constraint)
        if wanted is None:
            raise ValueError(f"cannot parse domain constraint {quote(constraint)}")
        if len(found) != len(wanted) + below:
            return False
        return all(a.lower() == b.lower() for a, b in zip(wanted, found, strict=False))

    def _match_ip(self, ip: IP, network: Network) -> bool:
        return ip in network

    def _match_email(self, box: tuple[str, str], constraint: str) -> bool:
        if "@" in constraint:
            wanted = mailbox(constraint)
            if wanted is None:
                raise ValueError(f"cannot parse constraint {quote(constraint)}")
            return box[0] == wanted[0] and box[1].lower() == wanted[1].lower()
        return self._match_dns(box[1], constraint)

    def _match_uri(self, uri: str, constraint: str) -> bool:
        try:
            netloc = urlsplit(uri).netloc
        except ValueError:
            raise ValueError(f"cannot parse URI {quote(uri)}") from None
        # Only RFC 3986's authority characters, no percent-encoding: `evil%2ecom` or
        # `evil.com\@good.com` must not be matched as one host while clients read another
        # (Go's url.Parse refuses them too).
        if not _AUTHORITY.fullmatch(netloc):
            raise ValueError(f"cannot parse URI {quote(uri)}: invalid authority")
        host = netloc.rpartition("@")[2]
        if not host:
            raise ValueError(f"URI with empty host ({quote(uri)}) cannot be matched")
        if "*" in host:
            raise ValueError(f"URI host {quote(uri)} cannot contain asterisk")
        if ":" in host and not host.endswith("]"):
            if host.count(":") > 1:
                raise ValueError(f"address {host}: too many colons in address")
            host = host.rpartition(":")[0]
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return self._match_dns(host, constraint)
        raise ValueError(f"URI with IP {quote(uri)} cannot be matched against constraints")

    def _match_principal(self, principal: str, constraint: str) -> bool:
        return constraint == "*" or principal.lower() == constraint.lower()

    def _match_cn(self, common_name: str, constraint: str) -> bool:
        return common_name.lower() == constraint.lower()


def x509_policy(allow: Names, deny: Names, wildcards: bool = False) -> NamePolicy | None:
    """An X.509 policy (CN verified), or None when neither block names anything."""
    if not allow and not deny:
        return None
    return NamePolicy(allow, deny, wildcards=wildcards, verify_cn=True)


def ssh_policy(allow: Names, deny: Names) -> NamePolicy | None:
    """An SSH user or host policy, or None when neither block names anything."""
    return NamePolicy(allow, deny) if allow or deny else None


@dataclass(frozen=True)
class IssuancePolicy:
    """One `policy` object of ca.json (the authority's or a provisioner's), compiled."""

    x509: NamePolicy | None = None
    ssh_user: NamePolicy | None = None
    ssh_host: NamePolicy | None = None

    def __bool__(self) -> bool:
        return any((self.x509, self.ssh_user, self.ssh_host))

    def check_x509(self, common_name: str, sans: SubjectAltNames) -> None:
        if self.x509 is not None:
            self.x509.check_x509(common_name, sans)

    def check_identifier(self, kind: str, value: str) -> None:
        """An ACME order identifier (`dns` or `ip`)."""
        if self.x509 is not None:
            self.x509.check_sans((value,))

    def check_ssh(self, host: bool, principals: Iterable[str]) -> None:
        """With only a user policy host certificates are refused, and the other way round."""
        engine, other = (self.ssh_host, self.ssh_user) if host else (self.ssh_user, self.ssh_host)
        if engine is not None:
            engine.check_ssh(host, principals)
        elif other is not None:
            kind = "host" if host else "user"
            refused = _Refused(Reason.OTHER, kind, "", f"SSH {kind} certificate not authorized")
            raise PolicyError(refused, "ssh certificate")
