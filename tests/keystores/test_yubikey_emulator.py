"""The PIV emulator (tests/piv_emulator.py) driven by unmodified yubikit and ykman.

These pin down that the test double behaves like a YubiKey where the key store depends on
it: APDU framing, PIN and PUK counters, management key authentication, key generation and
policies, certificates and attestation. Every signature is checked with the public key.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from yubikit.core import TRANSPORT, InvalidPinError, NotSupportedError
from yubikit.core.smartcard import SW, ApduError
from yubikit.piv import (
    DEFAULT_MANAGEMENT_KEY,
    KEY_TYPE,
    MANAGEMENT_KEY_TYPE,
    PIN_POLICY,
    SLOT,
    TOUCH_POLICY,
    PivSession,
)

from tests.piv_emulator import FileBackedPiv, VirtualPiv, new_card_state

from .conftest import OPENSSL

MESSAGE = b"attested by an emulated YubiKey"


def session(card: VirtualPiv, transport: TRANSPORT = TRANSPORT.USB) -> PivSession:
    return PivSession(card.connect(transport))


@pytest.fixture
def card() -> VirtualPiv:
    return VirtualPiv(new_card_state((5, 7, 2), 12345678))


@pytest.fixture
def piv(card: VirtualPiv) -> PivSession:
    return session(card)


def sw_of(exc: pytest.ExceptionInfo[ApduError]) -> int:
    return exc.value.sw


# --- session, serial, metadata -----------------------------------------------------------


def test_open_version_serial_metadata(piv: PivSession) -> None:
    assert piv.version == (5, 7, 2)
    assert piv.get_serial() == 12345678
    assert piv.management_key_type == MANAGEMENT_KEY_TYPE.AES192
    pin = piv.get_pin_metadata()
    assert (pin.default_value, pin.total_attempts, pin.attempts_remaining) == (True, 3, 3)
    puk = piv.get_puk_metadata()
    assert (puk.default_value, puk.attempts_remaining) == (True, 3)
    mgm = piv.get_management_key_metadata()
    assert mgm.default_value and mgm.touch_policy == TOUCH_POLICY.NEVER
    with pytest.raises(ApduError) as exc:
        piv.get_slot_metadata(SLOT.SIGNATURE)
    assert sw_of(exc) == SW.REFERENCE_DATA_NOT_FOUND
    with pytest.raises(NotSupportedError):  # no biometrics on this "YubiKey"
        piv.get_bio_metadata()


def test_older_firmware_has_3des_and_no_metadata() -> None:
    piv = session(VirtualPiv(new_card_state((5, 2, 7))))
    assert piv.management_key_type == MANAGEMENT_KEY_TYPE.TDES
    with pytest.raises(NotSupportedError):
        piv.get_pin_metadata()
    assert piv.get_pin_attempts() == 3  # through an empty VERIFY


def test_select_of_another_application_fails(card: VirtualPiv) -> None:
    connection = card.connect()
    _, sw = connection.send_and_receive(bytes.fromhex("00a4040007a0000005272101"))  # OATH
    assert sw == SW.FILE_NOT_FOUND
    _, sw = connection.send_and_receive(bytes.fromhex("00fd000000"))  # nothing selected
    assert sw == SW.INVALID_INSTRUCTION


# --- PIN and PUK -------------------------------------------------------------------------


def test_pin_retries_block_and_puk_unblock(card: VirtualPiv, piv: PivSession) -> None:
    for left in (2, 1, 0):
        with pytest.raises(InvalidPinError) as exc:
            piv.verify_pin("654321")
        assert exc.value.attempts_remaining == left
    assert card.state.pin_left == 0
    with pytest.raises(InvalidPinError) as blocked:  # blocked: even the right PIN fails
        piv.verify_pin("123456")
    assert blocked.value.attempts_remaining == 0
    with pytest.raises(InvalidPinError) as wrong_puk:
        piv.unblock_pin("87654321", "246810")
    assert wrong_puk.value.attempts_remaining == 2
    piv.unblock_pin("12345678", "246810")
    assert piv.get_pin_metadata().attempts_remaining == 3
    assert piv.get_puk_metadata().attempts_remaining == 3
    piv.verify_pin("246810")
    assert not piv.get_pin_metadata().default_value


def test_success_resets_the_counter_and_change_pin(piv: PivSession) -> None:
    with pytest.raises(InvalidPinError):
        piv.verify_pin("000000")
    assert piv.get_pin_attempts() == 2
    piv.verify_pin("123456")
    assert piv.get_pin_attempts() == 3
    piv.change_pin("123456", "11223344")
    piv.change_puk("12345678", "87654321")
    assert not piv.get_puk_metadata().default_value
    with pytest.raises(InvalidPinError):
        piv.verify_pin("123456")
    piv.verify_pin("11223344")
    with pytest.raises(ApduError) as short:  # a new PIN has at least 6 characters
        piv.change_pin("11223344", "123")
    assert sw_of(short) == SW.INCORRECT_PARAMETERS


def test_reset_needs_pin_and_puk_blocked(card: VirtualPiv, piv: PivSession) -> None:
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ECCP256)
    piv.reset()  # yubikit blocks PIN and PUK itself, then resets
    assert 0x9C not in card.state.keys
    assert 0xF9 in card.state.keys  # the attestation key survives
    assert piv.get_pin_metadata().attempts_remaining == 3


# --- management key ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "key_type"),
    [((5, 4, 3), MANAGEMENT_KEY_TYPE.TDES), ((5, 7, 2), MANAGEMENT_KEY_TYPE.AES192)],
)
def test_management_key_auth(version: tuple[int, int, int], key_type: MANAGEMENT_KEY_TYPE) -> None:
    piv = session(VirtualPiv(new_card_state(version)))
    assert piv.management_key_type == key_type
    with pytest.raises(ApduError) as exc:
        piv.authenticate(bytes(24))
    assert sw_of(exc) == SW.SECURITY_CONDITION_NOT_SATISFIED
    with pytest.raises(ApduError):  # not authenticated: no key generation
        piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ECCP256)
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ECCP256)


def test_set_management_key_aes256_and_touch(card: VirtualPiv, piv: PivSession) -> None:
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    new_key = bytes(range(32))
    piv.set_management_key(MANAGEMENT_KEY_TYPE.AES256, new_key, require_touch=True)
    other = session(card)
    assert other.management_key_type == MANAGEMENT_KEY_TYPE.AES256
    meta = other.get_management_key_metadata()
    assert not meta.default_value and meta.touch_policy == TOUCH_POLICY.ALWAYS
    other.authenticate(new_key)


def test_aes_management_key_needs_firmware_5_4() -> None:
    piv = session(VirtualPiv(new_card_state((5, 2, 7))))
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    with pytest.raises(NotSupportedError):
        piv.set_management_key(MANAGEMENT_KEY_TYPE.AES128, bytes(16))


# --- keys and signatures -----------------------------------------------------------------


def verify(public: object, signature: bytes, key_type: KEY_TYPE) -> None:
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
    elif isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey), key_type
        public.verify(signature, MESSAGE)


@pytest.mark.parametrize("transport", [TRANSPORT.USB, TRANSPORT.NFC])
@pytest.mark.parametrize(
    ("key_type", "slot"),
    [
        (KEY_TYPE.ECCP256, SLOT.SIGNATURE),
        (KEY_TYPE.ECCP384, SLOT.AUTHENTICATION),
        (KEY_TYPE.RSA2048, SLOT.KEY_MANAGEMENT),
        (KEY_TYPE.ED25519, SLOT.RETIRED1),
    ],
)
def test_generate_and_sign(
    card: VirtualPiv, key_type: KEY_TYPE, slot: SLOT, transport: TRANSPORT
) -> None:
    piv = session(card, transport)  # NFC: short APDUs, command and response chaining
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    public = piv.generate_key(slot, key_type, PIN_POLICY.ONCE, TOUCH_POLICY.NEVER)
    meta = piv.get_slot_metadata(slot)
    assert meta.key_type == key_type and meta.generated and meta.pin_policy == PIN_POLICY.ONCE
    assert meta.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ApduError) as exc:  # policy "once": not before the PIN
        piv.sign(slot, key_type, MESSAGE, hashes.SHA256(), padding.PKCS1v15())
    assert sw_of(exc) == SW.SECURITY_CONDITION_NOT_SATISFIED
    piv.verify_pin("123456")
    for _ in range(2):  # ... and then as often as needed
        hash_algorithm = None if key_type == KEY_TYPE.ED25519 else hashes.SHA256()
        signature = piv.sign(slot, key_type, MESSAGE, hash_algorithm, padding.PKCS1v15())
        verify(public, signature, key_type)


def test_pin_policy_always_needs_a_verify_per_signature(piv: PivSession) -> None:
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    public = piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ECCP256)  # 9c default: ALWAYS
    assert piv.get_slot_metadata(SLOT.SIGNATURE).pin_policy == PIN_POLICY.ALWAYS
    piv.verify_pin("123456")
    verify(public, piv.sign(SLOT.SIGNATURE, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256()), public)  # type: ignore[arg-type]
    with pytest.raises(ApduError) as exc:
        piv.sign(SLOT.SIGNATURE, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
    assert sw_of(exc) == SW.SECURITY_CONDITION_NOT_SATISFIED
    piv.verify_pin("123456")
    piv.sign(SLOT.SIGNATURE, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())


def test_pin_policy_never_and_defaults(piv: PivSession) -> None:
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    public = piv.generate_key(SLOT.CARD_AUTH, KEY_TYPE.ECCP256)  # 9e default: NEVER
    assert piv.get_slot_metadata(SLOT.CARD_AUTH).pin_policy == PIN_POLICY.NEVER
    signature = piv.sign(SLOT.CARD_AUTH, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
    piv.generate_key(SLOT.AUTHENTICATION, KEY_TYPE.ECCP256)
    assert piv.get_slot_metadata(SLOT.AUTHENTICATION).pin_policy == PIN_POLICY.ONCE


def test_reselect_forgets_the_pin(card: VirtualPiv) -> None:
    connection = card.connect()
    piv = PivSession(connection)
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    piv.generate_key(SLOT.AUTHENTICATION, KEY_TYPE.ECCP256, PIN_POLICY.ONCE)
    piv.verify_pin("123456")
    PivSession(connection)  # SELECT again on the same connection
    with pytest.raises(ApduError):
        piv.sign(SLOT.AUTHENTICATION, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())


def test_touch_policy(card: VirtualPiv, piv: PivSession) -> None:
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    piv.generate_key(SLOT.RETIRED2, KEY_TYPE.ECCP256, PIN_POLICY.NEVER, TOUCH_POLICY.ALWAYS)
    piv.generate_key(SLOT.RETIRED3, KEY_TYPE.ECCP256, PIN_POLICY.NEVER, TOUCH_POLICY.CACHED)
    for _ in range(2):
        piv.sign(SLOT.RETIRED2, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
        piv.sign(SLOT.RETIRED3, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
    assert card.touches == 3  # always: twice; cached: once
    card.touch = lambda slot: False  # nobody touches it
    with pytest.raises(ApduError):
        piv.sign(SLOT.RETIRED2, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())


def test_new_key_types_need_firmware_5_7() -> None:
    card = VirtualPiv(new_card_state((5, 4, 3)))
    piv = session(card)
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    with pytest.raises(NotSupportedError):
        piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ED25519)
    connection = card.connect()  # the card refuses too, without yubikit's check
    PivSession(connection).authenticate(DEFAULT_MANAGEMENT_KEY)
    apdu = bytes.fromhex("004700 9c 05 ac 03 80 01 e0".replace(" ", ""))
    assert connection.send_and_receive(apdu)[1] == SW.INCORRECT_PARAMETERS


def test_rsa_decrypt_and_ecdh(piv: PivSession) -> None:
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    rsa_public = piv.generate_key(SLOT.KEY_MANAGEMENT, KEY_TYPE.RSA2048, PIN_POLICY.NEVER)
    assert isinstance(rsa_public, rsa.RSAPublicKey)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    assert piv.decrypt(SLOT.KEY_MANAGEMENT, rsa_public.encrypt(b"secret", oaep), oaep) == b"secret"
    ec_public = piv.generate_key(SLOT.RETIRED4, KEY_TYPE.ECCP384, PIN_POLICY.NEVER)
    peer = ec.generate_private_key(ec.SECP384R1())
    assert isinstance(ec_public, ec.EllipticCurvePublicKey)
    shared = piv.calculate_secret(SLOT.RETIRED4, peer.public_key())
    assert shared == peer.exchange(ec.ECDH(), ec_public)
    x_public = piv.generate_key(SLOT.RETIRED5, KEY_TYPE.X25519, PIN_POLICY.NEVER)
    x_peer = x25519.X25519PrivateKey.generate()
    assert isinstance(x_public, x25519.X25519PublicKey)
    assert piv.calculate_secret(SLOT.RETIRED5, x_peer.public_key()) == x_peer.exchange(x_public)


def test_import_move_delete(card: VirtualPiv, piv: PivSession) -> None:
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    key = ec.generate_private_key(ec.SECP256R1())
    piv.put_key(SLOT.RETIRED1, key, PIN_POLICY.NEVER)
    assert not piv.get_slot_metadata(SLOT.RETIRED1).generated
    signature = piv.sign(SLOT.RETIRED1, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
    key.public_key().verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
    rsa_key = rsa.generate_private_key(65537, 2048)
    piv.put_key(SLOT.RETIRED6, rsa_key, PIN_POLICY.NEVER)
    signature = piv.sign(
        SLOT.RETIRED6, KEY_TYPE.RSA2048, MESSAGE, hashes.SHA256(), padding.PKCS1v15()
    )
    rsa_key.public_key().verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    piv.move_key(SLOT.RETIRED1, SLOT.RETIRED2)
    assert piv.get_slot_metadata(SLOT.RETIRED2).key_type == KEY_TYPE.ECCP256
    piv.delete_key(SLOT.RETIRED2)
    assert 0x83 not in card.state.keys and 0x82 not in card.state.keys


# --- certificates and attestation --------------------------------------------------------


def _self_signed(
    public: ec.EllipticCurvePublicKey, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    import datetime as dt

    # Long enough (> 255 bytes of DER) for command and response chaining over NFC.
    name = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.ORGANIZATIONAL_UNIT_NAME, f"unit {i} " * 6)
            for i in range(6)
        ]
    )
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )


@pytest.mark.parametrize("compress", [False, True])
def test_put_and_get_certificate(card: VirtualPiv, compress: bool) -> None:
    piv = session(card, TRANSPORT.NFC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key.public_key(), key)
    with pytest.raises(ApduError):  # writing needs the management key
        piv.put_certificate(SLOT.SIGNATURE, cert)
    with pytest.raises(ApduError) as missing:
        piv.get_certificate(SLOT.SIGNATURE)
    assert sw_of(missing) == SW.FILE_NOT_FOUND
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    piv.put_certificate(SLOT.SIGNATURE, cert, compress=compress)
    assert session(card).get_certificate(SLOT.SIGNATURE) == cert
    piv.delete_certificate(SLOT.SIGNATURE)
    assert 0x5FC10A not in card.state.objects


@pytest.mark.parametrize("attestation_key", ["EC", "RSA"])
def test_attestation_chain(attestation_key: str) -> None:
    card = VirtualPiv(new_card_state((5, 7, 2), 7654321, attestation_key=attestation_key))
    piv = session(card)
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    public = piv.generate_key(
        SLOT.SIGNATURE, KEY_TYPE.ECCP384, PIN_POLICY.ONCE, TOUCH_POLICY.CACHED
    )
    attestation = piv.attest_key(SLOT.SIGNATURE)
    f9 = piv.get_certificate(SLOT.ATTESTATION)
    assert attestation.public_key() == public
    attestation.verify_directly_issued_by(f9)
    f9.verify_directly_issued_by(card.state.attestation_root)
    values = {
        ext.oid.dotted_string: ext.value.value
        for ext in attestation.extensions
        if isinstance(ext.value, x509.UnrecognizedExtension)
    }
    assert values["1.3.6.1.4.1.41482.3.3"] == bytes([5, 7, 2])
    assert values["1.3.6.1.4.1.41482.3.7"] == bytes.fromhex("0203") + (7654321).to_bytes(3, "big")
    assert values["1.3.6.1.4.1.41482.3.8"] == bytes([PIN_POLICY.ONCE, TOUCH_POLICY.CACHED])
    assert attestation.subject.rfc4514_string() == "CN=YubiKey PIV Attestation 9c"


def test_imported_or_missing_keys_are_not_attested(piv: PivSession) -> None:
    with pytest.raises(ApduError):
        piv.attest_key(SLOT.SIGNATURE)
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    piv.put_key(SLOT.SIGNATURE, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ApduError) as exc:
        piv.attest_key(SLOT.SIGNATURE)
    assert sw_of(exc) == SW.INCORRECT_PARAMETERS


def test_openssl_verifies_the_attestation(
    card: VirtualPiv, piv: PivSession, tmp_path: Path
) -> None:
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    piv.generate_key(SLOT.AUTHENTICATION, KEY_TYPE.RSA2048)
    pem = serialization.Encoding.PEM
    (tmp_path / "root.pem").write_bytes(card.state.attestation_root.public_bytes(pem))
    (tmp_path / "f9.pem").write_bytes(piv.get_certificate(SLOT.ATTESTATION).public_bytes(pem))
    (tmp_path / "att.pem").write_bytes(piv.attest_key(SLOT.AUTHENTICATION).public_bytes(pem))
    result = subprocess.run(
        [OPENSSL, "verify", "-CAfile", "root.pem", "-untrusted", "f9.pem", "att.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- ykman on top, persistence ----------------------------------------------------------


def test_ykman_piv_info(piv: PivSession) -> None:
    from ykman.piv import get_piv_info

    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ECCP256)
    info = str(get_piv_info(piv))
    assert "'PIN tries remaining': '3/3'" in info
    assert "WARNING: Using default Management key!" in info
    assert "Slot 9C (SIGNATURE)" in info


def test_file_backed_card_is_shared(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    first = FileBackedPiv(path, new_card_state((5, 7, 2), 424242))
    piv = session(first)
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    public = piv.generate_key(SLOT.SIGNATURE, KEY_TYPE.ECCP256, PIN_POLICY.ONCE)
    with pytest.raises(InvalidPinError):
        piv.verify_pin("999999")
    second = FileBackedPiv(path)  # e.g. another process
    other = session(second)
    assert other.get_serial() == 424242
    assert other.get_pin_attempts() == 2
    other.verify_pin("123456")
    signature = other.sign(SLOT.SIGNATURE, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
    assert piv.get_pin_attempts() == 3  # the first "process" sees the reset counter
    with pytest.raises(ApduError):  # sessions stay per connection: the first has no PIN
        piv.sign(SLOT.SIGNATURE, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
    second.edit(lambda state: setattr(state, "pin_left", 1))
    assert piv.get_pin_attempts() == 1
