"""What a `yubikey:` URI says: slots, serial, management key, PIN and touch policies."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from yubikit.piv import KEY_TYPE, PIN_POLICY, SLOT, TOUCH_POLICY

from keystores.base import KeySpec, KeyStoreError, PublicKey
from keystores.uri import KeyURI, file_uri_path, split_scheme

__all__ = [
    "KEY_SLOTS",
    "PIN_POLICIES",
    "SCHEME",
    "TOUCH_POLICIES",
    "as_public_key",
    "key_type_for",
    "key_uri_of",
    "parse_management_key",
    "parse_policy",
    "parse_serial",
    "parse_slot",
    "read_secret_file",
    "spki",
]

SCHEME = "yubikey"
TRUE_VALUES = frozenset({"true", "1", "yes"})
_T = TypeVar("_T")

KEY_SLOTS: dict[str, SLOT] = {f"{int(s):02x}": s for s in SLOT if s != SLOT.ATTESTATION}
PIN_POLICIES = {"never": PIN_POLICY.NEVER, "once": PIN_POLICY.ONCE, "always": PIN_POLICY.ALWAYS}
TOUCH_POLICIES = {
    "never": TOUCH_POLICY.NEVER,
    "always": TOUCH_POLICY.ALWAYS,
    "cached": TOUCH_POLICY.CACHED,
}


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


def key_uri_of(name: str) -> KeyURI | None:
    return KeyURI.parse(name, SCHEME) if split_scheme(name.strip())[0] == SCHEME else None


def parse_serial(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value, 10)
    except ValueError:
        raise KeyStoreError(f"YubiKey serial must be a decimal number, not {value!r}") from None


def parse_management_key(value: str, what: str) -> bytes:
    text = "".join(value.split())
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyStoreError(f"{what} is not hexadecimal") from None
    if len(key) not in (16, 24, 32):
        raise KeyStoreError(f"{what} must be 16, 24 or 32 bytes (3DES or AES), not {len(key)}")
    return key


def read_secret_file(source: str, base_dir: Path | None, what: str) -> str:
    path = Path(file_uri_path(source) if split_scheme(source)[0] == "file" else source)
    if base_dir is not None:
        path = base_dir / path
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise KeyStoreError(f"cannot read {what} {path}: {reason}") from None


def parse_policy(value: str | None, table: dict[str, _T], what: str) -> _T | None:
    if not value:
        return None
    found = table.get(value.lower())
    if found is None:
        raise KeyStoreError(f"unsupported {what} {value!r} (use {', '.join(table)})")
    return found


def key_type_for(spec: KeySpec) -> KEY_TYPE:
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


def as_public_key(key: object, where: str) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return key
    raise KeyStoreError(f"{where} holds a {type(key).__name__}, which cannot sign")


def spki(key: PublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
