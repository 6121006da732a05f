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

Process rules (SoftHSM2 and python-pkcs11 crash under concurrent sessions, and a PKCS#11
library must not be used across fork): the library is initialised lazily in the process that
uses it, never at `from_uri` (so never in the gunicorn master); state inherited over fork is
thrown away (`pkcs11.unload`) before first use in the child; each process keeps one session
per token, shared by all stores; every PKCS#11 call runs under one process-wide lock. When a
call fails in a way that means the token or session is gone, the library is finalised, one
warning is logged and KeyStoreUnavailableError (-> 503) is raised; the next call reloads the
library and logs in again, so the same store and signer objects keep working.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, Self, TypeVar
from urllib.parse import quote

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11

from keystores import der
from keystores.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeySpec,
    KeyStore,
    KeyStoreError,
    KeyStoreUnavailableError,
    PublicKey,
    SigningKey,
    WrongPasswordError,
)
from keystores.pkcs11_keys import (
    KeyRef,
    NonExtractableKeyError,
    Pkcs11EcPrivateKey,
    Pkcs11Ed25519PrivateKey,
    Pkcs11RsaPrivateKey,
    TokenSelector,
    make_signer,
)
from keystores.uri import KeyURI

__all__ = [
    "DEFAULT_MODULE",
    "KeyRef",
    "NonExtractableKeyError",
    "Pkcs11EcPrivateKey",
    "Pkcs11Ed25519PrivateKey",
    "Pkcs11KeyStore",
    "Pkcs11RsaPrivateKey",
    "TokenSelector",
    "decode_id",
    "finalize_process",
    "key_uri",
]

log = logging.getLogger(__name__)

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
_SELECTORS = ("token", "serial", "slot-id")

_CURVE_OIDS: dict[str, type[ec.EllipticCurve]] = {
    "1.2.840.10045.3.1.7": ec.SECP256R1,
    "1.3.132.0.34": ec.SECP384R1,
    "1.3.132.0.35": ec.SECP521R1,
}
_CURVE_BY_NAME = {"P-256": "1.2.840.10045.3.1.7", "P-384": "1.3.132.0.34", "P-521": "1.3.132.0.35"}
_ED25519_OID = "1.3.101.112"

# Errors after which the session (or the whole library state) cannot be trusted: the token
# was removed or re-initialised, the HSM restarted, or its files vanished (SoftHSM reports
# GeneralError then). A bare PKCS11Error is what python-pkcs11 raises for "not initialized".
_LOST_ERRORS: tuple[type[p11.PKCS11Error], ...] = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.NoSuchToken,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.DeviceMemory,
    p11.GeneralError,
    p11.FunctionFailed,
    p11.SlotIDInvalid,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
)
_HANDLE_ERRORS = (p11.ObjectHandleInvalid, p11.KeyHandleInvalid)


class _KeyVanished(Exception):
    """A key this process was signing with is no longer in the token (token re-initialised)."""


# --- per-process PKCS#11 state ------------------------------------------------------------

_LOCK = threading.RLock()


def _lock_before_fork() -> None:
    _LOCK.acquire()


def _unlock_after_fork_in_parent() -> None:
    _LOCK.release()


def _new_lock_in_child() -> None:
    # The child has one thread; a fresh lock cannot be left held by a thread that is gone.
    global _LOCK
    _LOCK = threading.RLock()


# Fork only between PKCS#11 calls, so no child inherits a library caught mid-call.
os.register_at_fork(
    before=_lock_before_fork,
    after_in_parent=_unlock_after_fork_in_parent,
    after_in_child=_new_lock_in_child,
)


class _Connection:
    """This process's session on one token, with the key handles found through it."""

    def __init__(self, token: Any, session: Any, logged_in: bool) -> None:
        self.token = token
        self.session = session
        self.logged_in = logged_in
        self.keys: dict[tuple[bytes | None, str | None], Any] = {}


