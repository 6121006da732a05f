"""The PKCS#11 key store: CA keys generated and used inside an HSM token (SoftHSM2 in tests).

URIs follow step's KMS (RFC 7512 syntax, percent-encoded):

- store (ca.json `kms.uri`), e.g.
  `pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca?pin-value=1234`,
  with one token selector, `token` (label), `serial` or `slot-id`, and the PIN as `pin-value` or
  `pin-source` (a file); without either, the store's `password` is the PIN, else no login.
- key (ca.json `key`): `pkcs11:id=7331;object=intermediate-key`; its attributes override the
  store's, so a key URI may carry module-path, token and PIN itself. `id` is hex-decoded when
  it is hex (`7331` -> b"\\x73\\x31", `0x`/`:` allowed), else taken as (percent-decoded) bytes.

Without `module-path` the module is SoftHSM2's Debian path (DEFAULT_MODULE); step defaults to
p11-kit-proxy, which this machine may not have, so name the module explicitly for real HSMs.

The library is never touched at `from_uri` (so never in the gunicorn master): see
`keystores.pkcs11.session` for the process rules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from pkcs11 import Attribute, Mechanism, ObjectClass

from keystores.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeySpec,
    KeyStore,
    KeyStoreError,
    PublicKey,
    SigningKey,
)
from keystores.pkcs11.keys import KeyRef, TokenSelector, make_signer
from keystores.pkcs11.objects import (
    describe_type,
    find,
    generate,
    key_uri,
    private_key,
)
from keystores.pkcs11.objects import public_key as read_public_key
from keystores.pkcs11.session import HANDLE_ERRORS, Connection, KeyVanished, process_lock, run
from keystores.uri import KeyURI

__all__ = ["DEFAULT_MODULE", "Pkcs11KeyStore", "decode_id"]

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
_SELECTORS = ("token", "serial", "slot-id")

T = TypeVar("T")


def decode_id(raw: bytes | None) -> bytes | None:
    """CKA_ID from a URI value: hex if it is hex (optional `0x`, `:` separators), else raw."""
    if not raw:
        return None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return raw
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    if ":" in text:
        parts = text.split(":")
        if all(len(part) == 2 for part in parts):
            text = "".join(parts)
    if text and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        return bytes.fromhex(text)
    return raw


class _Attrs:
    """What one pkcs11: URI says (every field optional)."""

    def __init__(self, uri: str, base_dir: Path | None) -> None:
        parsed = KeyURI.parse(uri, "pkcs11")
        self.module = parsed.get("module-path") or None
        chosen = [(kind, value) for kind in _SELECTORS if (value := parsed.get(kind))]
        if len(chosen) > 1:
            raise KeyStoreError("a pkcs11 URI takes only one of token, serial and slot-id")
        self.selector = chosen[0] if chosen else None
        if self.selector and self.selector[0] == "slot-id" and not self.selector[1].isdigit():
            raise KeyStoreError("pkcs11 slot-id must be a decimal number")
        self.pin = parsed.pin(base_dir)
        self.id = decode_id(parsed.get_bytes("id"))
        self.label = parsed.get("object") or None


# --- the store ----------------------------------------------------------------------------


class Pkcs11KeyStore(KeyStore):
    """Keys in a PKCS#11 token. Opening it touches no library: that happens on first use,
    in whichever process uses it (see the module docstring for the process rules)."""

    kind = "PKCS#11"

    def __init__(self, attrs: _Attrs, password: bytes | None, base_dir: Path | None) -> None:
        self._module = attrs.module or DEFAULT_MODULE
        self._selector = attrs.selector
        self._pin = attrs.pin
        if self._pin is None and password:
            self._pin = password.decode("utf-8")
        self._base_dir = base_dir
        self._pins: dict[TokenSelector, str | None] = {}
        self._signers: dict[KeyRef, SigningKey] = {}
        self._closed = False

    @classmethod
    def from_uri(cls, uri: str, *, password: bytes | None, base_dir: Path | None) -> Self:
        """Parse a module or key URI; the PIN file is read now, the library loaded later."""
        return cls(_Attrs(uri, base_dir), password, base_dir)

    # -- naming

    def _token(self, module: str | None, selector: tuple[str, str] | None) -> TokenSelector:
        chosen = selector or self._selector
        if chosen is None:
            raise KeyStoreError("the pkcs11 URI names no token (give token, serial or slot-id)")
        return TokenSelector(module or self._module, chosen[0], chosen[1])

    def resolve(self, name: str) -> KeyRef:
        """The key a key URI names, with the store's module, token and PIN filled in."""
        if self._closed:
            raise KeyStoreError("the key store is closed")
        attrs = _Attrs(name, self._base_dir)
        if attrs.id is None and attrs.label is None:
            raise KeyStoreError("a pkcs11 key URI needs id or object (or both)")
        token = self._token(attrs.module, attrs.selector)
        self._pins[token] = attrs.pin if attrs.pin is not None else self._pin
        return KeyRef(token, attrs.id, attrs.label)

    def _run(self, token: TokenSelector, work: Callable[[Connection], T]) -> T:
        if self._closed:
            raise KeyStoreError("the key store is closed")
        return run(token, self._pins.get(token, self._pin), work)

    # -- KeyStore

    def create_key(self, name: str, spec: KeySpec, *, overwrite: bool = False) -> PublicKey:
        """Generate the pair in the token: private half sensitive, never extractable."""
        ref = self.resolve(name)
        if ref.id is None or ref.label is None:
            raise KeyStoreError("creating a pkcs11 key needs both id and object in its URI")
        key_id, label = ref.id, ref.label

        def work(conn: Connection) -> PublicKey:
            self._make_room(conn, ref, overwrite)
            _, private = generate(conn.session, spec, key_id, label)
            conn.keys.clear()
            return read_public_key(conn, private, ref.describe())

        with process_lock():
            self._signers.clear()
            return self._run(ref.token, work)

    def _make_room(self, conn: Connection, ref: KeyRef, overwrite: bool) -> None:
        """Refuse to shadow an existing key; with `overwrite`, destroy the old pair first
        (only a pair with this exact id and label: another key sharing one of them stays)."""
        existing: dict[int, Any] = {}
        for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            for obj in find(conn, ref.id, None, cls) + find(conn, None, ref.label, cls):
                existing[obj.handle] = obj
        if not existing:
            return
        if not overwrite:
            raise KeyExistsError(f"{ref.describe()}: a key with this id or object already exists")
        same = [
            o
            for o in existing.values()
            if o[Attribute.ID] == ref.id and o[Attribute.LABEL] == ref.label
        ]
        if len(same) != len(existing):
            raise KeyExistsError(
                f"{ref.describe()}: another key uses this id or object; not replacing it"
            )
        for obj in same:
            obj.destroy()

    def public_key(self, name: str) -> PublicKey:
        return self.signer(name).public_key()

    def signer(self, name: str) -> SigningKey:
        ref = self.resolve(name)
        with process_lock():
            cached = self._signers.get(ref)
            if cached is not None:
                return cached

            def work(conn: Connection) -> SigningKey:
                public = read_public_key(conn, private_key(conn, ref), ref.describe())
                return make_signer(self, ref, public)

            signer = self._run(ref.token, work)
            self._signers[ref] = signer
            return signer

    def sign_raw(
        self, key: KeyRef, mechanism: Mechanism, data: bytes, param: Any | None = None
    ) -> bytes:
        """One signature in the token (used by the key objects)."""

        def work(conn: Connection) -> bytes:
            for retry in (False, True):
                try:
                    private = private_key(conn, key)
                except KeyNotFoundError:
                    # It was there when the signer was made: the token was re-initialised.
                    raise KeyVanished(f"{key.describe()} is no longer in the token") from None
                try:
                    return bytes(private.sign(data, mechanism=mechanism, mechanism_param=param))
                except HANDLE_ERRORS:
                    if retry:
                        raise
                    conn.keys.pop((key.id, key.label), None)  # stale: find it again, once
            raise AssertionError("unreachable")

        return self._run(key.token, work)

    def list_keys(self) -> list[dict[str, str]]:
        """The store token's private keys, for `step kms`-style listings."""
        token = self._token(None, None)
        self._pins.setdefault(token, self._pin)

        def work(conn: Connection) -> list[dict[str, str]]:
            rows = []
            for private in find(conn, None, None, ObjectClass.PRIVATE_KEY):
                key_id = private[Attribute.ID] or b""
                label = private[Attribute.LABEL] or ""
                rows.append(
                    {
                        "label": label,
                        "id": key_id.hex(),
                        "type": describe_type(private),
                        "uri": key_uri(key_id, label),
                    }
                )
            return sorted(rows, key=lambda row: (row["id"], row["label"]))

        return self._run(token, work)

    def close(self) -> None:
        """Forget this store's signers; the process's session stays for other stores."""
        with process_lock():
            self._signers.clear()
            self._closed = True
