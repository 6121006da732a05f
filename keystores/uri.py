"""Key URIs in step's forms: `scheme:k1=v1;k2=v2?q1=v1&q2=v2` (RFC 7512 style) and `file:`.

Shared by every backend so `pkcs11:`, `yubikey:` and `softkms:` names parse the same way.
Values stay strings (`id=7331` is not a number: step reads it as hex bytes), are
percent-decoded strictly, and `+` is a literal plus as RFC 7512 says, not a space.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_to_bytes

from keystores.base import KeyStoreError

__all__ = ["KeyURI", "file_uri_path", "read_pin_source", "split_scheme"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SECRET_ATTRS = frozenset({"pin-value"})

Attrs = tuple[tuple[str, bytes], ...]


def split_scheme(text: str) -> tuple[str | None, str]:
    """Split `scheme:rest`; a plain path (no scheme) gives `(None, text)`.

    A relative file whose name contains a colon must be written `./name:x`.
    """
    match = _SCHEME.match(text)
    if match is None:
        return None, text
    return match.group(1).lower(), text[match.end() :]


def _unquote(text: str, what: str) -> bytes:
    """Strict percent-decoding: a stray `%` is an error, not a literal, so typos surface."""
    if _BAD_ESCAPE.search(text):
        raise KeyStoreError(f"invalid percent-encoding in {what}")
    return unquote_to_bytes(text)


def _parse_attrs(text: str, separator: str, component: str) -> Attrs:
    attrs: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for item in text.split(separator):
        if not item:
            continue
        raw_name, _, raw_value = item.partition("=")
        name = _unquote(raw_name, f"key URI {component} attribute name").decode("utf-8", "replace")
        if not name:
            raise KeyStoreError(f"empty attribute name in key URI {component}")
        if name in seen:
            # RFC 7512 forbids repeats; accepting them would leave it unclear which key is meant.
            raise KeyStoreError(f"attribute {name!r} appears twice in key URI {component}")
        seen.add(name)
        attrs.append((name, _unquote(raw_value, f"key URI attribute {name!r}")))
    return tuple(attrs)


def _lookup(attrs: Attrs, name: str) -> bytes | None:
    for key, value in attrs:
        if key == name:
            return value
    return None


@dataclass(frozen=True, repr=False)
class KeyURI:
    """A parsed key URI: scheme, path attributes (`;`) and query attributes (`&`)."""

    scheme: str
    path: Attrs
    query: Attrs

    @classmethod
    def parse(cls, text: str, scheme: str | None = None) -> KeyURI:
        """Parse `text`; with `scheme`, also insist on that scheme (like step's ParseWithScheme).

        Error messages never quote the URI itself: it may carry a `pin-value`.
        """
        found, rest = split_scheme(text)
        if found is None:
            raise KeyStoreError("key URI has no scheme")
        if scheme is not None and found != scheme.lower():
            raise KeyStoreError(f"key URI scheme is {found!r}, expected {scheme.lower()!r}")
        path_part, _, query_part = rest.partition("?")
        return cls(
            scheme=found,
            path=_parse_attrs(path_part, ";", "path"),
            query=_parse_attrs(query_part, "&", "query"),
        )

    def get_bytes(self, name: str) -> bytes | None:
        """Raw decoded value; the path wins unless its value is empty (as step's `Get`)."""
        in_path = _lookup(self.path, name)
        if in_path:
            return in_path
        in_query = _lookup(self.query, name)
        return in_query if in_query is not None else in_path

    def get(self, name: str) -> str | None:
        """Decoded value as text, or None when the attribute is absent."""
        value = self.get_bytes(name)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyStoreError(f"key URI attribute {name!r} is not UTF-8 text") from None

    def get_encoded(self, name: str) -> bytes | None:
        """step's `GetEncoded`: hex-decode when the value is valid hex, else the raw bytes.

        So `id=7331` means the two bytes 0x73 0x31, and `id=%01%02` the bytes 1, 2.
        An empty value counts as absent.
        """
        value = self.get_bytes(name)
        if not value:
            return None
        try:
            return bytes.fromhex(value.decode("ascii"))
        except ValueError:
            return value

    def pin(self, base_dir: Path | None = None) -> str | None:
        """The PIN from `pin-value`, else read from the file `pin-source` names, else None."""
        value = self.get("pin-value")
        if value:
            return value
        source = self.get("pin-source")
        if source:
            return read_pin_source(source, base_dir)
        return None

    def __repr__(self) -> str:
        def show(attrs: Attrs) -> str:
            return ", ".join(
                f"{k}={'***' if k in _SECRET_ATTRS else v.decode('utf-8', 'replace')}"
                for k, v in attrs
            )

        path, query = show(self.path), show(self.query)
        return f"KeyURI(scheme={self.scheme!r}, path=[{path}], query=[{query}])"


def file_uri_path(text: str) -> str:
    """The filesystem path of `file:/abs`, `file:rel`, `file:///abs` or `file://localhost/abs`."""
    scheme, rest = split_scheme(text)
    if scheme != "file":
        raise KeyStoreError("not a file: URI")
    if "?" in rest or "#" in rest:
        raise KeyStoreError("file: URIs take no query or fragment; percent-encode '?' and '#'")
    if rest.startswith("//"):
        host, slash, tail = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise KeyStoreError(f"file: URI names a remote host {host!r}")
        rest = slash + tail
    if not rest:
        raise KeyStoreError("file: URI has no path")
    return os.fsdecode(_unquote(rest, "file: URI"))


def read_pin_source(source: str, base_dir: Path | None = None) -> str:
    """Read a PIN from a file (path or `file:` URI) as step does: trailing whitespace removed."""
    scheme, _ = split_scheme(source)
    path = Path(file_uri_path(source) if scheme == "file" else source)
    if base_dir is not None:
        path = base_dir / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"cannot read pin-source {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8").rstrip()
    except UnicodeDecodeError:
        raise KeyStoreError(f"pin-source {path} is not UTF-8 text") from None