class _Module:
    """One loaded PKCS#11 library and its sessions, in one process."""

    def __init__(self, path: str, lib: Any) -> None:
        self.path = path
        self.lib = lib
        self.connections: dict[TokenSelector, _Connection] = {}


class _ProcessState:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.modules: dict[str, _Module] = {}
        self.lost: set[TokenSelector] = set()


_state = _ProcessState()


def _modules() -> dict[str, _Module]:
    """This process's libraries. State inherited over fork is unloaded first: the parent's
    sessions and login are not ours, and python-pkcs11 would hand back its cached library."""
    global _state
    if _state.pid != os.getpid():
        inherited = _state
        _state = _ProcessState()
        for path in inherited.modules:
            pkcs11.unload(path)
    return _state.modules


def _drop_module(path: str) -> None:
    """Forget a library's sessions and handles and finalise it (C_Finalize closes sessions)."""
    module = _modules().pop(path, None)
    if module is None:
        return
    module.connections.clear()
    pkcs11.unload(path)


def finalize_process() -> None:
    """Finalise every PKCS#11 library this process loaded (e.g. from gunicorn `worker_exit`).

    Stores stay usable: their next call loads the library again.
    """
    with _LOCK:
        for path in list(_modules()):
            _drop_module(path)


def _load(path: str) -> tuple[_Module, bool]:
    """The loaded library for `path`, and whether it was loaded just now."""
    modules = _modules()
    module = modules.get(path)
    if module is not None:
        return module, False
    try:
        lib = pkcs11.lib(path)
    except p11.PKCS11Error as exc:
        pkcs11.unload(path)
        hint = " (is SOFTHSM2_CONF set and readable?)" if "softhsm" in path else ""
        message = f"cannot load PKCS#11 module {path}: {_reason(exc)}{hint}"
        if isinstance(exc, _LOST_ERRORS):  # e.g. a network HSM that is down right now
            raise KeyStoreUnavailableError(message) from None
        raise KeyStoreError(message) from None
    module = modules[path] = _Module(path, lib)
    return module, True


def _find_token(lib: Any, selector: TokenSelector) -> Any | None:
    """The token the selector names, skipping slots that fail to answer."""
    matches = []
    for slot in lib.get_slots(token_present=True):
        if selector.kind == "slot-id" and str(slot.slot_id) != selector.value:
            continue
        try:
            token = slot.get_token()
        except p11.PKCS11Error:
            continue
        if selector.kind == "token" and token.label != selector.value:
            continue
        if selector.kind == "serial" and token.serial.decode("ascii", "replace") != selector.value:
            continue
        matches.append(token)
    if len(matches) > 1:
        raise KeyStoreError(f"{len(matches)} PKCS#11 tokens match {selector.describe()}")
    return matches[0] if matches else None


def _open_session(token: Any, selector: TokenSelector, pin: str | None) -> Any:
    try:
        if pin is None:
            return token.open(rw=True)
        return token.open(rw=True, user_pin=pin)
    except p11.UserAlreadyLoggedIn:
        return token.open(rw=True)  # login is per token: another session here already did it
    except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
        raise WrongPasswordError(f"wrong PIN for PKCS#11 token {selector.describe()}") from None
    except p11.PinLocked:
        raise KeyStoreError(f"the PIN of PKCS#11 token {selector.describe()} is locked") from None


def _connect(selector: TokenSelector, pin: str | None) -> _Connection:
    """This process's session on the token, opened (and logged in) on first use."""
    module, fresh = _load(selector.module)
    conn = module.connections.get(selector)
    if conn is not None and (conn.logged_in or pin is None):
        return conn
    try:
        token = _find_token(module.lib, selector)
        if token is None and not fresh:
            # Libraries such as SoftHSM2 see only the tokens present at C_Initialize.
            _drop_module(selector.module)
            module, _ = _load(selector.module)
            token = _find_token(module.lib, selector)
        if token is None:
            raise p11.NoSuchToken(f"no token with {selector.describe()}")
        session = _open_session(token, selector, pin)
    except BaseException:
        _drop_module(selector.module)  # also closes a session left open by a failed login
        raise
    module.connections[selector] = _Connection(token, session, pin is not None)
    if selector in _state.lost:
        _state.lost.discard(selector)
        log.warning("PKCS#11 session to token %s reopened", selector.describe())
    return module.connections[selector]


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


