"""A YubiKey PIV applet emulated at the APDU level, for tests (no hardware, no pcscd).

`EmulatedConnection` is a yubikit `SmartCardConnection`: unmodified `yubikit.piv.PivSession`
(and ykman helpers) talk to it exactly as to a card. The card logic below parses raw APDUs
(short and extended, command chaining with CLA 0x10, response chaining with 61xx and GET
RESPONSE) and does not use yubikit's TLV code, so a bug there is not mirrored here.

Implemented: SELECT, GET VERSION, GET SERIAL, GET METADATA (PIN, PUK, management key, slots),
VERIFY (retry counter, blocking), CHANGE REFERENCE (PIN/PUK), RESET RETRY (PUK unblock),
management key authentication (3DES, AES-128/192/256) and SET MANAGEMENT KEY, GENERATE
(P-256, P-384, RSA 1024-4096, Ed25519, X25519) with PIN and touch policies, IMPORT, GENERAL
AUTHENTICATE (sign, RSA raw, ECDH) with the PIN policy enforced (ONCE / ALWAYS / NEVER), PUT
and GET DATA (certificates), ATTEST (slot f9 key and certificate, issued by an emulator root),
MOVE/DELETE key (5.7), SET PIN RETRIES and RESET. Every key is a real `cryptography` key, so
every signature the card makes verifies.

The card state (keys, PIN, counters, objects) lives in memory (`VirtualPiv`) or in a JSON
file (`FileBackedPiv`), re-read and re-written under a lock for every APDU so several
processes (a test and a `step-ca` it started) share one card. Session state (PIN verified,
management key authenticated) belongs to a connection, as on a real card.

`provider_from_env` is the connection provider a test registers in a Stepstone process (e.g.
through `python -m tests.yubikey_launcher step ...`); it opens the card files listed in
`STEPSTONE_PIV_EMULATOR_STATE` (os.pathsep-separated).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID
from yubikit.core import TRANSPORT
from yubikit.core.smartcard import SmartCardConnection

__all__ = [
    "ENV_STATE",
    "EmulatedConnection",
    "FileBackedPiv",
    "VirtualPiv",
    "new_card_state",
    "provider_from_env",
]

ENV_STATE = "STEPSTONE_PIV_EMULATOR_STATE"

PIV_AID = bytes.fromhex("a000000308")
DEFAULT_PIN = b"123456"
DEFAULT_PUK = b"12345678"
DEFAULT_MGM = bytes.fromhex("010203040506070801020304050607080102030405060708")

# Status words.
OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_SECURITY = 0x6982
SW_BLOCKED = 0x6983
SW_CONDITIONS = 0x6985
SW_INCORRECT = 0x6A80
SW_NOT_FOUND = 0x6A82
SW_REF_NOT_FOUND = 0x6A88
SW_P1P2 = 0x6B00
SW_INS = 0x6D00
SW_CLA = 0x6E00

# Algorithms (P1 of GENERATE/AUTHENTICATE, tag 01 of metadata).
RSA1024, RSA2048, RSA3072, RSA4096 = 0x06, 0x07, 0x05, 0x16
P256, P384, ED25519, X25519 = 0x11, 0x14, 0xE0, 0xE1
TDES, AES128, AES192, AES256 = 0x03, 0x08, 0x0A, 0x0C
RSA_BITS = {RSA1024: 1024, RSA2048: 2048, RSA3072: 3072, RSA4096: 4096}
EC_CURVES: dict[int, ec.EllipticCurve] = {P256: ec.SECP256R1(), P384: ec.SECP384R1()}
MGM_LEN = {TDES: 24, AES128: 16, AES192: 24, AES256: 32}
NEW_IN_57 = {RSA3072, RSA4096, ED25519, X25519}

# Policies.
PIN_DEFAULT, PIN_NEVER, PIN_ONCE, PIN_ALWAYS = 0, 1, 2, 3
TOUCH_DEFAULT, TOUCH_NEVER, TOUCH_ALWAYS, TOUCH_CACHED = 0, 1, 2, 3
ORIGIN_GENERATED, ORIGIN_IMPORTED = 1, 2
TOUCH_CACHE_SECONDS = 15.0

MGM_SLOT = 0x9B
ATTESTATION_SLOT = 0xF9
KEY_SLOTS = frozenset([0x9A, 0x9C, 0x9D, 0x9E, *range(0x82, 0x96)])
OBJECT_FOR_SLOT = {
    0x9A: 0x5FC105,
    0x9C: 0x5FC10A,
    0x9D: 0x5FC10B,
    0x9E: 0x5FC101,
    ATTESTATION_SLOT: 0x5FFF01,
    **{0x82 + i: 0x5FC10D + i for i in range(20)},
}

# Yubico's attestation extensions.
OID_FIRMWARE = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.3")
OID_SERIAL = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.7")
OID_POLICY = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.8")
OID_FORM_FACTOR = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.9")


class CardError(Exception):
    """Ends an APDU with a status word other than 9000."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"SW={sw:04X}")
        self.sw = sw


