"""The provisioner collection: load from ca.json, find a token's provisioner, page the list."""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from pki.errors import CAError, ErrorKind, bad_request, unauthorized
from pki.jose import JOSEError
from pki.jws import decode_compact
from provisioners.audience import Method, matches
from provisioners.base import (
    Provisioner,
    ProvisionerConfigError,
    ProvisionerInitError,
    SignOptions,
    Token,
)
from provisioners.claims import Claims, ClaimsError
from provisioners.jwk import JWKProvisioner
from provisioners.schema import SCHEMAS, ProvisionerSchema

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

Factory = Callable[[ProvisionerSchema, Claims], Provisioner]

# type (lower case) -> "module:Class"; modules load on first use, so a type whose module is
# not installed is skipped like an unknown type (step-ca skips unknown types too).
FACTORIES: dict[str, str] = {
    "jwk": "provisioners.jwk:JWKProvisioner",
    "oidc": "provisioners.oidc:OIDCProvisioner",
    "aws": "provisioners.aws:AWSProvisioner",
    "gcp": "provisioners.gcp:GCPProvisioner",
    "azure": "provisioners.azure:AzureProvisioner",
    "x5c": "provisioners.x5c:X5CProvisioner",
    "sshpop": "provisioners.sshpop:SSHPOPProvisioner",
    "acme": "provisioners.acme:ACMEProvisioner",
}


def factory_for(kind: str) -> Factory | None:
    """The class implementing provisioner type `kind`, or None when there is none."""
    target = FACTORIES.get(kind)
    if target is None:
        return None
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        return None
    return cast(Factory, cls)


def parse_token(raw: str) -> Token:
    """Split a compact JWS without trusting it, once (pki.jws: PyJWT's checks and texts);
    anything unparseable is a 401."""
    try:
        jws = decode_compact(raw)
    except JOSEError as exc:
        raise unauthorized(f"authority.Authorize; error parsing token: {exc}") from None
    claims = jws.claims
    for name in _TIME_CLAIMS:
        if name in claims and not _is_go_time(claims[name]):
            raise unauthorized(f"authority.Authorize; error parsing token: invalid {name} claim")
    if jws.may_hold_surrogates and (_has_lone_surrogate(jws.header) or _has_lone_surrogate(claims)):
        raise unauthorized("authority.Authorize; error parsing token: invalid UTF-8")
    return Token(raw, jws.header, claims, jws.signing_input, jws.signature)


_TIME_CLAIMS = ("exp", "nbf", "iat")
# Go's NumericDate is an int64 of seconds; datetime (years 1 to 9999) is narrower still.
_MIN_TIME, _MAX_TIME = -62135596800, 253402300799


def _is_go_time(value: object) -> bool:
    """A NumericDate every later step can hold: finite, and inside datetime's years. Every
    provider re-reads the same claims after verifying, so this check covers them all."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value == value and _MIN_TIME <= value <= _MAX_TIME  # NaN != NaN


def _has_lone_surrogate(value: object) -> bool:
    """A `\\ud800` escape Python's json keeps as a lone surrogate: such text cannot be
    stored or encoded; such a token is refused rather than half-used."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


class DisabledProvisioner(Provisioner):
    """A provisioner whose initialisation failed: listed with its state, tokens get a 401."""

    def __init__(
        self, config: ProvisionerSchema, claims: Claims, reason: str, keys: list[str] | None = None
    ) -> None:
        super().__init__(config, claims)
        self.type_name = config.type.upper()
        self.reason = reason
        self._keys = list(keys or [])

    @property
    def id(self) -> str:
        return f"disabled:{self.name}"

    @property
    def lookup_keys(self) -> list[str]:
        return self._keys

    def authorize(self, token: Token, method: Method, audiences: list[str]) -> SignOptions:
        message = f'provisioner "{self.name}" is disabled due to an initialization error'
        raise CAError(
            ErrorKind.UNAUTHORIZED, f"{message}: {self.reason}", public=message, verbatim=True
        )

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["type"] = self.config.type
        out["state"] = "Uninitialized"
        out["stateReason"] = self.reason
        return out


