"""Where a key lives, as ca.json says it: `key` (the key's name) plus `kms` (its store).

step-ca splits a key URI in two: `"key": "pkcs11:id=7331;object=ca"` names the key, and
`"kms": {"type": "pkcs11", "uri": "pkcs11:module-path=...;token=ca?pin-source=..."}` names
the store it is opened from. `KeyLocation` does that split and its inverse for every backend
(the backend's row in the registry says which attributes name a key), so the CA core and the
commands handle key URIs without knowing any backend.

Attribute items are moved as written (still percent-encoded): a URI is never re-encoded, so
what the operator typed is what ca.json holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from keystores.registry import BACKENDS, backend_for, is_hardware
from keystores.uri import file_uri_path, split_scheme

__all__ = ["REDACTED", "KeyLocation", "normalize_key_uri", "redact_uri"]

REDACTED = "REDACTED"
_FILE_SCHEMES = (None, "file")
# step-ca's `kms` fields that become store URI attributes when `kms.uri` is not given.
_KMS_FIELDS = (("managementKey", "management-key"),)


def _name(item: str) -> str:
    return unquote(item.partition("=")[0])


def _absolute_pin_source(item: str) -> str:
    if _name(item) != "pin-source":
        return item
    name, _, value = item.partition("=")
    path = unquote(value)
    scheme, _ = split_scheme(path)
    if scheme is None and path and not Path(path).is_absolute():
        return f"{name}={quote(str(Path(path).absolute()), safe='/')}"
    return item


def normalize_key_uri(uri: str) -> str:
    """A key URI that means the same from any directory: a file key (path or `file:` URI) as
    an absolute path, a relative `pin-source` made absolute; anything else unchanged."""
    scheme, rest = split_scheme(uri)
    if scheme is None:
        return str(Path(uri).expanduser().absolute())
    if scheme == "file":
        return str(Path(file_uri_path(uri)).expanduser().absolute())
    if "pin-source" not in uri:
        return uri
    path_part, sep, query_part = rest.partition("?")
    path_items = [_absolute_pin_source(i) for i in path_part.split(";")]
    query_items = [_absolute_pin_source(i) for i in query_part.split("&")] if sep else []
    return f"{scheme}:{';'.join(path_items)}{sep}{'&'.join(query_items)}"


def redact_uri(uri: str) -> str:
    """The URI with every secret attribute (`pin-value`, a YubiKey's `management-key`, ...)
    replaced by `REDACTED`; file paths pass unchanged. An unknown scheme loses every
    attribute any backend counts as secret."""
    scheme, _ = split_scheme(uri)
    if scheme in _FILE_SCHEMES:
        return uri
    backend = backend_for(uri)
    if backend is not None:
        secrets = backend.secret_attributes
    else:
        secrets = frozenset().union(*(b.secret_attributes for b in BACKENDS.values()))
    if not secrets:
        return uri
    names = "|".join(sorted(map(re.escape, secrets)))
    pattern = re.compile(rf"((?:^|[:;?&])(?:{names})=)[^;&]*", re.IGNORECASE)
    return pattern.sub(lambda m: m.group(1) + REDACTED, uri)


@dataclass(frozen=True)
class KeyLocation:
    """A key (`key`) and the store URI it is opened from (`store`; None: the key's own URI)."""

    key: str
    store: str | None = None

    @classmethod
    def split(cls, uri: str) -> KeyLocation:
        """Split a full key URI as step-ca's ca.json has it.

        A file key gives its absolute path. A URI of a backend whose keys are named by some
        attributes (`id`, `object`; `slot-id`) keeps those in `key`; everything else
        (`module-path`, `token`, ..., `pin-source`) names the store. A `pin-value` is dropped
        when a `pin-source` is there; a relative `pin-source` is made absolute. Other
        schemes are kept whole.
        """
        scheme, rest = split_scheme(uri)
        if scheme in _FILE_SCHEMES:
            return cls(normalize_key_uri(uri))
        backend = backend_for(uri)
        if backend is None or not backend.key_attributes:
            return cls(uri)
        path_part, _, query_part = rest.partition("?")
        key_items: list[str] = []
        store_path: list[str] = []
        store_query: list[str] = []
        for items, target in (
            (path_part.split(";"), store_path),
            (query_part.split("&"), store_query),
        ):
            for item in filter(None, items):
                if _name(item) in backend.key_attributes:
                    key_items.append(item)
                else:
                    target.append(_absolute_pin_source(item))
        if "pin-source" in {_name(i) for i in store_path + store_query}:
            store_path = [i for i in store_path if _name(i) != "pin-value"]
            store_query = [i for i in store_query if _name(i) != "pin-value"]
        key = f"{scheme}:{';'.join(key_items)}"
        if not store_path and not store_query:
            return cls(key)
        store = f"{scheme}:{';'.join(store_path)}"
        if store_query:
            store += f"?{'&'.join(store_query)}"
        return cls(key, store)

    @classmethod
    def from_config(cls, kms: Mapping[str, Any] | None, key: str) -> KeyLocation:
        """From ca.json: `kms.uri`, else a store URI built from step-ca's `kms` fields
        (`type`, `pin`, `managementKey`), else the key's own URI opens its store."""
        if not kms:
            return cls(key)
        uri = kms.get("uri")
        if isinstance(uri, str) and uri:
            return cls(key, uri)
        kind = str(kms.get("type") or "").lower()
        if kind in ("", "softkms"):
            return cls(key)
        attrs = [
            f"{attr}={quote(str(kms[field]))}" for field, attr in _KMS_FIELDS if kms.get(field)
        ]
        query = f"?pin-value={quote(str(kms['pin']))}" if kms.get("pin") else ""
        return cls(key, f"{kind}:{';'.join(attrs)}{query}")

    @property
    def store_uri(self) -> str:
        """The URI to open the key store with."""
        return self.store or self.key

    @property
    def hardware(self) -> bool:
        """Whether the key is held in a device (see `keystores.is_hardware`)."""
        return is_hardware(self.store_uri)

    @property
    def slow_signer(self) -> bool:
        """Whether a signature may take tens of milliseconds: a YubiKey's (through its own
        store or its PKCS#11 module, ykcs11) or an unknown store's. A file key signs in tens
        of microseconds and SoftHSM2 in about 0.25 ms; an HSM on the network adds its round
        trip. The worker's event loop waits for the quick ones (api/inline.py)."""
        if not self.hardware:
            return False
        scheme, _ = split_scheme(self.store_uri)
        return scheme != "pkcs11" or "ykcs11" in self.store_uri.lower()

    def config(self) -> tuple[str, dict[str, str] | None]:
        """ca.json's `key` and `kms` (None when the key's URI is enough)."""
        if self.store is None:
            return self.key, None
        scheme, _ = split_scheme(self.store)
        return self.key, {"type": scheme or "file", "uri": self.store}
