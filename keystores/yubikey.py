"""The YubiKey PIV key store (yubikey-manager's `yubikit.piv`), with step's `yubikey:` URIs.

Key and store URIs (attributes may sit in the path or the query, as step's):

    yubikey:slot-id=9c                          the key in slot 9c (9a 9c 9d 9e 82..95)
    yubikey:serial=12345678;slot-id=9a          pick one of several YubiKeys by serial
    yubikey:slot-id=9c?pin-value=123456         PIN inline (or pin-source=/path/to/file)
    yubikey:management-key=<hex>                management key for creating keys and storing
    yubikey:management-key-source=/path         certificates (hex in a file); the factory
    yubikey:allow-default-management-key=true   default key only with this flag (and a warning)
    yubikey:slot-id=9c;pin-policy=once;touch-policy=never   policies for a key being created

`reader=<text>` takes the PC/SC readers whose name contains the text (any reader: an NFC
reader, a virtual one); without it, readers named like a YubiKey ("Yubico YubiKey ..."). A
bare slot id (`9c`) or an empty name (slot 9c, step's default) also name a key. With several
YubiKeys present and no `serial=`, the store refuses to guess.

PIN: from `pin-value`/`pin-source` of the store URI (or of the key name), else the `password`
given to `open_keystore`, else, only when the card reports its PIN is still the factory
default, that default (with a warning). The PIN is verified once per session for keys whose
policy is "once" and before every operation for "always" (and whenever the card cannot report
the policy). A PIN the card refuses is never sent again by this store: the error says how many
tries are left. The store never sends a PIN when the card has fewer than two tries left, so a
PIN is never blocked through Stepstone.

Every card operation runs under one process-wide lock and, per YubiKey, an advisory file
lock (`$STEPSTONE_YUBIKEY_LOCK_DIR`, default the temporary directory), so several threads
and processes (gunicorn workers) take turns.

Device discovery goes through a connection provider: by default PC/SC readers named like a
YubiKey (ykman's `list_readers`, shared access). `register_connection_provider` replaces it
in-process; the test-only environment variable `STEPSTONE_YUBIKEY_TEST_PROVIDER=module:callable`
makes a process (e.g. a `step-ca` started by tests) load a provider, such as the PIV emulator
in tests/piv_emulator.py. A provider returns `(reader name, open connection)` pairs.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from yubikit.core import BadResponseError, CommandError, InvalidPinError, NotSupportedError, Tlv
from yubikit.core.smartcard import SW, ApduError, SmartCardConnection
from yubikit.piv import (
    DEFAULT_MANAGEMENT_KEY,
    KEY_TYPE,
    OBJECT_ID,
    PIN_POLICY,
    SLOT,
    TOUCH_POLICY,
    PivSession,
)

from keystores.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeySpec,
    KeyStore,
    KeyStoreError,
    PublicKey,
    SigningKey,
    WrongPasswordError,
)
from keystores.uri import KeyURI, file_uri_path, split_scheme
from keystores.yubikey_signers import SlotInfo, make_signer

__all__ = [
    "ENV_LOCK_DIR",
    "ENV_TEST_PROVIDER",
    "Attestation",
    "ConnectionProvider",
    "Reader",
    "YubiKeyStore",
    "attestation_serial",
    "parse_attestation",
    "parse_slot",
    "register_connection_provider",
]

logger = logging.getLogger(__name__)

SCHEME = "yubikey"
ENV_TEST_PROVIDER = "STEPSTONE_YUBIKEY_TEST_PROVIDER"
ENV_LOCK_DIR = "STEPSTONE_YUBIKEY_LOCK_DIR"
DEFAULT_PIN = "123456"
YUBIKEY_READER = "yubico yubikey"

#: A reader: its name and a function that opens a connection to the card in it.
Reader = tuple[str, Callable[[], SmartCardConnection]]
#: Lists the readers that may hold a YubiKey.
ConnectionProvider = Callable[[], Sequence[Reader]]

_T = TypeVar("_T")

KEY_SLOTS: dict[str, SLOT] = {f"{int(s):02x}": s for s in SLOT if s != SLOT.ATTESTATION}
_PIN_POLICIES = {"never": PIN_POLICY.NEVER, "once": PIN_POLICY.ONCE, "always": PIN_POLICY.ALWAYS}
_TOUCH_POLICIES = {
    "never": TOUCH_POLICY.NEVER,
    "always": TOUCH_POLICY.ALWAYS,
    "cached": TOUCH_POLICY.CACHED,
}
_TRUE = {"true", "1", "yes"}
_OID_YUBICO_FIRMWARE = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.3")
_OID_YUBICO_SERIAL = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.7")
_OID_YUBICO_POLICY = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.8")
_OID_YUBICO_FORM_FACTOR = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.9")

# --- device discovery --------------------------------------------------------------------

_provider: ConnectionProvider | None = None


def register_connection_provider(provider: ConnectionProvider | None) -> ConnectionProvider | None:
    """Use `provider` to find YubiKeys in this process (None: back to PC/SC).

    Returns the provider it replaces, so a caller can put it back.
    """
    global _provider
    previous, _provider = _provider, provider
    return previous


def _load_provider(target: str) -> ConnectionProvider:
    module_name, _, attr = target.partition(":")
    try:
        provider = getattr(importlib.import_module(module_name), attr or "provider")
    except (ImportError, AttributeError) as exc:
        raise KeyStoreError(f"{ENV_TEST_PROVIDER}={target} cannot be loaded: {exc}") from None
    if not callable(provider):
        raise KeyStoreError(f"{ENV_TEST_PROVIDER}={target} is not callable")
    return cast(ConnectionProvider, provider)


def _pcsc_readers() -> list[Reader]:
    try:
        from ykman.pcsc import ScardSmartCardConnection, list_readers
    except ImportError as exc:  # pyscard or yubikey-manager missing
        raise KeyStoreError(f"YubiKey support is not installed: {exc}") from None
    try:
        readers = list_readers()  # type: ignore[no-untyped-call]
    except Exception as exc:  # pyscard raises its own exception types; any means no PC/SC
        raise KeyStoreError(f"cannot list smart card readers (is pcscd running?): {exc}") from None

    def opener(reader: object) -> Callable[[], SmartCardConnection]:
        # Shared access, so other processes (gunicorn workers) can use the key in turn.
        def connect() -> SmartCardConnection:
            connection = reader.createConnection()  # type: ignore[attr-defined]
            return ScardSmartCardConnection(connection)  # type: ignore[no-untyped-call]

        return connect

    return [(str(r), opener(r)) for r in readers]


def _readers(name_filter: str | None) -> list[Reader]:
    """The readers whose name contains `name_filter` (default: PC/SC readers named like a
    YubiKey; a provider's readers are all taken)."""
    if _provider is not None:
        found = list(_provider())
    elif target := os.environ.get(ENV_TEST_PROVIDER):
        logger.warning(
            "%s=%s: using a test connection provider, not a real YubiKey", ENV_TEST_PROVIDER, target
        )
        found = list(_load_provider(target)())
    else:
        found = _pcsc_readers()
        name_filter = name_filter or YUBIKEY_READER
    if name_filter is None:
        return found
    return [r for r in found if name_filter.lower() in r[0].lower()]


# --- locking -----------------------------------------------------------------------------

_LOCK = threading.RLock()
_file_locks: dict[tuple[int, int], list[int]] = {}  # (pid, serial) -> [fd or -1, depth]


def _after_fork_in_child() -> None:
    # A lock another thread held when the process forked would stay locked in the child.
    global _LOCK
    _LOCK = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _lock_fd(serial: int) -> int:
    directory = os.environ.get(ENV_LOCK_DIR) or tempfile.gettempdir()
    path = os.path.join(directory, f"stepstone-yubikey-{os.getuid()}-{serial}.lock")
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        logger.warning("cannot open lock file %s (%s): YubiKey use is not serialised", path, exc)
        return -1


@contextlib.contextmanager
def _device_lock(serial: int | None) -> Iterator[None]:
    """The process-wide lock, plus an advisory file lock per YubiKey across processes."""
    with _LOCK:
        if serial is None:
            yield
            return
        key = (os.getpid(), serial)
        entry = _file_locks.get(key)
        if entry is None:
            entry = _file_locks[key] = [_lock_fd(serial), 0]
        fd = entry[0]
        if entry[1] == 0 and fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_EX)
        entry[1] += 1
        try:
            yield
        finally:
            entry[1] -= 1
            if entry[1] == 0 and fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_UN)