class ProvisionerRegistry:
    """All provisioners of one CA, in config order, built from their checked schemas
    (CAConfig.provisioners, or provisioners.schema.parse_provisioner)."""

    def __init__(self, configs: Sequence[ProvisionerSchema], global_claims: Claims) -> None:
        self._items: list[tuple[str, Provisioner]] = []
        self._by_key: dict[str, Provisioner] = {}
        self._by_name: dict[str, Provisioner] = {}
        for index, config in enumerate(configs):
            kind = config.type.lower()
            factory = factory_for(kind)
            if factory is None:
                log.warning(
                    "provisioner %r: type %r is not supported, skipped", config.name, config.type
                )
                continue
            if not isinstance(config, SCHEMAS.get(kind, ProvisionerSchema)):
                raise ProvisionerConfigError(
                    f"provisioner {config.name!r}: not checked against the {config.type} schema"
                )
            try:
                claims = global_claims.merged(config.claims)
            except ClaimsError as exc:
                raise ProvisionerConfigError(f"provisioner {config.name!r}: {exc}") from None
            prov: Provisioner
            try:
                prov = factory(config, claims)
            except ProvisionerInitError as exc:
                log.error("provisioner %r failed to initialise: %s", config.name, exc)
                prov = DisabledProvisioner(config, claims, str(exc), exc.lookup_keys)
            if prov.name in self._by_name:
                raise ProvisionerConfigError(f"provisioner name {prov.name!r} is not unique")
            self._by_name[prov.name] = prov
            for key in prov.lookup_keys:
                if key in self._by_key:
                    raise ProvisionerConfigError(f"provisioner key {key!r} is not unique")
                self._by_key[key] = prov
            self._items.append((_uid(index, prov.id), prov))

    def __iter__(self) -> Iterator[Provisioner]:
        return (prov for _, prov in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def by_name(self, name: str) -> Provisioner | None:
        """The provisioner called `name` (renewal finds it from the certificate's extension)."""
        return self._by_name.get(name)

    def for_token(self, token: Token, all_audiences: list[str]) -> Provisioner:
        """step-ca's LoadByToken: audience fragment, then `iss:kid` (JWK) for our audiences,
        then `azp` / audience (OIDC client ID), then `tid` (Azure tenant)."""
        aud = token.claims.get("aud")
        auds = (
            [aud]
            if isinstance(aud, str)
            else [a for a in aud or [] if isinstance(a, str)]
            if isinstance(aud, list)
            else []
        )
        for value in auds:
            _, sep, fragment = value.partition("#")
            if sep and fragment in self._by_key:
                return self._by_key[fragment]
        if matches(aud, all_audiences):
            key = f"{token.claims.get('iss')}:{token.header.get('kid')}"
            if key in self._by_key:
                return self._by_key[key]
        candidates = [token.claims.get("azp"), *auds, token.claims.get("tid")]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate in self._by_key:
                return self._by_key[candidate]
        raise unauthorized("authority.authorizeToken: provisioner not found or invalid audience")

    def encrypted_key(self, kid: str) -> str | None:
        """The escrowed JWE of the JWK provisioner whose key id is `kid`."""
        for _, prov in self._items:
            if isinstance(prov, JWKProvisioner) and prov.kid == kid and prov.encrypted_key:
                return prov.encrypted_key
        return None

    def page(self, cursor: str, limit_text: str | None) -> tuple[list[dict[str, Any]], str]:
        """One page of `/provisioners` and the next cursor ("" on the last page)."""
        limit = DEFAULT_LIMIT
        if limit_text not in (None, ""):
            text = str(limit_text)
            if not re.fullmatch(r"[+-]?[0-9]+", text):  # Go's strconv.Atoi
                raise bad_request(f"limit '{limit_text}' is not an integer")
            # Atoi also refuses what does not fit in an int64 (and int() refuses > 4300 digits).
            digits = text.lstrip("+-").lstrip("0") or "0"
            limit = (-1 if text[0] == "-" else 1) * int(digits[:20])
            if len(digits) > 19 or not -(1 << 63) <= limit < 1 << 63:
                raise bad_request(f"limit '{limit_text}' is not an integer")
        if limit <= 0:
            limit = DEFAULT_LIMIT
        limit = min(limit, MAX_LIMIT)
        start_uid = cursor.rjust(40, "0") if cursor else ""
        selected = [(uid, p) for uid, p in self._items if uid >= start_uid]
        page = selected[:limit]
        next_cursor = ""
        if len(selected) > limit:
            next_cursor = selected[limit][0].lstrip("0")
        return [p.to_json() for _, p in page], next_cursor


def _uid(index: int, ident: str) -> str:
    digest = bytearray(hashlib.sha1(ident.encode()).digest())
    digest[:4] = index.to_bytes(4, "big")
    return digest.hex()
