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
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from yubikit.core import BadResponseError, CommandError, NotSupportedError
from yubikit.core.smartcard import SW, ApduError
from yubikit.piv import KEY_TYPE, OBJECT_ID, PIN_POLICY, SLOT, TOUCH_POLICY, PivSession

from keystores.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeySpec,
    KeyStore,
    KeyStoreError,
    KeyStoreUnavailableError,
    PublicKey,
    SigningKey,
)
from keystores.capabilities import Attestation
from keystores.uri import KeyURI
from keystores.yubikey.attestation import parse_attestation
from keystores.yubikey.card import CardSession, Device, YubiKeyAbsentError
from keystores.yubikey.discovery import CardRemoved, CardReset, transaction
from keystores.yubikey.discovery import readers as find_readers
from keystores.yubikey.listing import describe
from keystores.yubikey.locking import device_lock, process_lock
from keystores.yubikey.registry import drop, held, release
from keystores.yubikey.signers import SlotInfo, make_signer
from keystores.yubikey.slots import (
    PIN_POLICIES,
    SCHEME,
    TOUCH_POLICIES,
    TRUE_VALUES,
    as_public_key,
    key_type_for,
    parse_management_key,
    parse_policy,
    parse_serial,
    parse_slot,
    read_secret_file,
    spki,
)

__all__ = ["YubiKeyStore"]

logger = logging.getLogger("keystores.yubikey")


class YubiKeyStore(CardSession, KeyStore):
    """Keys in the PIV slots of one YubiKey: a `KeyManager`, `CertificateStore` and
    `Attester`."""

    kind = "YubiKey"

    @classmethod
    def from_uri(cls, uri: str, *, password: bytes | None, base_dir: Path | None) -> Self:
        parsed = KeyURI.parse(uri, SCHEME)
        pin = parsed.pin(base_dir)
        if not pin and password:
            pin = password.decode("utf-8", "replace")
        management_key = None
        if value := parsed.get("management-key"):
            management_key = parse_management_key(value, "management-key")
        elif source := parsed.get("management-key-source"):
            text = read_secret_file(source, base_dir, "management-key-source")
            management_key = parse_management_key(text, f"the management key in {source}")
        allow_default = (parsed.get("allow-default-management-key") or "").lower() in TRUE_VALUES
        return cls(
            serial=parse_serial(parsed.get("serial")),
            reader=parsed.get("reader") or None,
            pin=pin or None,
            management_key=management_key,
            allow_default_management_key=allow_default,
            pin_policy=parse_policy(parsed.get("pin-policy"), PIN_POLICIES, "pin-policy"),
            touch_policy=parse_policy(parsed.get("touch-policy"), TOUCH_POLICIES, "touch-policy"),
            base_dir=base_dir,
        )

    # --- opening the card ---

    # --- slots ---

    def _slot_info(self, piv: PivSession, device: Device, slot: SLOT) -> SlotInfo:
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
        public = as_public_key(metadata.public_key, where)
        return SlotInfo(slot, metadata.key_type, metadata.pin_policy, metadata.touch_policy, public)

    def _public_without_metadata(self, piv: PivSession, device: Device, slot: SLOT) -> PublicKey:
        """Before firmware 5.3: the attestation (keys made on the card), else the certificate."""
        where = f"{device.label} slot {int(slot):02x}"
        for read in (piv.attest_key, piv.get_certificate):
            try:
                return as_public_key(read(slot).public_key(), where)
            except (CommandError, NotSupportedError, ValueError):
                continue
        raise KeyNotFoundError(f"no key in {where} (or, on this firmware, no certificate for it)")

    def _occupied(self, piv: PivSession, device: Device, slot: SLOT) -> bool:
        try:
            self._slot_info(piv, device, slot)
        except KeyNotFoundError:
            return False
        return True

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
        key_type = key_type_for(spec)
        if uri is not None:
            pin_policy = pin_policy or parse_policy(
                uri.get("pin-policy"), PIN_POLICIES, "pin-policy"
            )
            touch_policy = touch_policy or parse_policy(
                uri.get("touch-policy"), TOUCH_POLICIES, "touch-policy"
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
            return as_public_key(public, f"{device.label} slot {int(slot):02x}")

    def public_key(self, name: str) -> PublicKey:
        slot, _ = self._note_key_name(name)

        def read() -> PublicKey:
            with self._card() as (piv, device):
                return self._slot_info(piv, device, slot).public_key

        return self._retrying(read)

    def signer(self, name: str) -> SigningKey:
        """A signer for the key in the slot. The PIN is checked now (unless the slot's policy
        is "never"), so a wrong PIN shows here and not at the first signature."""
        slot, _ = self._note_key_name(name)

        def check() -> SlotInfo:
            with self._card() as (piv, device):
                info = self._slot_info(piv, device, slot)
                if info.key_type == KEY_TYPE.X25519:
                    raise KeyStoreError(f"{device.label} slot {int(slot):02x} holds an X25519 key")
                if info.pin_policy != PIN_POLICY.NEVER and not self._pin_verified:
                    self._verify_pin(piv, device, slot)
                return info

        return make_signer(self, self._retrying(check))

    def list_keys(self) -> list[dict[str, str]]:
        """`KeyLister`: with `serial=`, that YubiKey's slots; else every connected YubiKey's
        (in readers named like one, or matching `reader=`). See `listing.describe`."""
        if self._serial is not None:
            with self._card() as (_, one):
                rows = describe(one)
                self._pin_verified = self._mgm_authenticated = False  # PIV selected again
                return rows
        self._check_open()
        rows = []
        with process_lock():
            for name, connect in find_readers(self._reader):
                device = held(name) or self._open(name, connect, [])
                if device is None:
                    continue
                opened = device.users == 0
                try:
                    with device_lock(device.serial), transaction(device.connection):
                        rows += describe(device)
                except (CardReset, CardRemoved) as exc:
                    raise KeyStoreUnavailableError(f"{device.label}: {exc}") from None
                finally:
                    if opened:
                        drop(device)
        if not rows:
            raise YubiKeyAbsentError("no YubiKey is connected (is pcscd running?)")
        return rows

    def close(self) -> None:
        """Let go of the card: the last store of this process using it closes the
        connection, leaving the card as it is (no reset for other programs)."""
        with process_lock():
            device, self._device = self._device, None
            if device is not None and held(device.reader) is device:
                release(device)
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
                or spki(info.public_key) != spki(public)
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

    def describe_attestation(self, certificate: x509.Certificate) -> Attestation:
        """Serial, firmware, policies and form factor from Yubico's extensions."""
        return parse_attestation(certificate)

    def store_certificate(self, name: str, certificate: x509.Certificate) -> None:
        """`CertificateStore`: as `put_certificate`."""
        self.put_certificate(name, certificate)

    def load_certificate(self, name: str) -> x509.Certificate:
        """`CertificateStore`: as `get_certificate`."""
        return self.get_certificate(name)

    def _slot_for(self, name: str | SLOT, *, allow_attestation: bool = False) -> SLOT:
        if isinstance(name, str):
            return self._note_key_name(name, allow_attestation=allow_attestation)[0]
        return parse_slot(name, allow_attestation=allow_attestation)