# --- URIs --------------------------------------------------------------------------------


def parse_slot(name: str | int | SLOT, *, allow_attestation: bool = False) -> SLOT:
    """The slot a key name means: `yubikey:slot-id=9c`, `9c`, or "" (step's default, 9c)."""
    if isinstance(name, int):
        try:
            slot = SLOT(name)
        except ValueError:
            raise KeyStoreError(f"unsupported YubiKey slot {name:#x}") from None
    else:
        text = name.strip()
        if split_scheme(text)[0] is not None and not text.lower().startswith("0x"):
            found = KeyURI.parse(text, SCHEME).get("slot-id")
            if not found:
                raise KeyStoreError("yubikey key URI has no slot-id")
            text = found
        text = (text or "9c").lower().removeprefix("0x")
        if text == "f9":
            if allow_attestation:
                return SLOT.ATTESTATION
            raise KeyStoreError("slot f9 holds the attestation key; it cannot be used here")
        if text not in KEY_SLOTS:
            supported = ", ".join(KEY_SLOTS)
            raise KeyStoreError(f"unsupported YubiKey slot-id {text!r} (use one of {supported})")
        slot = KEY_SLOTS[text]
    if slot == SLOT.ATTESTATION and not allow_attestation:
        raise KeyStoreError("slot f9 holds the attestation key; it cannot be used here")
    return slot