# --- BER-TLV (one- and two-byte tags, definite lengths) -----------------------------------


def tlv(tag: int, value: bytes = b"") -> bytes:
    tag_bytes = tag.to_bytes(2 if tag > 0xFF else 1, "big")
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n <= 0xFF:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return tag_bytes + length + value


def parse_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """Parse concatenated TLVs; malformed input is the card's 6A80."""
    out: list[tuple[int, bytes]] = []
    i = 0
    try:
        while i < len(data):
            tag = data[i]
            i += 1
            if tag & 0x1F == 0x1F:  # multi-byte tag
                tag = (tag << 8) | data[i]
                i += 1
                while data[i - 1] & 0x80:
                    tag = (tag << 8) | data[i]
                    i += 1
            n = data[i]
            i += 1
            if n == 0x81:
                n = data[i]
                i += 1
            elif n == 0x82:
                n = int.from_bytes(data[i : i + 2], "big")
                i += 2
            elif n > 0x82:
                raise CardError(SW_INCORRECT)
            if i + n > len(data):
                raise CardError(SW_INCORRECT)
            out.append((tag, data[i : i + n]))
            i += n
    except IndexError:
        raise CardError(SW_INCORRECT) from None
    return out


def tlv_dict(data: bytes) -> dict[int, bytes]:
    return dict(parse_tlvs(data))


def unwrap(tag: int, data: bytes) -> bytes:
    items = parse_tlvs(data)
    if len(items) != 1 or items[0][0] != tag:
        raise CardError(SW_INCORRECT)
    return items[0][1]


# --- persistent card state --------------------------------------------------------------