T = TypeVar("T")


def _run(selector: TokenSelector, pin: str | None, work: Callable[[_Connection], T]) -> T:
    """Run `work` on the token's session under the process lock, turning a lost token or
    session into KeyStoreUnavailableError (after dropping the state so the next call reopens)
    and any other PKCS#11 error into a one-line KeyStoreError."""
    with _LOCK:
        try:
            return work(_connect(selector, pin))
        except _KeyVanished as exc:
            _lose(selector, str(exc))
        except p11.PKCS11Error as exc:
            not_logged_in = isinstance(exc, p11.UserNotLoggedIn)
            if not_logged_in and pin is None:
                raise KeyStoreError(
                    f"PKCS#11 token {selector.describe()} needs a login: "
                    "give pin-value or pin-source"
                ) from None
            if not_logged_in or isinstance(exc, _LOST_ERRORS) or type(exc) is p11.PKCS11Error:
                _lose(selector, _reason(exc))
            raise KeyStoreError(
                f"PKCS#11 error on token {selector.describe()}: {_reason(exc)}"
            ) from None


def _lose(selector: TokenSelector, reason: str) -> NoReturn:
    """Drop the library state after a lost session and raise the 503 error. The warning is
    logged once per outage; further failed reopen attempts only at debug level."""
    _drop_module(selector.module)
    already = selector in _state.lost
    _state.lost.add(selector)
    log.log(
        logging.DEBUG if already else logging.WARNING,
        "PKCS#11 session lost (%s, token %s, module %s); will reopen on next use",
        reason,
        selector.describe(),
        selector.module,
    )
    raise KeyStoreUnavailableError(
        f"PKCS#11 token {selector.describe()} is unavailable ({reason}); try again"
    ) from None


# --- objects in a token -------------------------------------------------------------------


def _template(key_id: bytes | None, label: str | None, cls: ObjectClass) -> dict[Attribute, Any]:
    attrs: dict[Attribute, Any] = {Attribute.CLASS: cls}
    if key_id is not None:
        attrs[Attribute.ID] = key_id
    if label is not None:
        attrs[Attribute.LABEL] = label
    return attrs


def _find(
    conn: _Connection, key_id: bytes | None, label: str | None, cls: ObjectClass
) -> list[Any]:
    return list(conn.session.get_objects(_template(key_id, label, cls)))


def _private(conn: _Connection, ref: KeyRef) -> Any:
    """The private key object (cached per session); KeyNotFoundError if the token has none."""
    cache_key = (ref.id, ref.label)
    cached = conn.keys.get(cache_key)
    if cached is not None:
        return cached
    found = _find(conn, ref.id, ref.label, ObjectClass.PRIVATE_KEY)
    if not found:
        conn.token.slot.get_token()  # a vanished token finds nothing: make it raise instead
        hint = "" if conn.logged_in else " (no PIN given: private keys are hidden until login)"
        raise KeyNotFoundError(f"{ref.describe()} not found{hint}")
    if len(found) > 1:
        raise KeyStoreError(f"{len(found)} keys match {ref.describe()}; give both id and object")
    conn.keys[cache_key] = found[0]
    return found[0]


def _unwrap_octets(data: bytes) -> bytes | None:
    """The contents of a DER OCTET STRING spanning `data`, else None (EC_POINT may be either)."""
    try:
        tag, value, end = der.read_tlv(data)
    except der.DERError:
        return None
    return value if tag == der.TAG_OCTET_STRING and end == len(data) else None


def _oid_of(params: bytes) -> str:
    try:
        tag, value, _ = der.read_tlv(params)
        if tag == der.TAG_OID:
            return der.read_oid(value)
    except der.DERError:
        pass
    if params.endswith(b"edwards25519"):  # PKCS#11 3.0 also allows a PrintableString name
        return _ED25519_OID
    raise KeyStoreError("unsupported EC parameters on the token key")


