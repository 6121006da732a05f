"""The YubiKey PIV key store, split by concern.

`slots` (what a `yubikey:` URI says), `discovery` (finding the card: PC/SC connections that
leave the card alone, or a provider a test registers), `registry` (one connection per card
per process), `locking` (turns across threads and processes), `card` (the PIV session, PIN
and management key), `recovery` (resets and removals by other programs), `signers` (the
`cryptography` key objects), `attestation` (Yubico's attestation extensions), `listing`
(`step kms list yubikey:`) and `store` (the `KeyStore`).
"""

from keystores.yubikey.attestation import Attestation, attestation_serial, parse_attestation
from keystores.yubikey.discovery import ConnectionProvider, Reader, register_connection_provider
from keystores.yubikey.locking import ENV_LOCK_DIR
from keystores.yubikey.slots import parse_slot
from keystores.yubikey.store import YubiKeyStore

__all__ = [
    "ENV_LOCK_DIR",
    "Attestation",
    "ConnectionProvider",
    "Reader",
    "YubiKeyStore",
    "attestation_serial",
    "parse_attestation",
    "parse_slot",
    "register_connection_provider",
]