def _key_uri(name: str) -> KeyURI | None:
    return KeyURI.parse(name, SCHEME) if split_scheme(name.strip())[0] == SCHEME else None


def _parse_serial(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value, 10)
    except ValueError:
        raise KeyStoreError(f"YubiKey serial must be a decimal number, not {value!r}") from None


def _parse_management_key(value: str, what: str) -> bytes:
    text = "".join(value.split())
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyStoreError(f"{what} is not hexadecimal") from None
    if len(key) not in (16, 24, 32):
        raise KeyStoreError(f"{what} must be 16, 24 or 32 bytes (3DES or AES), not {len(key)}")
    return key


def _read_secret_file(source: str, base_dir: Path | None, what: str) -> str:
    path = Path(file_uri_path(source) if split_scheme(source)[0] == "file" else source)
    if base_dir is not None:
        path = base_dir / path
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise KeyStoreError(f"cannot read {what} {path}: {reason}") from None


def _policy(value: str | None, table: dict[str, _T], what: str) -> _T | None:
    if not value:
        return None
    found = table.get(value.lower())
    if found is None:
        raise KeyStoreError(f"unsupported {what} {value!r} (use {', '.join(table)})")
    return found


def _key_type(spec: KeySpec) -> KEY_TYPE:
    if spec.kty == "EC":
        if spec.curve == "P-256":
            return KEY_TYPE.ECCP256
        if spec.curve == "P-384":
            return KEY_TYPE.ECCP384
        raise KeyStoreError(f"a YubiKey has no {spec.curve} keys (use P-256 or P-384)")
    if spec.kty == "RSA":
        found = {2048: KEY_TYPE.RSA2048, 3072: KEY_TYPE.RSA3072, 4096: KEY_TYPE.RSA4096}
        if spec.size not in found:
            raise KeyStoreError(f"a YubiKey has no {spec.size}-bit RSA keys (use 2048)")
        return found[spec.size]
    return KEY_TYPE.ED25519