def _ec_public(params: bytes, point: bytes) -> ec.EllipticCurvePublicKey:
    curve = _CURVE_OIDS.get(_oid_of(params))
    if curve is None:
        raise KeyStoreError(f"unsupported curve {_oid_of(params)} on the token key")
    inner = _unwrap_octets(point)
    for candidate in (inner, point):
        if candidate is None:
            continue
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve(), candidate)
        except ValueError:
            continue
    raise KeyStoreError("the token key's EC point is malformed")


def _ed25519_public(point: bytes) -> ed25519.Ed25519PublicKey:
    raw = point if len(point) == 32 else _unwrap_octets(point)
    if raw is None or len(raw) != 32:
        raise KeyStoreError("the token key's Ed25519 point is malformed")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def _public_object(conn: _Connection, private: Any, what: str) -> Any:
    """The public key object paired with `private` (same CKA_ID, else same label)."""
    key_id, label = private[Attribute.ID], private[Attribute.LABEL]
    for attrs in ((key_id or None, label or None), (key_id or None, None)):
        if attrs == (None, None):
            continue
        found = _find(conn, *attrs, ObjectClass.PUBLIC_KEY)
        if len(found) == 1:
            return found[0]
    raise KeyStoreError(f"{what}: no single public key object pairs with it in the token")


