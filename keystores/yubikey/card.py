"""One YubiKey's PIV session: finding the card, the PIN and management key, key operations.

`CardSession` finds its card (sharing the one connection per card this process holds, see
`registry`; reopened in a forked child), verifies the PIN as the slot's policy asks, and runs
every APDU under the locks of `keystores.yubikey.locking` and in a PC/SC transaction; a reset
or removal under it is handled by `recovery`.

PIN: from `pin-value`/`pin-source` of the store URI (or of the key name), else the `password`
given to `open_keystore`, else, only when the card reports its PIN is still the factory
default, that default (with a warning). The PIN is verified once per session for keys whose
policy is "once" and before every operation for "always" (and whenever the card cannot report
the policy). A PIN the card refuses is never sent again by this store: the error says how many
tries are left. The store never sends a PIN when the card has fewer than two tries left, so a
PIN is never blocked through Stepstone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from yubikit.core import BadResponseError, CommandError, InvalidPinError, NotSupportedError, Tlv
from yubikit.core.smartcard import SW, ApduError, SmartCardConnection
from yubikit.piv import DEFAULT_MANAGEMENT_KEY, PIN_POLICY, SLOT, TOUCH_POLICY, PivSession

from keystores.base import KeyStoreError, WrongPasswordError
from keystores.uri import KeyURI
from keystores.yubikey.attestation import attestation_serial
from keystores.yubikey.discovery import CardRemoved, CardReset, is_empty_reader, transaction
from keystores.yubikey.discovery import readers as find_readers
from keystores.yubikey.locking import device_lock, process_lock
from keystores.yubikey.recovery import (
    Recovery,
    YubiKeyAbsentError,
    YubiKeyDeselectedError,
    YubiKeyResetError,
)
from keystores.yubikey.registry import Device, drop, held, hold
from keystores.yubikey.signers import SlotInfo
from keystores.yubikey.slots import key_uri_of, parse_serial, parse_slot

__all__ = [
    "DEFAULT_PIN",
    "CardSession",
    "Device",
    "YubiKeyAbsentError",
    "YubiKeyDeselectedError",
    "YubiKeyResetError",
]

logger = logging.getLogger("keystores.yubikey")

DEFAULT_PIN = "123456"


class CardSession(Recovery):
    """The card side of a YubiKey store. The card is opened on first use."""

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
        self._device: Device | None = None
        self._closed = False
        self._reset_session()

    def _reset_session(self) -> None:
        self._pin_verified = False
        self._pin_good: str | None = None
        self._pin_error: str | None = None
        self._mgm_authenticated = False

    def _check_open(self) -> None:
        if self._closed:
            raise KeyStoreError("the key store is closed")

    def _find_device(self) -> Device:
        """The card to use. A card this process already holds is taken as it is (its serial is
        known): discovery never opens a second handle to it, whose closing could reset it."""
        readers = find_readers(self._reader)
        if not readers:
            if self._serial is not None:
                raise YubiKeyAbsentError(
                    f"no YubiKey with serial {self._serial} is connected (found: none)"
                )
            where = f" in a reader named like {self._reader!r}" if self._reader else ""
            raise YubiKeyAbsentError(
                f"no YubiKey found{where}: is it plugged in (and pcscd running)?"
            )
        seen: list[str] = []
        for name, connect in readers:
            device = held(name)
            if device is None:
                device = self._open(name, connect, seen)
                if device is None:
                    continue
            if (self._serial is None and len(readers) == 1) or (
                self._serial is not None and device.serial == self._serial
            ):
                return hold(device)
            if device.users == 0:
                drop(device)  # not ours to keep: closed, leaving the card as it is
            seen.append(str(device.serial) if device.serial is not None else name)
        if self._serial is not None:
            raise YubiKeyAbsentError(
                f"no YubiKey with serial {self._serial} is connected "
                f"(found: {', '.join(seen) or 'none'})"
            )
        raise KeyStoreError(
            f"several YubiKeys are present ({', '.join(seen)}): choose one with serial= in the URI"
        )

    def _open(
        self, name: str, connect: Callable[[], SmartCardConnection], seen: list[str]
    ) -> Device | None:
        try:
            connection = connect()
        except Exception as exc:  # each reader library has its own errors
            if not is_empty_reader(exc):
                logger.info("cannot connect to %s: %s", name, exc)
                seen.append(f"{name} (cannot connect: {exc})")
            return None
        try:
            piv = PivSession(connection)
            serial = self._read_serial(piv)
        except Exception as exc:  # not a PIV card, or gone
            with contextlib.suppress(Exception):
                connection.close()
            if not isinstance(exc, CardRemoved | CardReset):  # else: being pulled out
                seen.append(f"{name} (no PIV application: {exc})")
            return None
        return Device(connection, piv, serial, name, os.getpid())

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
    def _card(self) -> Iterator[tuple[PivSession, Device]]:
        """The card session, under the process lock and the YubiKey's file lock. A reset or
        removal under the body becomes a `YubiKeyResetError` once the store has recovered
        what it can (see `_recover`)."""
        self._check_open()
        with process_lock():
            device = self._device
            if device is None or held(device.reader) is not device:
                # First use, a forked child (the parent's connection is not ours to use), or
                # a card dropped after a removal.
                self._reset_session()
                device = self._device = self._find_device()
                logger.info(
                    "opened %s (PIV %s) in %s", device.label, device.piv.version, device.reader
                )
            with device_lock(device.serial):
                try:
                    with transaction(device.connection):
                        if device.needs_select:
                            device.piv = PivSession(device.connection)
                            device.needs_select = False
                        yield device.piv, device
                except (CardReset, CardRemoved) as exc:
                    raise self._recover(device, exc) from None
                except ApduError as exc:
                    if exc.sw == SW.INVALID_INSTRUCTION:
                        raise self._deselected(device) from None
                    raise

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
        uri = key_uri_of(name)
        if uri is not None:
            serial = parse_serial(uri.get("serial"))
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

    def _choose_pin(self, piv: PivSession, device: Device, slot: SLOT) -> str:
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

    def _verify_pin(self, piv: PivSession, device: Device, slot: SLOT) -> None:
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

    def _authenticate(self, piv: PivSession, device: Device) -> None:
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

    def _error(self, device: Device, what: str, exc: Exception) -> KeyStoreError:
        if isinstance(exc, ApduError) and exc.sw == SW.INVALID_INSTRUCTION:
            return self._deselected(device)
        if isinstance(exc, ApduError):
            try:
                detail = SW(exc.sw).name.replace("_", " ").lower()
            except ValueError:
                detail = "error"
            return KeyStoreError(f"{device.label}: {what} failed (SW {exc.sw:04X}, {detail})")
        return KeyStoreError(f"{device.label}: {what} failed: {exc}")

    # --- KeyStore ---

    # --- private-key operations (the signers' side) ---

    def _use_key(self, info: SlotInfo, what: str, op: Callable[[PivSession], bytes]) -> bytes:
        return self._retrying(lambda: self._use_key_once(info, what, op))

    def _use_key_once(self, info: SlotInfo, what: str, op: Callable[[PivSession], bytes]) -> bytes:
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