def _as_public_key(key: object, where: str) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return key
    raise KeyStoreError(f"{where} holds a {type(key).__name__}, which cannot sign")


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _extension_bytes(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def attestation_serial(cert: x509.Certificate) -> int | None:
    """The YubiKey serial number in an attestation certificate (Yubico's extension)."""
    data = _extension_bytes(cert, _OID_YUBICO_SERIAL)
    if data is None or len(data) < 3 or data[0] != 0x02 or data[1] != len(data) - 2:
        return None
    return int.from_bytes(data[2:], "big")


@dataclass(frozen=True)
class Attestation:
    """What Yubico's extensions in a PIV attestation certificate say about the key."""

    serial: int | None
    firmware: str | None
    pin_policy: str | None
    touch_policy: str | None
    form_factor: int | None


def parse_attestation(cert: x509.Certificate) -> Attestation:
    """Read the serial, firmware, policies and form factor from an attestation certificate."""
    firmware = _extension_bytes(cert, _OID_YUBICO_FIRMWARE)
    policy = _extension_bytes(cert, _OID_YUBICO_POLICY)
    form = _extension_bytes(cert, _OID_YUBICO_FORM_FACTOR)

    def name(table: type[PIN_POLICY] | type[TOUCH_POLICY], index: int) -> str | None:
        if policy is None or len(policy) <= index:
            return None
        try:
            return table(policy[index]).name.lower()
        except ValueError:
            return str(policy[index])

    return Attestation(
        serial=attestation_serial(cert),
        firmware=".".join(str(b) for b in firmware) if firmware and len(firmware) == 3 else None,
        pin_policy=name(PIN_POLICY, 0),
        touch_policy=name(TOUCH_POLICY, 1),
        form_factor=form[0] if form else None,
    )


# --- the store ---------------------------------------------------------------------------


@dataclass
class _Device:
    connection: SmartCardConnection
    piv: PivSession
    serial: int | None
    reader: str
    pid: int

    @property
    def label(self) -> str:
        return f"YubiKey {self.serial}" if self.serial is not None else f"YubiKey in {self.reader}"


class YubiKeyStore(KeyStore):
    """Keys in the PIV slots of one YubiKey. The card is opened on first use."""

    def __init__(
        self,
        *,
        serial: int | None = None,
        reader: str | None = None,
        pin: str | None = None,
        management_key: bytes | None = None,
        allow_default_management_key: bool = False,
        pin_policy: PIN_POLICY | None = None,
        touch_policy: TOUCH_POLICY | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self._serial = serial
        self._reader = reader
        self._pin = pin
        self._key_pin: str | None = None
        self._management_key = management_key
        self._allow_default_mgm = allow_default_management_key
        self._pin_policy = pin_policy
        self._touch_policy = touch_policy
        self._base_dir = base_dir
        self._device: _Device | None = None
        self._closed = False
        self._reset_session()

    def _reset_session(self) -> None:
        self._pin_verified = False
        self._pin_good: str | None = None
        self._pin_error: str | None = None
        self._mgm_authenticated = False

    @classmethod
    def from_uri(cls, uri: str, *, password: bytes | None, base_dir: Path | None) -> Self:
        parsed = KeyURI.parse(uri, SCHEME)
        pin = parsed.pin(base_dir)
        if not pin and password:
            pin = password.decode("utf-8", "replace")
        management_key = None
        if value := parsed.get("management-key"):
            management_key = _parse_management_key(value, "management-key")
        elif source := parsed.get("management-key-source"):
            text = _read_secret_file(source, base_dir, "management-key-source")
            management_key = _parse_management_key(text, f"the management key in {source}")
        allow_default = (parsed.get("allow-default-management-key") or "").lower() in _TRUE
        return cls(
            serial=_parse_serial(parsed.get("serial")),
            reader=parsed.get("reader") or None,
            pin=pin or None,
            management_key=management_key,
            allow_default_management_key=allow_default,
            pin_policy=_policy(parsed.get("pin-policy"), _PIN_POLICIES, "pin-policy"),
            touch_policy=_policy(parsed.get("touch-policy"), _TOUCH_POLICIES, "touch-policy"),
            base_dir=base_dir,
        )

    # --- opening the card ---

    def _check_open(self) -> None:
        if self._closed:
            raise KeyStoreError("the key store is closed")

    def _find_device(self) -> _Device:
        readers = _readers(self._reader)
        if not readers:
            where = f" in a reader named like {self._reader!r}" if self._reader else ""
            raise KeyStoreError(f"no YubiKey found{where}: is it plugged in (and pcscd running)?")
        seen: list[str] = []
        for name, connect in readers:
            try:
                connection = connect()
            except Exception as exc:  # each reader library has its own errors
                logger.info("cannot connect to %s: %s", name, exc)
                seen.append(f"{name} (cannot connect: {exc})")
                continue
            try:
                piv = PivSession(connection)
                serial = self._read_serial(piv)
            except Exception as exc:  # not a PIV card, or gone
                connection.close()
                seen.append(f"{name} (no PIV application: {exc})")
                continue
            device = _Device(connection, piv, serial, name, os.getpid())
            if self._serial is None and len(readers) == 1:
                return device
            if self._serial is not None and serial == self._serial:
                return device
            connection.close()
            seen.append(str(serial) if serial is not None else name)
        if self._serial is not None:
            raise KeyNotFoundError(
                f"no YubiKey with serial {self._serial} (found: {', '.join(seen)})"
            )
        raise KeyStoreError(
            f"several YubiKeys are present ({', '.join(seen)}): choose one with serial= in the URI"
        )

    @staticmethod
    def _read_serial(piv: PivSession) -> int | None:
        try:
            return piv.get_serial()
        except (NotSupportedError, ApduError):
            pass
        try:  # older keys: the serial is in the attestation of slot 9a, as step reads it
            return attestation_serial(piv.attest_key(SLOT.AUTHENTICATION))
        except (NotSupportedError, CommandError, ValueError):
            return None

    @contextlib.contextmanager
    def _card(self) -> Iterator[tuple[PivSession, _Device]]:
        """The card session, under the process lock and the YubiKey's file lock."""
        self._check_open()
        with _LOCK:
            device = self._device
            if device is None or device.pid != os.getpid():
                # First use, or a forked child: the parent's connection is not ours to use.
                self._reset_session()
                device = self._device = self._find_device()
                logger.info(
                    "opened %s (PIV %s) in %s", device.label, device.piv.version, device.reader
                )
            with _device_lock(device.serial):
                yield device.piv, device

    @property
    def serial(self) -> int | None:
        """The serial number of the YubiKey in use (opens it)."""
        with self._card() as (_, device):
            return device.serial

    @property
    def firmware(self) -> str:
        """The PIV application version, e.g. "5.7.2" (opens the YubiKey)."""
        with self._card() as (piv, _):
            return str(piv.version)

    # --- PIN and management key ---

    def _note_key_name(
        self, name: str, *, allow_attestation: bool = False
    ) -> tuple[SLOT, KeyURI | None]:
        uri = _key_uri(name)
        if uri is not None:
            serial = _parse_serial(uri.get("serial"))
            if serial is not None and self._serial is not None and serial != self._serial:
                raise KeyStoreError(
                    f"the key URI names YubiKey {serial}, but the store uses {self._serial}"
                )
            if serial is not None and self._serial is None and self._device is None:
                self._serial = serial
            key_pin = uri.pin(self._base_dir)
            if key_pin:
                self._key_pin = key_pin
        return parse_slot(name, allow_attestation=allow_attestation), uri

    def _choose_pin(self, piv: PivSession, device: _Device, slot: SLOT) -> str:
        pin = self._pin or self._key_pin
        if pin:
            return pin
        try:
            default = piv.get_pin_metadata().default_value
        except NotSupportedError:
            default = False
        if default:
            logger.warning(
                "%s still has the factory default PIN; using it (change it with "
                "`ykman piv access change-pin`)",
                device.label,
            )
            return DEFAULT_PIN
        raise WrongPasswordError(
            f"the key in {device.label} slot {int(slot):02x} needs the PIN: give pin-value or "
            "pin-source in the key URI"
        )

    def _verify_pin(self, piv: PivSession, device: _Device, slot: SLOT) -> None:
        if self._pin_error is not None:  # never send a PIN the card has refused
            raise WrongPasswordError(self._pin_error)
        pin = self._choose_pin(piv, device, slot)
        if not 6 <= len(pin.encode()) <= 8:
            raise WrongPasswordError(
                f"a YubiKey PIN has 6 to 8 characters; not sending this one to {device.label}"
            )
        left = piv.get_pin_attempts()
        if left == 0:
            raise WrongPasswordError(
                f"the PIN of {device.label} is blocked: unblock it with the PUK "
                "(`ykman piv access unblock-pin`)"
            )
        if left == 1:
            raise WrongPasswordError(
                f"the PIN of {device.label} has 1 try left: Stepstone will not risk blocking it; "
                "enter it once with ykman (e.g. `ykman piv access change-pin`) to reset the count"
            )
        try:
            piv.verify_pin(pin)
        except InvalidPinError as exc:
            left = exc.attempts_remaining
            message = f"wrong PIN for {device.label}: {left} {'try' if left == 1 else 'tries'} left"
            if left == 0:
                message += "; the PIN is blocked: unblock it with the PUK"
            self._pin_error = message
            self._pin_verified = False
            raise WrongPasswordError(message) from None
        except ApduError as exc:
            raise self._error(device, "PIN verification", exc) from None
        self._pin_good = pin
        self._pin_verified = True

    def _authenticate(self, piv: PivSession, device: _Device) -> None:
        if self._mgm_authenticated:
            return
        key = self._management_key
        if key is None:
            if not self._allow_default_mgm:
                raise KeyStoreError(
                    f"{device.label}: changing keys or certificates needs the management key: "
                    "give management-key=<hex> or management-key-source=<file> (the factory "
                    "default only with allow-default-management-key=true)"
                )
            logger.warning(
                "%s: using the factory default management key (allow-default-management-key): "
                "anyone holding the YubiKey can replace its keys",
                device.label,
            )
            key = DEFAULT_MANAGEMENT_KEY
        key_type = piv.management_key_type
        if len(key) != key_type.key_len:
            raise KeyStoreError(
                f"{device.label} has a {key_type.name} management key ({key_type.key_len} "
                f"bytes); the key given has {len(key)} bytes"
            )
        try:
            piv.authenticate(key)
        except (ApduError, BadResponseError):
            raise KeyStoreError(f"{device.label} rejected the management key") from None
        self._mgm_authenticated = True

    # --- slots ---

    def _slot_info(self, piv: PivSession, device: _Device, slot: SLOT) -> SlotInfo:
        where = f"{device.label} slot {int(slot):02x}"
        try:
            metadata = piv.get_slot_metadata(slot)
        except NotSupportedError:
            public = self._public_without_metadata(piv, device, slot)
            return SlotInfo(slot, KEY_TYPE.from_public_key(public), None, None, public)
        except ApduError as exc:
            if exc.sw == SW.REFERENCE_DATA_NOT_FOUND:
                raise KeyNotFoundError(f"no key in {where}") from None
            raise self._error(device, "reading the slot", exc) from None
        public = _as_public_key(metadata.public_key, where)
        return SlotInfo(slot, metadata.key_type, metadata.pin_policy, metadata.touch_policy, public)

    def _public_without_metadata(self, piv: PivSession, device: _Device, slot: SLOT) -> PublicKey:
        """Before firmware 5.3: the attestation (keys made on the card), else the certificate."""
        where = f"{device.label} slot {int(slot):02x}"
        for read in (piv.attest_key, piv.get_certificate):
            try:
                return _as_public_key(read(slot).public_key(), where)
            except (CommandError, NotSupportedError, ValueError):
                continue
        raise KeyNotFoundError(f"no key in {where} (or, on this firmware, no certificate for it)")

    def _occupied(self, piv: PivSession, device: _Device, slot: SLOT) -> bool:
        try:
            self._slot_info(piv, device, slot)
        except KeyNotFoundError:
            return False
        return True

    def _error(self, device: _Device, what: str, exc: Exception) -> KeyStoreError:
        if isinstance(exc, ApduError):
            try:
                detail = SW(exc.sw).name.replace("_", " ").lower()
            except ValueError:
                detail = "error"
            return KeyStoreError(f"{device.label}: {what} failed (SW {exc.sw:04X}, {detail})")
        return KeyStoreError(f"{device.label}: {what} failed: {exc}")

    # --- KeyStore ---

    def create_key(
        self,
        name: str,
        spec: KeySpec,
        *,
        overwrite: bool = False,
        pin_policy: PIN_POLICY | None = None,
        touch_policy: TOUCH_POLICY | None = None,
    ) -> PublicKey:
        """Generate a key in the slot `name` names. Policies: the arguments, else the key
        URI's `pin-policy`/`touch-policy`, else the store URI's, else step's defaults
        (PIN "always", touch "never")."""
        slot, uri = self._note_key_name(name)
        key_type = _key_type(spec)
        if uri is not None:
            pin_policy = pin_policy or _policy(uri.get("pin-policy"), _PIN_POLICIES, "pin-policy")
            touch_policy = touch_policy or _policy(
                uri.get("touch-policy"), _TOUCH_POLICIES, "touch-policy"
            )
        pin_policy = pin_policy or self._pin_policy or PIN_POLICY.ALWAYS
        touch_policy = touch_policy or self._touch_policy or TOUCH_POLICY.NEVER
        with self._card() as (piv, device):
            if not overwrite and self._occupied(piv, device, slot):
                raise KeyExistsError(f"{device.label} slot {int(slot):02x} already holds a key")
            try:
                piv.check_key_support(key_type, pin_policy, touch_policy, True)
            except NotSupportedError as exc:
                raise KeyStoreError(
                    f"{device.label} (firmware {piv.version}) cannot generate {key_type.name} "
                    f"keys with these policies: {exc}"
                ) from None
            self._authenticate(piv, device)
            try:
                public = piv.generate_key(slot, key_type, pin_policy, touch_policy)
            except ApduError as exc:
                raise self._error(device, "key generation", exc) from None
            logger.info(
                "generated a %s key in %s slot %02x (PIN %s, touch %s)",
                key_type.name,
                device.label,
                int(slot),
                pin_policy.name.lower(),
                touch_policy.name.lower(),
            )
            return _as_public_key(public, f"{device.label} slot {int(slot):02x}")

    def public_key(self, name: str) -> PublicKey:
        slot, _ = self._note_key_name(name)
        with self._card() as (piv, device):
            return self._slot_info(piv, device, slot).public_key

    def signer(self, name: str) -> SigningKey:
        """A signer for the key in the slot. The PIN is checked now (unless the slot's policy
        is "never"), so a wrong PIN shows here and not at the first signature."""
        slot, _ = self._note_key_name(name)
        with self._card() as (piv, device):
            info = self._slot_info(piv, device, slot)
            if info.key_type == KEY_TYPE.X25519:
                raise KeyStoreError(f"{device.label} slot {int(slot):02x} holds an X25519 key")
            if info.pin_policy != PIN_POLICY.NEVER and not self._pin_verified:
                self._verify_pin(piv, device, slot)
        return make_signer(self, info)

    def close(self) -> None:
        with _LOCK:
            device, self._device = self._device, None
            if device is not None and device.pid == os.getpid():
                with contextlib.suppress(Exception):  # closing a card that is gone
                    device.connection.close()
            self._closed = True
            self._reset_session()

    # --- certificates and attestation ---

    def put_certificate(self, name: str | SLOT, certificate: x509.Certificate) -> None:
        """Store `certificate` in the slot's certificate object (needs the management key).

        Refused when the slot holds a key that does not match the certificate.
        """
        slot = self._slot_for(name)
        with self._card() as (piv, device):
            try:
                info = self._slot_info(piv, device, slot)
            except KeyNotFoundError:
                info = None
            public = certificate.public_key()
            if info is not None and (
                not isinstance(
                    public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
                )
                or _spki(info.public_key) != _spki(public)
            ):
                raise KeyStoreError(
                    f"the certificate does not match the key in {device.label} slot {int(slot):02x}"
                )
            self._authenticate(piv, device)
            size = len(certificate.public_bytes(Encoding.DER))
            try:
                piv.put_certificate(slot, certificate, compress=size > 2900)
            except ApduError as exc:
                raise self._error(device, "storing the certificate", exc) from None

    def get_certificate(self, name: str | SLOT) -> x509.Certificate:
        """The certificate stored for the slot (`f9`: the attestation certificate)."""
        slot = self._slot_for(name, allow_attestation=True)
        with self._card() as (piv, device):
            try:
                return piv.get_certificate(slot)
            except ApduError as exc:
                if exc.sw == SW.FILE_NOT_FOUND:
                    raise KeyNotFoundError(
                        f"no certificate in {device.label} slot {int(slot):02x}"
                    ) from None
                raise self._error(device, "reading the certificate", exc) from None
            except (BadResponseError, NotSupportedError) as exc:
                raise self._error(device, "reading the certificate", exc) from None

    def delete_certificate(self, name: str | SLOT) -> None:
        """Remove the slot's certificate (needs the management key)."""
        slot = self._slot_for(name)
        with self._card() as (piv, device):
            self._authenticate(piv, device)
            try:
                piv.put_object(OBJECT_ID.from_slot(slot))
            except ApduError as exc:
                raise self._error(device, "deleting the certificate", exc) from None

    def attest(self, name: str | SLOT) -> x509.Certificate:
        """The card's attestation that the slot's key was generated on it, signed by the
        attestation key in slot f9 (whose certificate `get_certificate("f9")` returns)."""
        slot = self._slot_for(name)
        with self._card() as (piv, device):
            try:
                return piv.attest_key(slot)
            except NotSupportedError as exc:
                raise KeyStoreError(f"{device.label} cannot attest keys: {exc}") from None
            except ApduError as exc:
                if exc.sw in (SW.INCORRECT_PARAMETERS, SW.REFERENCE_DATA_NOT_FOUND):
                    raise KeyStoreError(
                        f"{device.label} slot {int(slot):02x} has no key generated on the card "
                        "to attest (empty, or imported)"
                    ) from None
                raise self._error(device, "attestation", exc) from None

    def attestation_chain(self, name: str | SLOT) -> list[x509.Certificate]:
        """[attestation certificate, f9 attestation certificate]: verify up to Yubico's root."""
        return [self.attest(name), self.get_certificate(SLOT.ATTESTATION)]

    def _slot_for(self, name: str | SLOT, *, allow_attestation: bool = False) -> SLOT:
        if isinstance(name, str):
            return self._note_key_name(name, allow_attestation=allow_attestation)[0]
        return parse_slot(name, allow_attestation=allow_attestation)

    # --- private-key operations (the signers' side) ---

    def _use_key(self, info: SlotInfo, what: str, op: Callable[[PivSession], bytes]) -> bytes:
        with self._card() as (piv, device):
            policy = info.pin_policy
            if (
                policy == PIN_POLICY.ALWAYS
                or policy is None
                or (policy != PIN_POLICY.NEVER and not self._pin_verified)
            ):
                self._verify_pin(piv, device, info.slot)
            if info.touch_policy in (TOUCH_POLICY.ALWAYS, TOUCH_POLICY.CACHED):
                logger.warning("touch %s to use slot %02x", device.label, int(info.slot))
            try:
                return op(piv)
            except ApduError as exc:
                if (
                    exc.sw != SW.SECURITY_CONDITION_NOT_SATISFIED
                    or policy == PIN_POLICY.NEVER
                    or self._pin_good is None
                ):
                    raise self._error(device, what, exc) from None
            # The card no longer counts the PIN as verified (another program selected the
            # applet, or the card was reset): verify the PIN that worked, then try once more.
            logger.info("%s asked for the PIN again; verifying it", device.label)
            self._pin_verified = False
            self._verify_pin(piv, device, info.slot)
            try:
                return op(piv)
            except ApduError as exc:
                raise self._error(device, what, exc) from None

    def slot_sign(
        self,
        info: SlotInfo,
        message: bytes,
        hash_algorithm: hashes.HashAlgorithm | Prehashed | None,
        padding: AsymmetricPadding | None,
    ) -> bytes:
        algorithm = cast(hashes.HashAlgorithm | None, hash_algorithm)  # yubikit takes Prehashed
        return self._use_key(
            info,
            "signing",
            lambda piv: piv.sign(info.slot, info.key_type, message, algorithm, padding),
        )

    def slot_rsa_raw(self, info: SlotInfo, block: bytes) -> bytes:
        def op(piv: PivSession) -> bytes:
            data = Tlv(0x7C, Tlv(0x82) + Tlv(0x81, block))
            response = piv.protocol.send_apdu(0, 0x87, int(info.key_type), int(info.slot), data)
            return Tlv.unpack(0x82, Tlv.unpack(0x7C, response))

        return self._use_key(info, "signing", op)

    def slot_decrypt(self, info: SlotInfo, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        return self._use_key(
            info, "decryption", lambda piv: piv.decrypt(info.slot, ciphertext, padding)
        )

    def slot_exchange(self, info: SlotInfo, peer: ec.EllipticCurvePublicKey) -> bytes:
        return self._use_key(
            info, "key agreement", lambda piv: piv.calculate_secret(info.slot, peer)
        )