@dataclass
class SlotKey:
    algorithm: int
    pin_policy: int
    touch_policy: int
    origin: int
    der: bytes  # PKCS#8, unencrypted: this is a test double

    def private_key(self) -> Any:
        return serialization.load_der_private_key(self.der, password=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "pin_policy": self.pin_policy,
            "touch_policy": self.touch_policy,
            "origin": self.origin,
            "der": self.der.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SlotKey:
        return cls(
            data["algorithm"],
            data["pin_policy"],
            data["touch_policy"],
            data["origin"],
            bytes.fromhex(data["der"]),
        )


@dataclass
class CardState:
    """Everything a card keeps across power cycles."""

    version: tuple[int, int, int]
    serial: int
    form_factor: int
    pin: bytes
    pin_default: bool
    pin_total: int
    pin_left: int
    puk: bytes
    puk_default: bool
    puk_total: int
    puk_left: int
    mgm_type: int
    mgm_key: bytes
    mgm_default: bool
    mgm_touch: int
    keys: dict[int, SlotKey] = field(default_factory=dict)
    objects: dict[int, bytes] = field(default_factory=dict)
    attestation_root_pem: bytes = b""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": list(self.version),
            "serial": self.serial,
            "form_factor": self.form_factor,
            "pin": self.pin.hex(),
            "pin_default": self.pin_default,
            "pin_total": self.pin_total,
            "pin_left": self.pin_left,
            "puk": self.puk.hex(),
            "puk_default": self.puk_default,
            "puk_total": self.puk_total,
            "puk_left": self.puk_left,
            "mgm_type": self.mgm_type,
            "mgm_key": self.mgm_key.hex(),
            "mgm_default": self.mgm_default,
            "mgm_touch": self.mgm_touch,
            "keys": {f"{slot:02x}": key.to_json() for slot, key in sorted(self.keys.items())},
            "objects": {f"{oid:x}": v.hex() for oid, v in sorted(self.objects.items())},
            "attestation_root_pem": self.attestation_root_pem.decode(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardState:
        v = data["version"]
        return cls(
            version=(int(v[0]), int(v[1]), int(v[2])),
            serial=data["serial"],
            form_factor=data["form_factor"],
            pin=bytes.fromhex(data["pin"]),
            pin_default=data["pin_default"],
            pin_total=data["pin_total"],
            pin_left=data["pin_left"],
            puk=bytes.fromhex(data["puk"]),
            puk_default=data["puk_default"],
            puk_total=data["puk_total"],
            puk_left=data["puk_left"],
            mgm_type=data["mgm_type"],
            mgm_key=bytes.fromhex(data["mgm_key"]),
            mgm_default=data["mgm_default"],
            mgm_touch=data["mgm_touch"],
            keys={int(k, 16): SlotKey.from_json(x) for k, x in data["keys"].items()},
            objects={int(k, 16): bytes.fromhex(x) for k, x in data["objects"].items()},
            attestation_root_pem=data["attestation_root_pem"].encode(),
        )

    @property
    def attestation_root(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.attestation_root_pem)

    def factory_reset(self) -> None:
        """PIV reset: keys, objects, PIN/PUK and management key back to defaults; the
        attestation key and certificate stay (they come from the factory)."""
        self.pin, self.pin_default = pad(DEFAULT_PIN), True
        self.pin_total = self.pin_left = 3
        self.puk, self.puk_default = pad(DEFAULT_PUK), True
        self.puk_total = self.puk_left = 3
        self.mgm_type = AES192 if self.version >= (5, 7, 0) else TDES
        self.mgm_key, self.mgm_default, self.mgm_touch = DEFAULT_MGM, True, TOUCH_NEVER
        self.keys = {s: k for s, k in self.keys.items() if s == ATTESTATION_SLOT}
        self.objects = {o: v for o, v in self.objects.items() if o == 0x5FFF01}


def pad(pin: bytes) -> bytes:
    return pin.ljust(8, b"\xff")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _sign_hash(key: Any) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def new_card_state(
    version: tuple[int, int, int] = (5, 7, 2),
    serial: int | None = None,
    *,
    attestation_key: str = "EC",
    form_factor: int = 1,
) -> CardState:
    """A card fresh from the factory: default PIN/PUK/management key, an attestation key in
    f9 with a certificate issued by a new emulator root (`state.attestation_root`)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Yubico PIV Root CA (emulator)"))
        .issuer_name(_name("Yubico PIV Root CA (emulator)"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )
    f9_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if attestation_key == "RSA":
        f9_key, f9_alg = rsa.generate_private_key(65537, 2048), RSA2048
    else:
        f9_key, f9_alg = ec.generate_private_key(ec.SECP256R1()), P256
    serial = serial if serial is not None else secrets.randbelow(90_000_000) + 10_000_000
    f9_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Yubico PIV Attestation"))
        .issuer_name(root.subject)
        .public_key(f9_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(f9_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
        .add_extension(x509.UnrecognizedExtension(OID_FIRMWARE, bytes(version)), False)
        .sign(root_key, hashes.SHA256())
    )
    der = f9_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    state = CardState(
        version=version,
        serial=serial,
        form_factor=form_factor,
        pin=b"",
        pin_default=True,
        pin_total=3,
        pin_left=3,
        puk=b"",
        puk_default=True,
        puk_total=3,
        puk_left=3,
        mgm_type=TDES,
        mgm_key=DEFAULT_MGM,
        mgm_default=True,
        mgm_touch=TOUCH_NEVER,
        keys={ATTESTATION_SLOT: SlotKey(f9_alg, PIN_NEVER, TOUCH_NEVER, ORIGIN_IMPORTED, der)},
        objects={0x5FFF01: _cert_object(f9_cert)},
        attestation_root_pem=root.public_bytes(serialization.Encoding.PEM),
    )
    state.factory_reset()
    return state


def _cert_object(cert: x509.Certificate) -> bytes:
    return tlv(0x70, cert.public_bytes(serialization.Encoding.DER)) + tlv(0x71, b"\0") + tlv(0xFE)


# --- the applet --------------------------------------------------------------------------


@dataclass
class Session:
    """What one connection has done since its last SELECT."""

    selected: bool = False
    pin_verified: bool = False
    pin_fresh: bool = False  # a VERIFY since the last private-key operation (policy ALWAYS)
    mgm_authenticated: bool = False
    witness: bytes | None = None
    chained: bytes = b""
    chained_header: bytes | None = None
    pending: bytes = b""
    last_touch: dict[int, float] = field(default_factory=dict)  # slot -> when


class VirtualPiv:
    """An in-memory PIV card. `state` may be inspected and changed by tests directly.

    `touch` decides whether the user touches the key when a policy asks for it (default: yes);
    `touches` counts the times it was asked, `pins_sent` the VERIFY commands that carried a
    PIN. `log` records (INS, P1, P2, SW) of every APDU.
    """

    def __init__(self, state: CardState | None = None) -> None:
        self._state = state or new_card_state()
        self._lock = threading.RLock()
        self.touch: Callable[[int], bool] = lambda slot: True
        self.touches = 0
        self.pins_sent = 0  # VERIFY commands that carried a PIN (not status queries)
        self.log: list[tuple[int, int, int, int]] = []

    @property
    def state(self) -> CardState:
        return self._state

    @contextlib.contextmanager
    def transaction(self) -> Iterator[CardState]:
        with self._lock:
            yield self._state

    def connect(self, transport: TRANSPORT = TRANSPORT.USB) -> EmulatedConnection:
        return EmulatedConnection(self, transport)

    # The card proper. `process` runs one APDU in a transaction and never raises.
    def process(self, session: Session, apdu: bytes) -> tuple[bytes, int]:
        with self.transaction() as state:
            try:
                data, sw = self._dispatch(state, session, apdu), OK
            except _MoreData as more:
                data, sw = more.chunk, more.sw
            except CardError as exc:
                data, sw = b"", exc.sw
            if len(apdu) >= 4:
                self.log.append((apdu[1], apdu[2], apdu[3], sw))
            return data, sw

    def _dispatch(self, state: CardState, s: Session, apdu: bytes) -> bytes:
        cla, ins, p1, p2, data, extended = parse_apdu(apdu)
        if ins == 0xC0:  # GET RESPONSE
            return self._next_chunk(s)
        s.pending = b""
        if cla & 0x10:  # command chaining: keep the data, answer when the chain ends
            if s.chained_header not in (None, apdu[1:4]):
                s.chained = b""
            s.chained, s.chained_header = s.chained + data, apdu[1:4]
            return b""
        if s.chained:
            data, s.chained, s.chained_header = s.chained + data, b"", None
        if cla & ~0x10 & 0xFF:
            raise CardError(SW_CLA)
        if ins == 0xA4:
            response = self._select(s, p1, data)
        elif not s.selected:
            raise CardError(SW_INS)
        else:
            handler = self._handlers.get(ins)
            if handler is None:
                raise CardError(SW_INS)
            response = handler(self, state, s, p1, p2, data)
        if extended or len(response) <= 256:
            return response
        # A short APDU gets its long response in pieces: 61xx, then GET RESPONSE.
        s.pending = response[256:]
        raise _MoreData(response[:256], len(s.pending))

    def _next_chunk(self, s: Session) -> bytes:
        if not s.pending:
            raise CardError(SW_CONDITIONS)
        chunk, s.pending = s.pending[:256], s.pending[256:]
        if s.pending:
            raise _MoreData(chunk, len(s.pending))
        return chunk

    # --- instructions ---

    def _select(self, s: Session, p1: int, data: bytes) -> bytes:
        if p1 != 0x04 or not PIV_AID.startswith(data[:5]) or len(data) < 5:
            s.selected = False
            raise CardError(SW_NOT_FOUND)
        # Selecting the applet starts a new session: PIN and management key forgotten.
        s.selected, s.pin_verified, s.pin_fresh, s.mgm_authenticated = True, False, False, False
        s.witness = None
        return tlv(
            0x61, tlv(0x4F, bytes.fromhex("0000100001000100")) + tlv(0x79, tlv(0x4F, PIV_AID))
        )

    def _version(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        return bytes(st.version)

    def _serial(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        if st.version < (5, 0, 0):
            raise CardError(SW_INS)
        return st.serial.to_bytes(4, "big")

    def _metadata(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        if st.version < (5, 3, 0):
            raise CardError(SW_INS)
        if p2 == 0x80:
            return (
                tlv(0x01, b"\xff")
                + tlv(0x02, b"\x00\x00")
                + tlv(0x05, bytes([st.pin_default]))
                + tlv(0x06, bytes([st.pin_total, st.pin_left]))
            )
        if p2 == 0x81:
            return (
                tlv(0x01, b"\xff")
                + tlv(0x02, b"\x00\x00")
                + tlv(0x05, bytes([st.puk_default]))
                + tlv(0x06, bytes([st.puk_total, st.puk_left]))
            )
        if p2 == MGM_SLOT:
            return (
                tlv(0x01, bytes([st.mgm_type]))
                + tlv(0x02, bytes([0, st.mgm_touch]))
                + tlv(0x05, bytes([st.mgm_default]))
            )
        key = st.keys.get(p2)
        if key is None:
            raise CardError(SW_REF_NOT_FOUND)
        return (
            tlv(0x01, bytes([key.algorithm]))
            + tlv(0x02, bytes([key.pin_policy, key.touch_policy]))
            + tlv(0x03, bytes([key.origin]))
            + tlv(0x04, encode_public_key(key.private_key().public_key()))
        )

    def _verify(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        if p2 != 0x80:
            raise CardError(SW_REF_NOT_FOUND)
        if p1 == 0xFF:  # reset the verification status
            s.pin_verified = s.pin_fresh = False
            return b""
        if not data:  # status query
            if st.pin_left == 0:
                raise CardError(SW_BLOCKED)
            if s.pin_verified:
                return b""
            raise CardError(0x63C0 | min(st.pin_left, 15))
        self.pins_sent += 1
        if len(data) != 8:
            raise CardError(SW_INCORRECT)
        if st.pin_left == 0:
            raise CardError(SW_BLOCKED)
        if not secrets.compare_digest(data, st.pin):
            st.pin_left -= 1
            s.pin_verified = s.pin_fresh = False
            raise CardError(0x63C0 | min(st.pin_left, 15))
        st.pin_left = st.pin_total
        s.pin_verified = s.pin_fresh = True
        return b""

    def _change_reference(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        if p2 not in (0x80, 0x81):
            raise CardError(SW_REF_NOT_FOUND)
        if len(data) != 16:
            raise CardError(SW_INCORRECT)
        old, new = data[:8], data[8:]
        if p2 == 0x80:
            self._check_reference(st, "pin", old)
            _check_new_pin(new)
            st.pin, st.pin_default = new, new == pad(DEFAULT_PIN)
            s.pin_verified = True
        else:
            self._check_reference(st, "puk", old)
            _check_new_pin(new)
            st.puk, st.puk_default = new, new == pad(DEFAULT_PUK)
        return b""

    def _reset_retry(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        if p2 != 0x80:
            raise CardError(SW_REF_NOT_FOUND)
        if len(data) != 16:
            raise CardError(SW_INCORRECT)
        self._check_reference(st, "puk", data[:8])
        _check_new_pin(data[8:])
        st.pin, st.pin_default = data[8:], data[8:] == pad(DEFAULT_PIN)
        st.pin_left = st.pin_total
        return b""

    @staticmethod
    def _check_reference(st: CardState, which: str, value: bytes) -> None:
        left = getattr(st, f"{which}_left")
        if left == 0:
            raise CardError(SW_BLOCKED)
        if not secrets.compare_digest(value, getattr(st, which)):
            left -= 1
            setattr(st, f"{which}_left", left)
            raise CardError(0x63C0 | min(left, 15))
        setattr(st, f"{which}_left", getattr(st, f"{which}_total"))

    def _authenticate(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        items = tlv_dict(unwrap(0x7C, data))
        if p2 == MGM_SLOT:
            return self._mgm_auth(st, s, p1, items)
        s.witness = None
        key = st.keys.get(p2)
        if key is None or p2 == ATTESTATION_SLOT or key.algorithm != p1:
            raise CardError(SW_INCORRECT)
        if 0x82 not in items or items[0x82]:
            raise CardError(SW_INCORRECT)
        self._check_policies(key, s, p2)
        private = key.private_key()
        if 0x81 in items:
            result = sign_raw(private, key.algorithm, items[0x81])
        elif 0x85 in items:
            result = key_agreement(private, key.algorithm, items[0x85])
        else:
            raise CardError(SW_INCORRECT)
        return tlv(0x7C, tlv(0x82, result))

    def _check_policies(self, key: SlotKey, s: Session, slot: int) -> None:
        fresh, s.pin_fresh = s.pin_fresh, False  # one VERIFY allows one operation (ALWAYS)
        if key.pin_policy == PIN_ONCE and not s.pin_verified:
            raise CardError(SW_SECURITY)
        if key.pin_policy == PIN_ALWAYS and not fresh:
            raise CardError(SW_SECURITY)
        if key.touch_policy == TOUCH_ALWAYS or (
            key.touch_policy == TOUCH_CACHED
            and time.monotonic() - s.last_touch.get(slot, -TOUCH_CACHE_SECONDS)
            > TOUCH_CACHE_SECONDS
        ):
            self.touches += 1
            if not self.touch(slot):
                raise CardError(SW_SECURITY)
            s.last_touch[slot] = time.monotonic()

    def _mgm_auth(self, st: CardState, s: Session, p1: int, items: dict[int, bytes]) -> bytes:
        if p1 != st.mgm_type:
            s.witness = None
            raise CardError(SW_INCORRECT)
        block = 8 if st.mgm_type == TDES else 16
        if items.get(0x80) == b"" and 0x81 not in items:  # step 1: card sends E(witness)
            s.witness = secrets.token_bytes(block)
            s.mgm_authenticated = False
            return tlv(0x7C, tlv(0x80, _mgm_cipher(st, encrypt=True, data=s.witness)))
        if 0x80 in items and 0x81 in items:  # step 2: host proves, card answers challenge
            witness, s.witness = s.witness, None
            if witness is None or not secrets.compare_digest(items[0x80], witness):
                s.mgm_authenticated = False
                raise CardError(SW_SECURITY)
            if len(items[0x81]) != block:
                raise CardError(SW_INCORRECT)
            s.mgm_authenticated = True
            return tlv(0x7C, tlv(0x82, _mgm_cipher(st, encrypt=True, data=items[0x81])))
        s.witness = None
        raise CardError(SW_INCORRECT)

    def _require_mgm(self, s: Session) -> None:
        if not s.mgm_authenticated:
            raise CardError(SW_SECURITY)

    def _generate(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        self._require_mgm(s)
        if p2 not in KEY_SLOTS:
            raise CardError(SW_REF_NOT_FOUND)
        params = tlv_dict(unwrap(0xAC, data))
        if len(params.get(0x80, b"")) != 1:
            raise CardError(SW_INCORRECT)
        algorithm = params[0x80][0]
        _check_algorithm(st, algorithm)
        pin_policy, touch_policy = _policies(st, p2, params)
        private = generate(algorithm)
        st.keys[p2] = SlotKey(algorithm, pin_policy, touch_policy, ORIGIN_GENERATED, _der(private))
        return tlv(0x7F49, encode_public_key(private.public_key()))

    def _import(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        self._require_mgm(s)
        if p2 not in KEY_SLOTS:
            raise CardError(SW_REF_NOT_FOUND)
        _check_algorithm(st, p1)
        params = tlv_dict(data)
        private: Any
        try:
            if p1 in EC_CURVES:
                private = ec.derive_private_key(int.from_bytes(params[0x06], "big"), EC_CURVES[p1])
            elif p1 == ED25519:
                private = ed25519.Ed25519PrivateKey.from_private_bytes(params[0x07])
            elif p1 == X25519:
                private = x25519.X25519PrivateKey.from_private_bytes(params[0x08])
            else:
                p, q = (int.from_bytes(params[t], "big") for t in (0x01, 0x02))
                private = _rsa_from_pq(p, q)
                if private.key_size != RSA_BITS[p1]:
                    raise CardError(SW_INCORRECT)
        except (KeyError, ValueError):
            raise CardError(SW_INCORRECT) from None
        pin_policy, touch_policy = _policies(st, p2, params)
        st.keys[p2] = SlotKey(p1, pin_policy, touch_policy, ORIGIN_IMPORTED, _der(private))
        return b""

    def _get_data(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        if (p1, p2) != (0x3F, 0xFF):
            raise CardError(SW_P1P2)
        object_id = int.from_bytes(unwrap(0x5C, data), "big")
        value = st.objects.get(object_id)
        if value is None:
            raise CardError(SW_NOT_FOUND)
        return tlv(0x7E if object_id == 0x7E else 0x53, value)

    def _put_data(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        if (p1, p2) != (0x3F, 0xFF):
            raise CardError(SW_P1P2)
        self._require_mgm(s)
        items = parse_tlvs(data)
        if len(items) != 2 or items[0][0] != 0x5C or items[1][0] != 0x53:
            raise CardError(SW_INCORRECT)
        object_id = int.from_bytes(items[0][1], "big")
        if items[1][1]:
            st.objects[object_id] = items[1][1]
        else:
            st.objects.pop(object_id, None)
        return b""

    def _attest(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        if st.version < (4, 3, 0):
            raise CardError(SW_INS)
        key = st.keys.get(p1)
        if p1 not in KEY_SLOTS or key is None or key.origin != ORIGIN_GENERATED:
            raise CardError(SW_INCORRECT)
        f9 = st.keys[ATTESTATION_SLOT].private_key()
        f9_cert = x509.load_der_x509_certificate(tlv_dict(st.objects[0x5FFF01])[0x70])
        public = key.private_key().public_key()
        if isinstance(public, x25519.X25519PublicKey):
            raise CardError(SW_INCORRECT)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"YubiKey PIV Attestation {p1:02x}"))
            .issuer_name(f9_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(f9_cert.not_valid_before_utc)
            .not_valid_after(f9_cert.not_valid_after_utc)
            .add_extension(x509.UnrecognizedExtension(OID_FIRMWARE, bytes(st.version)), False)
            .add_extension(x509.UnrecognizedExtension(OID_SERIAL, _der_int(st.serial)), False)
            .add_extension(
                x509.UnrecognizedExtension(OID_POLICY, bytes([key.pin_policy, key.touch_policy])),
                False,
            )
            .add_extension(
                x509.UnrecognizedExtension(OID_FORM_FACTOR, bytes([st.form_factor])), False
            )
            .sign(f9, _sign_hash(f9))
        )
        return cert.public_bytes(serialization.Encoding.DER)

    def _move_key(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        if st.version < (5, 7, 0):
            raise CardError(SW_INS)
        self._require_mgm(s)
        if p2 not in KEY_SLOTS or (p1 != 0xFF and p1 not in KEY_SLOTS) or p1 == p2:
            raise CardError(SW_INCORRECT)
        key = st.keys.pop(p2, None)
        if key is None:
            raise CardError(SW_REF_NOT_FOUND)
        if p1 != 0xFF:
            st.keys[p1] = key
        return b""

    def _set_mgm_key(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        self._require_mgm(s)
        if p1 != 0xFF or p2 not in (0xFE, 0xFF):
            raise CardError(SW_P1P2)
        if len(data) < 3 or data[0] not in MGM_LEN or data[1] != MGM_SLOT:
            raise CardError(SW_INCORRECT)
        key_type, key = data[0], unwrap(MGM_SLOT, data[1:])
        if len(key) != MGM_LEN[key_type] or (key_type != TDES and st.version < (5, 4, 0)):
            raise CardError(SW_INCORRECT)
        st.mgm_type, st.mgm_key = key_type, key
        st.mgm_default = key == DEFAULT_MGM
        st.mgm_touch = TOUCH_ALWAYS if p2 == 0xFE else TOUCH_NEVER
        return b""

    def _set_pin_retries(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        self._require_mgm(s)
        if not s.pin_verified:
            raise CardError(SW_SECURITY)
        if not (1 <= p1 <= 255 and 1 <= p2 <= 255):
            raise CardError(SW_P1P2)
        st.pin, st.pin_default, st.pin_total, st.pin_left = pad(DEFAULT_PIN), True, p1, p1
        st.puk, st.puk_default, st.puk_total, st.puk_left = pad(DEFAULT_PUK), True, p2, p2
        return b""

    def _reset(self, st: CardState, s: Session, p1: int, p2: int, data: bytes) -> bytes:
        if st.pin_left or st.puk_left:
            raise CardError(SW_CONDITIONS)
        st.factory_reset()
        s.pin_verified = s.pin_fresh = s.mgm_authenticated = False
        return b""

    _handlers: ClassVar[
        dict[int, Callable[[VirtualPiv, CardState, Session, int, int, bytes], bytes]]
    ] = {
        0xFD: _version,
        0xF8: _serial,
        0xF7: _metadata,
        0x20: _verify,
        0x24: _change_reference,
        0x2C: _reset_retry,
        0x87: _authenticate,
        0x47: _generate,
        0xFE: _import,
        0xCB: _get_data,
        0xDB: _put_data,
        0xF9: _attest,
        0xF6: _move_key,
        0xFF: _set_mgm_key,
        0xFA: _set_pin_retries,
        0xFB: _reset,
    }


class _MoreData(CardError):
    """A response chunk with 61xx: more to fetch with GET RESPONSE."""

    def __init__(self, chunk: bytes, remaining: int) -> None:
        super().__init__(0x6100 | (remaining if remaining < 256 else 0))
        self.chunk = chunk


class FileBackedPiv(VirtualPiv):
    """A card whose state is a JSON file, shared between processes.

    Every APDU takes an exclusive lock on `<path>.lock`, re-reads the state and writes it
    back (atomically) if it changed, so a test and a server it started use one card.
    """

    def __init__(self, path: Path, state: CardState | None = None) -> None:
        self.path = Path(path)
        if state is not None:
            self.path.write_text(json.dumps(state.to_json()))
        elif not self.path.exists():
            raise FileNotFoundError(f"no emulated card at {self.path}")
        super().__init__(self._load())

    def _load(self) -> CardState:
        return CardState.from_json(json.loads(self.path.read_text()))

    @property
    def state(self) -> CardState:
        with self.transaction() as state:
            return state

    @contextlib.contextmanager
    def transaction(self) -> Iterator[CardState]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                before = self.path.read_text()
                state = CardState.from_json(json.loads(before))
                self._state = state
                yield state
                after = json.dumps(state.to_json())
                if after != before:
                    tmp = self.path.with_name(self.path.name + ".tmp")
                    tmp.write_text(after)
                    os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def edit(self, change: Callable[[CardState], None]) -> None:
        """Change the stored state (e.g. a test setting the PIN counter)."""
        with self.transaction() as state:
            change(state)


class EmulatedConnection(SmartCardConnection):
    """yubikit's view of the card: `send_and_receive(apdu) -> (data, sw)`.

    USB transport (the default) makes yubikit use extended APDUs on firmware 4+; NFC makes
    it use short APDUs with command and response chaining.
    """

    def __init__(self, card: VirtualPiv, transport: TRANSPORT = TRANSPORT.USB) -> None:
        self.card = card
        self._transport = transport
        self.session = Session()
        self.closed = False

    @property
    def transport(self) -> TRANSPORT:
        return self._transport

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        if self.closed:
            raise OSError("connection closed")
        return self.card.process(self.session, bytes(apdu))

    def close(self) -> None:
        self.closed = True


# --- APDU framing ------------------------------------------------------------------------


def parse_apdu(apdu: bytes) -> tuple[int, int, int, int, bytes, bool]:
    """(CLA, INS, P1, P2, data, extended) from a short or extended command APDU."""
    if len(apdu) < 4:
        raise CardError(SW_WRONG_LENGTH)
    cla, ins, p1, p2 = apdu[:4]
    body = apdu[4:]
    if len(body) <= 1:  # case 1, or case 2 short (Le only)
        return cla, ins, p1, p2, b"", False
    if body[0] == 0 and len(body) >= 3:  # extended
        if len(body) == 3:  # case 2E: Le only
            return cla, ins, p1, p2, b"", True
        lc = int.from_bytes(body[1:3], "big")
        if len(body) not in (3 + lc, 5 + lc):
            raise CardError(SW_WRONG_LENGTH)
        return cla, ins, p1, p2, body[3 : 3 + lc], True
    lc = body[0]
    if len(body) not in (1 + lc, 2 + lc):
        raise CardError(SW_WRONG_LENGTH)
    return cla, ins, p1, p2, body[1 : 1 + lc], False


# --- keys --------------------------------------------------------------------------------


def _check_algorithm(st: CardState, algorithm: int) -> None:
    if algorithm not in (*RSA_BITS, *EC_CURVES, ED25519, X25519):
        raise CardError(SW_INCORRECT)
    if algorithm in NEW_IN_57 and st.version < (5, 7, 0):
        raise CardError(SW_INCORRECT)
    if algorithm == P384 and st.version < (4, 0, 0):
        raise CardError(SW_INCORRECT)


def _policies(st: CardState, slot: int, params: dict[int, bytes]) -> tuple[int, int]:
    pin = params.get(0xAA, b"\x00")
    touch = params.get(0xAB, b"\x00")
    if len(pin) != 1 or len(touch) != 1 or pin[0] > PIN_ALWAYS or touch[0] > TOUCH_CACHED:
        raise CardError(SW_INCORRECT)  # bio policies (4, 5) need a YubiKey Bio
    pin_policy, touch_policy = pin[0], touch[0]
    if pin_policy == PIN_DEFAULT:
        pin_policy = {0x9C: PIN_ALWAYS, 0x9E: PIN_NEVER}.get(slot, PIN_ONCE)
    if touch_policy == TOUCH_DEFAULT:
        touch_policy = TOUCH_NEVER
    return pin_policy, touch_policy


def _check_new_pin(value: bytes) -> None:
    length = len(value.rstrip(b"\xff"))
    if length < 6 or b"\xff" in value[:length]:
        raise CardError(SW_INCORRECT)


def generate(algorithm: int) -> Any:
    if algorithm in RSA_BITS:
        return rsa.generate_private_key(65537, RSA_BITS[algorithm])
    if algorithm in EC_CURVES:
        return ec.generate_private_key(EC_CURVES[algorithm])
    if algorithm == ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return x25519.X25519PrivateKey.generate()


def _der(private: Any) -> bytes:
    return bytes(
        private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _der_int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return bytes([0x02, len(body)]) + body


def _rsa_from_pq(p: int, q: int) -> rsa.RSAPrivateKey:
    e = 65537
    n = p * q
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, n)
    )
    return numbers.private_key()


def encode_public_key(public: Any) -> bytes:
    """The card's public key encoding (tag 7F49 contents / metadata tag 04)."""
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        return tlv(0x81, n) + tlv(0x82, e)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return tlv(
            0x86,
            public.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            ),
        )
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return tlv(0x86, raw)


def sign_raw(private: Any, algorithm: int, message: bytes) -> bytes:
    """GENERAL AUTHENTICATE tag 81: ECDSA over a (truncated) hash, raw RSA, or EdDSA."""
    if isinstance(private, ec.EllipticCurvePrivateKey):
        size = (private.key_size + 7) // 8
        if not message or len(message) > size:
            raise CardError(SW_INCORRECT)
        # ECDSA uses the hash as an integer: left-padding with zeros changes nothing.
        digest = message.rjust(size, b"\0")
        hash_for_size = hashes.SHA256() if size == 32 else hashes.SHA384()
        return bytes(private.sign(digest, ec.ECDSA(Prehashed(hash_for_size))))
    if isinstance(private, rsa.RSAPrivateKey):
        size = private.key_size // 8
        numbers = private.private_numbers()
        m = int.from_bytes(message, "big")
        if len(message) != size or m >= numbers.public_numbers.n:
            raise CardError(SW_INCORRECT)
        return pow(m, numbers.d, numbers.public_numbers.n).to_bytes(size, "big")
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign(message)
    raise CardError(SW_INCORRECT)  # X25519 keys do not sign


def key_agreement(private: Any, algorithm: int, peer: bytes) -> bytes:
    """GENERAL AUTHENTICATE tag 85: ECDH with the peer's public point (or X25519)."""
    try:
        if isinstance(private, ec.EllipticCurvePrivateKey):
            point = ec.EllipticCurvePublicKey.from_encoded_point(private.curve, peer)
            return private.exchange(ec.ECDH(), point)
        if isinstance(private, x25519.X25519PrivateKey):
            return private.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
    except ValueError:
        raise CardError(SW_INCORRECT) from None
    raise CardError(SW_INCORRECT)


def _mgm_cipher(st: CardState, *, encrypt: bool, data: bytes) -> bytes:
    algorithm = TripleDES(st.mgm_key) if st.mgm_type == TDES else algorithms.AES(st.mgm_key)
    cipher = Cipher(algorithm, modes.ECB())  # PIV's single-block challenges
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


# --- the test-only provider for Stepstone processes ------------------------------------


def provider_from_env() -> list[tuple[str, Callable[[], SmartCardConnection]]]:
    """Readers for the card files in $STEPSTONE_PIV_EMULATOR_STATE (os.pathsep-separated).

    Registered in a child process by tests/yubikey_launcher.py (or by a test's own code)
    through `keystores.yubikey.register_connection_provider`.
    """
    paths = [p for p in os.environ.get(ENV_STATE, "").split(os.pathsep) if p]
    readers: list[tuple[str, Callable[[], SmartCardConnection]]] = []
    for index, path in enumerate(paths):
        card = FileBackedPiv(Path(path))
        readers.append((f"Emulated YubiKey {index} ({path})", card.connect))
    return readers