def _public_key(conn: _Connection, private: Any, what: str) -> PublicKey:
    key_type = private[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        modulus = int.from_bytes(private[Attribute.MODULUS], "big")
        exponent = int.from_bytes(private[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    if key_type == KeyType.EC:
        public = _public_object(conn, private, what)
        return _ec_public(public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])
    if key_type == KeyType.EC_EDWARDS:
        public = _public_object(conn, private, what)
        if _oid_of(public[Attribute.EC_PARAMS]) != _ED25519_OID:
            raise KeyStoreError(f"{what}: only Ed25519 Edwards keys are supported")
        return _ed25519_public(public[Attribute.EC_POINT])
    raise KeyStoreError(f"{what}: key type {key_type!r} cannot sign certificates here")


def _describe_type(private: Any) -> str:
    """ "EC P-256", "RSA 3072", "Ed25519"...; a key this store cannot read still gets a row."""
    try:
        return _key_type_name(private)
    except (KeyStoreError, p11.AttributeTypeInvalid, p11.AttributeSensitive):
        return "unknown"


def _key_type_name(private: Any) -> str:
    key_type = private[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        return f"RSA {int.from_bytes(private[Attribute.MODULUS], 'big').bit_length()}"
    if key_type == KeyType.EC:
        oid = _oid_of(private[Attribute.EC_PARAMS])
        names = {v: k for k, v in _CURVE_BY_NAME.items()}
        return f"EC {names.get(oid, oid)}"
    if key_type == KeyType.EC_EDWARDS:
        return "Ed25519" if _oid_of(private[Attribute.EC_PARAMS]) == _ED25519_OID else "EdDSA"
    return str(getattr(key_type, "name", key_type))


def key_uri(key_id: bytes | None, label: str | None) -> str:
    """The key URI for ca.json `key` (token and PIN come from `kms.uri`)."""
    parts = []
    if key_id:
        parts.append(f"id={key_id.hex()}")
    if label:
        parts.append(f"object={quote(label, safe='-._~')}")
    return "pkcs11:" + ";".join(parts)


# --- URIs ---------------------------------------------------------------------------------


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

    def _run(self, token: TokenSelector, work: Callable[[_Connection], T]) -> T:
        if self._closed:
            raise KeyStoreError("the key store is closed")
        return _run(token, self._pins.get(token, self._pin), work)

    # -- KeyStore

    def create_key(self, name: str, spec: KeySpec, *, overwrite: bool = False) -> PublicKey:
        """Generate the pair in the token: private half sensitive, never extractable."""
        ref = self.resolve(name)
        if ref.id is None or ref.label is None:
            raise KeyStoreError("creating a pkcs11 key needs both id and object in its URI")
        key_id, label = ref.id, ref.label

        def work(conn: _Connection) -> PublicKey:
            self._make_room(conn, ref, overwrite)
            _, private = _generate(conn.session, spec, key_id, label)
            conn.keys.clear()
            return _public_key(conn, private, ref.describe())

        with _LOCK:
            self._signers.clear()
            return self._run(ref.token, work)

    def _make_room(self, conn: _Connection, ref: KeyRef, overwrite: bool) -> None:
        """Refuse to shadow an existing key; with `overwrite`, destroy the old pair first
        (only a pair with this exact id and label: another key sharing one of them stays)."""
        existing: dict[int, Any] = {}
        for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            for obj in _find(conn, ref.id, None, cls) + _find(conn, None, ref.label, cls):
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
        with _LOCK:
            cached = self._signers.get(ref)
            if cached is not None:
                return cached

            def work(conn: _Connection) -> SigningKey:
                public = _public_key(conn, _private(conn, ref), ref.describe())
                return make_signer(self, ref, public)

            signer = self._run(ref.token, work)
            self._signers[ref] = signer
            return signer

    def sign_raw(
        self, key: KeyRef, mechanism: Mechanism, data: bytes, param: Any | None = None
    ) -> bytes:
        """One signature in the token (used by the key objects)."""

        def work(conn: _Connection) -> bytes:
            for retry in (False, True):
                try:
                    private = _private(conn, key)
                except KeyNotFoundError:
                    # It was there when the signer was made: the token was re-initialised.
                    raise _KeyVanished(f"{key.describe()} is no longer in the token") from None
                try:
                    return bytes(private.sign(data, mechanism=mechanism, mechanism_param=param))
                except _HANDLE_ERRORS:
                    if retry:
                        raise
                    conn.keys.pop((key.id, key.label), None)  # stale: find it again, once
            raise AssertionError("unreachable")

        return self._run(key.token, work)

    def list_keys(self) -> list[dict[str, str]]:
        """The store token's private keys, for `step kms`-style listings."""
        token = self._token(None, None)
        self._pins.setdefault(token, self._pin)

        def work(conn: _Connection) -> list[dict[str, str]]:
            rows = []
            for private in _find(conn, None, None, ObjectClass.PRIVATE_KEY):
                key_id = private[Attribute.ID] or b""
                label = private[Attribute.LABEL] or ""
                rows.append(
                    {
                        "label": label,
                        "id": key_id.hex(),
                        "type": _describe_type(private),
                        "uri": key_uri(key_id, label),
                    }
                )
            return sorted(rows, key=lambda row: (row["id"], row["label"]))

        return self._run(token, work)

    def close(self) -> None:
        """Forget this store's signers; the process's session stays for other stores."""
        with _LOCK:
            self._signers.clear()
            self._closed = True


def _generate(session: Any, spec: KeySpec, key_id: bytes, label: str) -> tuple[Any, Any]:
    caps = MechanismFlag.SIGN | MechanismFlag.VERIFY
    private_template = {
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    public_template: dict[Attribute, Any] = {Attribute.PRIVATE: False}
    key_length: int | None = None
    if spec.kty == "EC":
        key_type = KeyType.EC
        public_template[Attribute.EC_PARAMS] = der.object_identifier(_CURVE_BY_NAME[spec.curve])
    elif spec.kty == "RSA":
        key_type = KeyType.RSA
        key_length = spec.size
    else:
        key_type = KeyType.EC_EDWARDS
        public_template[Attribute.EC_PARAMS] = der.object_identifier(_ED25519_OID)
    public, private = session.generate_keypair(
        key_type,
        key_length,
        id=key_id,
        label=label,
        store=True,
        capabilities=caps,
        public_template=public_template,
        private_template=private_template,
    )
    return public, private
