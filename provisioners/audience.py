"""Token audiences the CA accepts, and step-ca's port-insensitive audience match."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

LEGACY_AUDIENCE = "step-certificate-authority"


class Method(Enum):
    """What a token is for; each method has its own audience paths."""

    SIGN = ("sign", "ssh/sign")
    REVOKE = ("revoke",)
    RENEW = ("renew",)

    def __init__(self, *paths: str) -> None:
        self.paths = paths


def _host(dns_name: str) -> str:
    return f"[{dns_name}]" if ":" in dns_name and not dns_name.startswith("[") else dns_name


def audiences(dns_names: list[str], method: Method) -> list[str]:
    """Every audience string step-ca accepts for `method` (all DNS names, with and w/o /1.0)."""
    out: list[str] = [] if method is Method.RENEW else [LEGACY_AUDIENCE]
    for name in dns_names:
        host = _host(name)
        for path in method.paths:
            out.append(f"https://{host}/1.0/{path}")
            out.append(f"https://{host}/{path}")
    return out


def _strip_port(value: str) -> str:
    """`value` without the port of its URL. Short values (what tokens carry) are cached: two
    lookups per token, each a URL parse; a long one could only fill the cache."""
    if len(value) <= _CACHED_LENGTH:
        return _strip_port_cached(value)
    return _strip_port_uncached(value)


_CACHED_LENGTH = 256


def _strip_port_uncached(value: str) -> str:
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return value
    if not parts.scheme or host is None:
        return value
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


_strip_port_cached = lru_cache(maxsize=1024)(_strip_port_uncached)


@lru_cache(maxsize=256)
def _allowed_set(allowed: tuple[str, ...]) -> frozenset[str]:
    """The allowed audiences with and without their ports. Cached: the lists come from the
    configuration (a handful per CA), never from a token."""
    return frozenset(allowed) | {_strip_port(a) for a in allowed}


def matches(token_audience: object, allowed: Sequence[str]) -> bool:
    """True if any of the token's audiences equals an allowed one, ports ignored."""
    if isinstance(token_audience, str):
        given = [token_audience]
    elif isinstance(token_audience, list) and all(isinstance(a, str) for a in token_audience):
        given = token_audience
    else:
        return False
    allowed_set = _allowed_set(tuple(allowed))
    return any(a in allowed_set or _strip_port(a) in allowed_set for a in given)
