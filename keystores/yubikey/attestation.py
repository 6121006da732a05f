"""Reading Yubico's PIV attestation certificates (serial, firmware, policies, form factor)."""

from __future__ import annotations

from cryptography import x509
from yubikit.piv import PIN_POLICY, TOUCH_POLICY

from keystores.capabilities import Attestation

__all__ = ["Attestation", "attestation_serial", "parse_attestation"]

_OID_YUBICO_FIRMWARE = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.3")
_OID_YUBICO_SERIAL = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.7")
_OID_YUBICO_POLICY = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.8")
_OID_YUBICO_FORM_FACTOR = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.9")


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
