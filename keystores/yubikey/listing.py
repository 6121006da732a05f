"""What `step kms list yubikey:` shows: each YubiKey (serial, firmware, form factor) and its
occupied slots (key type, PIN and touch policy, generated on the card or imported, the
certificate's subject). Reading needs no PIN and no management key.
"""

from __future__ import annotations

import logging

from yubikit.core import NotSupportedError
from yubikit.core.smartcard import SW, ApduError
from yubikit.piv import SLOT, PivSession

from keystores.yubikey.registry import Device

__all__ = ["describe"]

logger = logging.getLogger("keystores.yubikey")

KEY_SLOTS = [s for s in SLOT if s != SLOT.ATTESTATION]


def _form_factor(device: Device) -> str:
    """From the management application's DeviceInfo; PIV is selected again afterwards."""
    try:
        from yubikit.management import ManagementSession

        info = ManagementSession(device.connection).read_device_info()
        name = info.form_factor.name.lower().replace("_", "-")
    except Exception as exc:  # no management application (an older key, an emulator)
        logger.debug("%s: no device info: %s", device.label, exc)
        name = "unknown"
    device.piv = PivSession(device.connection)
    return name


def _subject(piv: PivSession, slot: SLOT) -> str:
    try:
        return piv.get_certificate(slot).subject.rfc4514_string()
    except Exception:  # no certificate, or one that does not parse
        return ""


def describe(device: Device) -> list[dict[str, str]]:
    """One row per occupied slot (one row without a slot for an empty YubiKey)."""
    form_factor = _form_factor(device)
    piv = device.piv
    base = {
        "serial": str(device.serial) if device.serial is not None else "",
        "firmware": str(piv.version),
        "formFactor": form_factor,
        "reader": device.reader,
    }
    prefix = f"yubikey:serial={device.serial}" if device.serial is not None else "yubikey:"
    rows: list[dict[str, str]] = []
    for slot in KEY_SLOTS:
        row = {**base, "uri": f"{prefix};slot-id={int(slot):02x}", "slot": f"{int(slot):02x}"}
        try:
            metadata = piv.get_slot_metadata(slot)
        except NotSupportedError:  # before firmware 5.3: a certificate shows the slot in use
            subject = _subject(piv, slot)
            if subject:
                rows.append({**row, "subject": subject})
            continue
        except ApduError as exc:
            if exc.sw == SW.REFERENCE_DATA_NOT_FOUND:
                continue
            raise
        rows.append(
            {
                **row,
                "type": metadata.key_type.name,
                "pinPolicy": metadata.pin_policy.name.lower(),
                "touchPolicy": metadata.touch_policy.name.lower(),
                "generated": "true" if metadata.generated else "false",
                "subject": _subject(piv, slot),
            }
        )
    return rows or [{**base, "uri": prefix}]
