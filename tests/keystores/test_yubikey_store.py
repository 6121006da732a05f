"""keystores.yubikey: the YubiKey PIV store, on emulated YubiKeys driven by real yubikit."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from yubikit.core.smartcard import SW
from yubikit.piv import DEFAULT_MANAGEMENT_KEY, MANAGEMENT_KEY_TYPE, PIN_POLICY, SLOT, PivSession

from keystores import (
    KeyExistsError,
    KeyNotFoundError,
    KeySpec,
    KeyStoreError,
    WrongPasswordError,
    open_keystore,
)
from keystores.yubikey import (
    YubiKeyStore,
    parse_attestation,
    parse_slot,
    register_connection_provider,
)
from tests.piv_emulator import (
    ENV_STATE,
    FileBackedPiv,
    VirtualPiv,
    new_card_state,
    provider_from_env,
)

from .test_yubikey_helpers import (
    ADMIN,
    Cards,
    card,
    cards,
    lock_dir,
    make_intermediate,
    make_leaf,
    make_root,
    openssl_verify,
    software_key,
    verifies,
)

__all__ = ["card", "cards", "lock_dir"]  # fixtures, imported for pytest

MESSAGE = b"signed in a YubiKey slot"
REPO = Path(__file__).resolve().parents[2]


def spki(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined, no-any-return]


def yk(uri: str, *, password: bytes | None = None, base_dir: Path | None = None) -> YubiKeyStore:
    """open_keystore, typed as the YubiKey store it returns."""
    store = open_keystore(uri, password=password, base_dir=base_dir)
    assert isinstance(store, YubiKeyStore)
    return store


# --- URIs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slot"),
    [
        ("yubikey:slot-id=9c", SLOT.SIGNATURE),
        ("yubikey:slot-id=9A", SLOT.AUTHENTICATION),
        ("yubikey:serial=123;slot-id=82?pin-value=123456", SLOT.RETIRED1),
        ("yubikey:?slot-id=95", SLOT.RETIRED20),
        ("9d", SLOT.KEY_MANAGEMENT),
        ("0x9e", SLOT.CARD_AUTH),
        ("", SLOT.SIGNATURE),
    ],
)
def test_parse_slot(name: str, slot: SLOT) -> None:
    assert parse_slot(name) == slot


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("yubikey:serial=1", "no slot-id"),
        ("yubikey:slot-id=9b", "unsupported YubiKey slot-id '9b'"),
        ("yubikey:slot-id=f9", "attestation key"),
        ("pkcs11:id=01", "expected 'yubikey'"),
        ("96", "unsupported"),
    ],
)
def test_parse_slot_errors(name: str, message: str) -> None:
    with pytest.raises(KeyStoreError, match=message):
        parse_slot(name)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("yubikey:management-key=xyz", "not hexadecimal"),
        ("yubikey:management-key=0102", "16, 24 or 32 bytes"),
        ("yubikey:serial=abc", "decimal"),
        ("yubikey:pin-policy=sometimes", "unsupported pin-policy"),
        ("yubikey:touch-policy=often", "unsupported touch-policy"),
        ("yubikey:management-key-source=/nonexistent/mgm", "cannot read management-key-source"),
    ],
)
def test_bad_store_uris(uri: str, message: str) -> None:
    with pytest.raises(KeyStoreError, match=message):
        open_keystore(uri)


def test_open_keystore_is_lazy_and_says_when_no_yubikey(cards: Cards) -> None:
    store = open_keystore("yubikey:slot-id=9c")
    assert isinstance(store, YubiKeyStore)
    with pytest.raises(KeyStoreError, match="no YubiKey found"):
        store.public_key("yubikey:slot-id=9c")


# --- keys and chains ---------------------------------------------------------------------

SPECS = {
    "P-256": KeySpec("EC", "P-256"),
    "P-384": KeySpec("EC", "P-384"),
    "RSA-2048": KeySpec("RSA", size=2048),
    "Ed25519": KeySpec("OKP", "Ed25519"),
}


@pytest.mark.parametrize("kind", list(SPECS))
def test_chain_signed_in_the_card_passes_openssl_strict(
    card: VirtualPiv, kind: str, tmp_path: Path
) -> None:
    """Root in 9a and intermediate in 9c, both made in the card; a software leaf."""
    with yk(ADMIN) as store:
        root_public = store.create_key("yubikey:slot-id=9a;pin-policy=once", SPECS[kind])
        root_key = store.signer("yubikey:slot-id=9a")
        assert spki(root_key.public_key()) == spki(root_public)
        root = make_root(root_key)
        inter_public = store.create_key("yubikey:slot-id=9c", SPECS[kind])  # PIN "always"
        inter_key = store.signer("yubikey:slot-id=9c")
        intermediate = make_intermediate(inter_public, root, root_key)
        leaf_key = software_key("EC")
        leaf = make_leaf(leaf_key.public_key(), intermediate, inter_key)
        store.put_certificate("yubikey:slot-id=9a", root)
        store.put_certificate("yubikey:slot-id=9c", intermediate)
        assert store.get_certificate("yubikey:slot-id=9c") == intermediate
    result = openssl_verify(tmp_path, root, [leaf, intermediate])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "leaf.pem: OK" in result.stdout


def test_every_signature_verifies(card: VirtualPiv) -> None:
    """EC (P-256/P-384, several hashes, prehashed), RSA (PKCS#1 v1.5 and PSS), Ed25519."""
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    with yk(ADMIN + "&pin-policy=once") as store:
        for slot, spec in (("9a", SPECS["P-256"]), ("9c", SPECS["P-384"])):
            store.create_key(slot, spec)
            key = store.signer(slot)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            for algorithm in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
                signature = key.sign(MESSAGE, ec.ECDSA(algorithm))
                key.public_key().verify(signature, MESSAGE, ec.ECDSA(algorithm))
            digest = hashes.Hash(hashes.SHA256())
            digest.update(MESSAGE)
            prehashed = key.sign(digest.finalize(), ec.ECDSA(Prehashed(hashes.SHA256())))
            key.public_key().verify(prehashed, MESSAGE, ec.ECDSA(hashes.SHA256()))
        store.create_key("9d", SPECS["RSA-2048"])
        rsa_key = store.signer("9d")
        assert isinstance(rsa_key, rsa.RSAPrivateKey)
        for algorithm in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
            signature = rsa_key.sign(MESSAGE, padding.PKCS1v15(), algorithm)
            rsa_key.public_key().verify(signature, MESSAGE, padding.PKCS1v15(), algorithm)
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        signature = rsa_key.sign(MESSAGE, pss, hashes.SHA256())
        rsa_key.public_key().verify(signature, MESSAGE, pss, hashes.SHA256())
        store.create_key("82", SPECS["Ed25519"])
        ed_key = store.signer("82")
        assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
        ed_key.public_key().verify(ed_key.sign(MESSAGE), MESSAGE)


def test_decrypt_and_ecdh(card: VirtualPiv) -> None:
    with yk(ADMIN + "&pin-policy=once") as store:
        store.create_key("9d", SPECS["RSA-2048"])
        rsa_key = store.signer("9d")
        assert isinstance(rsa_key, rsa.RSAPrivateKey)
        oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
        assert rsa_key.decrypt(rsa_key.public_key().encrypt(b"s3cret", oaep), oaep) == b"s3cret"
        store.create_key("9a", SPECS["P-256"])
        ec_key = store.signer("9a")
        assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
        peer = ec.generate_private_key(ec.SECP256R1())
        shared = ec_key.exchange(ec.ECDH(), peer.public_key())
        assert shared == peer.exchange(ec.ECDH(), ec_key.public_key())


def test_private_key_never_leaves(card: VirtualPiv) -> None:
    with yk(ADMIN) as store:
        store.create_key("9c", KeySpec())
        key = store.signer("9c")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        with pytest.raises(KeyStoreError, match="cannot be exported"):
            key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        with pytest.raises(KeyStoreError, match="cannot be exported"):
            key.private_numbers()
        assert key.curve.name == "secp256r1" and key.key_size == 256


def test_key_exists_overwrite_and_not_found(card: VirtualPiv) -> None:
    with yk(ADMIN) as store:
        with pytest.raises(KeyNotFoundError, match="no key in YubiKey 11111111 slot 9c"):
            store.public_key("yubikey:slot-id=9c")
        with pytest.raises(KeyNotFoundError):
            store.signer("yubikey:slot-id=9c")
        first = store.create_key("yubikey:slot-id=9c", KeySpec())
        with pytest.raises(KeyExistsError, match="already holds a key"):
            store.create_key("yubikey:slot-id=9c", KeySpec())
        second = store.create_key("yubikey:slot-id=9c", KeySpec(), overwrite=True)
        assert spki(first) != spki(second)
        assert spki(store.public_key("yubikey:slot-id=9c")) == spki(second)


def test_policies_from_uri_and_arguments(card: VirtualPiv) -> None:
    with yk(ADMIN + "&pin-policy=never") as store:
        store.create_key("yubikey:slot-id=9a", KeySpec())
        store.create_key("yubikey:slot-id=9c;pin-policy=once;touch-policy=cached", KeySpec())
        store.create_key("9d", KeySpec(), pin_policy=PIN_POLICY.ALWAYS)
        store.create_key("82", KeySpec("EC", "P-384"))
    assert (card.state.keys[0x9A].pin_policy, card.state.keys[0x9A].touch_policy) == (1, 1)
    assert (card.state.keys[0x9C].pin_policy, card.state.keys[0x9C].touch_policy) == (2, 3)
    assert card.state.keys[0x9D].pin_policy == 3
    with yk(ADMIN) as store:  # step's default: PIN "always", touch "never"
        store.create_key("83", KeySpec())
    assert (card.state.keys[0x83].pin_policy, card.state.keys[0x83].touch_policy) == (3, 1)


def test_unsupported_keys(cards: Cards) -> None:
    cards.add((5, 4, 3), serial=543)
    with yk(ADMIN) as store:
        with pytest.raises(KeyStoreError, match="cannot generate ED25519"):
            store.create_key("9c", KeySpec("OKP", "Ed25519"))
        with pytest.raises(KeyStoreError, match="no P-521 keys"):
            store.create_key("9c", KeySpec("EC", "P-521"))
        with pytest.raises(KeyNotFoundError):
            store.public_key("9c")  # nothing was made


def test_x25519_slot_gives_no_signer(card: VirtualPiv) -> None:
    piv = PivSession(card.connect())
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    from yubikit.piv import KEY_TYPE

    piv.generate_key(SLOT.RETIRED1, KEY_TYPE.X25519)
    with yk(ADMIN) as store, pytest.raises(KeyStoreError, match="X25519"):
        store.signer("82")


# --- PIN -------------------------------------------------------------------------------


def _card_with_key(card: VirtualPiv, slot: str = "9c", policy: str = "always") -> None:
    with yk(f"yubikey:slot-id={slot};allow-default-management-key=true") as store:
        store.create_key(f"yubikey:slot-id={slot};pin-policy={policy}", KeySpec())
    card.state.pin, card.state.pin_default = b"24681357", False  # the owner set a PIN


def test_wrong_pin_reports_tries_left_and_is_not_retried(card: VirtualPiv) -> None:
    _card_with_key(card)
    store = yk("yubikey:slot-id=9c?pin-value=13572468")
    before = verifies(card)
    with pytest.raises(WrongPasswordError, match=r"^wrong PIN for YubiKey 11111111: 2 tries left$"):
        store.signer("yubikey:slot-id=9c")
    with pytest.raises(WrongPasswordError, match="2 tries left"):  # the same answer, no VERIFY
        store.signer("yubikey:slot-id=9c")
    assert verifies(card) == before + 1
    assert card.state.pin_left == 2
    store.close()
    with pytest.raises(WrongPasswordError, match="1 try left"):  # a new store tries once
        yk("yubikey:slot-id=9c?pin-value=13572468").signer("9c")
    assert card.state.pin_left == 1


def test_last_try_is_never_spent(card: VirtualPiv) -> None:
    _card_with_key(card)
    card.state.pin_left = 1
    before = verifies(card)
    for pin in ("24681357", "00000000"):  # right or wrong: not sent
        with pytest.raises(WrongPasswordError, match="has 1 try left: Stepstone will not risk"):
            yk(f"yubikey:slot-id=9c?pin-value={pin}").signer("9c")
    assert verifies(card) == before and card.state.pin_left == 1
    card.state.pin_left = 0
    with pytest.raises(WrongPasswordError, match="blocked: unblock it with the PUK"):
        yk("yubikey:slot-id=9c?pin-value=24681357").signer("9c")


def test_unblocked_with_puk_then_usable(card: VirtualPiv) -> None:
    _card_with_key(card)
    card.state.pin_left = 0
    PivSession(card.connect()).unblock_pin("12345678", "11223344")
    with yk("yubikey:slot-id=9c?pin-value=11223344") as store:
        key = store.signer("9c")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        key.public_key().verify(
            key.sign(MESSAGE, ec.ECDSA(hashes.SHA256())), MESSAGE, ec.ECDSA(hashes.SHA256())
        )


def test_pin_length_is_checked_before_sending(card: VirtualPiv) -> None:
    _card_with_key(card)
    before = verifies(card)
    for pin in ("123", "123456789"):
        with pytest.raises(WrongPasswordError, match="6 to 8 characters"):
            yk(f"yubikey:slot-id=9c?pin-value={pin}").signer("9c")
    assert verifies(card) == before and card.state.pin_left == 3


def test_pin_always_is_verified_for_every_signature(card: VirtualPiv) -> None:
    _card_with_key(card, "9c", "always")
    # The card itself refuses a second signature after one VERIFY ...
    raw = PivSession(card.connect())
    raw.verify_pin("24681357")
    from yubikit.core.smartcard import ApduError
    from yubikit.piv import KEY_TYPE

    raw.sign(SLOT.SIGNATURE, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
    with pytest.raises(ApduError) as refused:
        raw.sign(SLOT.SIGNATURE, KEY_TYPE.ECCP256, MESSAGE, hashes.SHA256())
    assert refused.value.sw == SW.SECURITY_CONDITION_NOT_SATISFIED
    # ... so the store verifies the PIN again before each one.
    with yk("yubikey:slot-id=9c?pin-value=24681357") as store:
        before = verifies(card)
        key = store.signer("9c")  # checks the PIN
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        for _ in range(3):
            signature = key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
            key.public_key().verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
        assert verifies(card) == before + 1 + 3


def test_pin_once_is_verified_once_per_session(card: VirtualPiv) -> None:
    _card_with_key(card, "9a", "once")
    with yk("yubikey:slot-id=9a?pin-value=24681357") as store:
        before = verifies(card)
        key = store.signer("9a")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        for _ in range(5):
            key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
        assert verifies(card) == before + 1


def test_pin_never_is_not_asked(card: VirtualPiv) -> None:
    _card_with_key(card, "9e", "never")
    with yk("yubikey:slot-id=9e") as store:  # no PIN at all
        key = store.signer("9e")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    assert verifies(card) == 0


def test_card_that_forgot_the_pin_is_verified_again(cards: Cards, card: VirtualPiv) -> None:
    _card_with_key(card, "9a", "once")
    with yk("yubikey:slot-id=9a?pin-value=24681357") as store:
        key = store.signer("9a")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
        # Another program selects the PIV application on the store's connection.
        cards.connections[-1].send_and_receive(bytes.fromhex("00a4040005a000000308"))
        before = verifies(card)
        signature = key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
        key.public_key().verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
        assert verifies(card) == before + 1


def test_pin_sources(card: VirtualPiv, tmp_path: Path) -> None:
    _card_with_key(card, "9a", "once")
    (tmp_path / "pin.txt").write_text("24681357\n")
    for uri, password in (
        ("yubikey:slot-id=9a?pin-source=pin.txt", None),
        ("yubikey:slot-id=9a", b"24681357"),  # open_keystore's password is the PIN
    ):
        with yk(uri, password=password, base_dir=tmp_path) as store:
            store.signer("yubikey:slot-id=9a")
    with yk("yubikey:", base_dir=tmp_path) as store:  # PIN in the key name
        store.signer("yubikey:slot-id=9a?pin-value=24681357")
    assert card.state.pin_left == 3


def test_missing_pin(card: VirtualPiv, caplog: pytest.LogCaptureFixture) -> None:
    _card_with_key(card, "9a", "once")
    with pytest.raises(WrongPasswordError, match="needs the PIN: give pin-value or pin-source"):
        yk("yubikey:slot-id=9a").signer("9a")
    assert verifies(card) == 0
    card.state.pin, card.state.pin_default = b"123456\xff\xff", True
    with caplog.at_level(logging.WARNING, "keystores.yubikey"):
        yk("yubikey:slot-id=9a").signer("9a")  # the card says: factory default
    assert "factory default PIN" in caplog.text


def test_threads_share_one_card(card: VirtualPiv) -> None:
    _card_with_key(card, "9a", "once")
    with yk("yubikey:slot-id=9a?pin-value=24681357") as store:
        key = store.signer("9a")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for i in range(10):
                    data = MESSAGE + bytes([i])
                    key.public_key().verify(
                        key.sign(data, ec.ECDSA(hashes.SHA256())), data, ec.ECDSA(hashes.SHA256())
                    )
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []


def test_older_firmware_without_metadata(cards: Cards) -> None:
    card = cards.add((5, 2, 7), serial=527)
    with yk(ADMIN) as store:
        made = store.create_key("9a", KeySpec(), pin_policy=PIN_POLICY.ONCE)
        assert spki(store.public_key("9a")) == spki(made)  # from the attestation
        key = store.signer("9a")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        before = verifies(card)
        for _ in range(2):
            key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
        assert verifies(card) == before + 2  # policy unknown: verified every time


# --- management key ----------------------------------------------------------------------


def test_management_key_is_required(card: VirtualPiv, caplog: pytest.LogCaptureFixture) -> None:
    with yk("yubikey:?pin-value=123456") as store:
        with pytest.raises(KeyStoreError, match="allow-default-management-key=true"):
            store.create_key("9c", KeySpec())
        assert 0x9C not in card.state.keys
    with caplog.at_level(logging.WARNING, "keystores.yubikey"), yk(ADMIN) as store:
        store.create_key("9c", KeySpec())
    assert "factory default management key" in caplog.text


@pytest.mark.parametrize(
    ("version", "key_type", "key"),
    [
        ((5, 4, 3), MANAGEMENT_KEY_TYPE.TDES, bytes.fromhex("0123456789abcdef" * 3)),
        ((5, 7, 2), MANAGEMENT_KEY_TYPE.AES192, bytes.fromhex("00112233445566778899aabb" * 2)),
        ((5, 7, 2), MANAGEMENT_KEY_TYPE.AES256, bytes(range(32))),
    ],
)
def test_management_keys(
    cards: Cards,
    tmp_path: Path,
    version: tuple[int, int, int],
    key_type: MANAGEMENT_KEY_TYPE,
    key: bytes,
) -> None:
    card = cards.add(version, serial=4242)
    piv = PivSession(card.connect())
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    piv.set_management_key(key_type, key)
    with yk(f"yubikey:management-key={key.hex()}") as store:
        store.create_key("9a", KeySpec())
    (tmp_path / "mgm.hex").write_text(key.hex().upper() + "\n")
    with yk("yubikey:management-key-source=mgm.hex", base_dir=tmp_path) as store:
        store.create_key("9c", KeySpec())
    wrong = bytes(len(key))
    with (
        yk(f"yubikey:management-key={wrong.hex()}") as store,
        pytest.raises(KeyStoreError, match="YubiKey 4242 rejected the management key"),
    ):
        store.create_key("9d", KeySpec())
    other_length = bytes(16 if len(key) != 16 else 24)
    with (
        yk(f"yubikey:management-key={other_length.hex()}") as store,
        pytest.raises(KeyStoreError, match=f"has a {key_type.name} management key"),
    ):
        store.create_key("9d", KeySpec())
    with yk(ADMIN) as store, pytest.raises(KeyStoreError, match="management key"):
        store.create_key("9d", KeySpec())  # the default is not the key any more
    assert set(card.state.keys) == {0x9A, 0x9C, 0xF9}


# --- certificates and attestation --------------------------------------------------------


def test_certificates(card: VirtualPiv) -> None:
    with yk(ADMIN) as store:
        with pytest.raises(KeyNotFoundError, match="no certificate in YubiKey 11111111 slot 9c"):
            store.get_certificate("9c")
        public = store.create_key("9c", KeySpec())
        key = store.signer("9c")
        root = make_root(key)
        assert spki(root.public_key()) == spki(public)
        store.put_certificate("yubikey:slot-id=9c", root)
        assert store.get_certificate(SLOT.SIGNATURE) == root
        other = make_root(software_key("EC"))
        with pytest.raises(KeyStoreError, match="does not match the key"):
            store.put_certificate("9c", other)
        store.put_certificate("95", other)  # an empty slot may hold any certificate
        store.delete_certificate("95")
        with pytest.raises(KeyNotFoundError):
            store.get_certificate("95")
    with yk("yubikey:") as store, pytest.raises(KeyStoreError, match="management key"):
        store.put_certificate("9c", root)


def test_attestation(card: VirtualPiv) -> None:
    with yk(ADMIN) as store:
        public = store.create_key(
            "yubikey:slot-id=9a;pin-policy=once;touch-policy=always", KeySpec("EC", "P-384")
        )
        attestation, f9 = store.attestation_chain("yubikey:slot-id=9a")
        assert spki(attestation.public_key()) == spki(public)
        assert store.get_certificate("f9") == f9
        assert store.serial == 11111111 and store.firmware == "5.7.2"
    attestation.verify_directly_issued_by(f9)
    f9.verify_directly_issued_by(card.state.attestation_root)
    facts = parse_attestation(attestation)
    assert (facts.serial, facts.firmware, facts.pin_policy, facts.touch_policy) == (
        11111111,
        "5.7.2",
        "once",
        "always",
    )
    assert facts.form_factor == 1


def test_imported_keys_cannot_be_attested(card: VirtualPiv) -> None:
    piv = PivSession(card.connect())
    piv.authenticate(DEFAULT_MANAGEMENT_KEY)
    piv.put_key(SLOT.AUTHENTICATION, ec.generate_private_key(ec.SECP256R1()))
    with yk("yubikey:") as store:
        with pytest.raises(KeyStoreError, match="no key generated on the card"):
            store.attest("9a")
        with pytest.raises(KeyStoreError, match="no key generated on the card"):
            store.attest("9c")


# --- several YubiKeys, closing, the test provider ----------------------------------------


def test_serial_picks_the_yubikey(cards: Cards) -> None:
    first = cards.add(serial=1001)
    second = cards.add(serial=1002)
    with yk(ADMIN.replace("yubikey:", "yubikey:serial=1002;")) as store:
        store.create_key("9c", KeySpec())
        assert store.serial == 1002
    assert 0x9C in second.state.keys and 0x9C not in first.state.keys
    with yk("yubikey:") as store:  # the key URI may name the YubiKey
        assert store.public_key("yubikey:serial=1002;slot-id=9c") is not None
    with pytest.raises(KeyStoreError, match=r"several YubiKeys are present \(1001, 1002\)"):
        yk("yubikey:").public_key("9c")
    with pytest.raises(KeyNotFoundError, match="no YubiKey with serial 1003"):
        yk("yubikey:serial=1003").public_key("9c")
    with (
        yk("yubikey:serial=1001") as store,
        pytest.raises(KeyStoreError, match="names YubiKey 1002, but the store uses 1001"),
    ):
        store.public_key("yubikey:serial=1002;slot-id=9c")


def test_reader_filter(cards: Cards) -> None:
    cards.add(serial=1)
    cards.add(serial=2)
    with yk("yubikey:reader=Emulated YubiKey 1") as store:
        assert store.serial == 2
    with pytest.raises(KeyStoreError, match="no YubiKey found in a reader named like 'Nope'"):
        yk("yubikey:reader=Nope").public_key("9c")


def test_closed_store(card: VirtualPiv, cards: Cards) -> None:
    store = yk(ADMIN)
    store.create_key("9c", KeySpec())
    key = store.signer("9c")
    store.close()
    store.close()
    assert cards.connections[-1].closed
    with pytest.raises(KeyStoreError, match="closed"):
        store.public_key("9c")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    with pytest.raises(KeyStoreError, match="closed"):
        key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))


def test_provider_registered_in_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process (a step-ca, say) finds the emulated card once the test registers the
    provider in it; production code reads no provider from the environment."""
    state = tmp_path / "card.json"
    FileBackedPiv(state, new_card_state((5, 7, 2), 777))
    monkeypatch.setenv(ENV_STATE, str(state))
    previous = register_connection_provider(provider_from_env)
    try:
        with yk(ADMIN) as store:
            public = store.create_key("yubikey:slot-id=9c;pin-policy=once", KeySpec())
    finally:
        register_connection_provider(previous)
    code = (
        "from keystores import open_keystore\n"
        "from keystores.yubikey import register_connection_provider\n"
        "from tests.piv_emulator import provider_from_env\n"
        "from cryptography.hazmat.primitives import hashes\n"
        "from cryptography.hazmat.primitives.asymmetric import ec\n"
        "import sys\n"
        "register_connection_provider(provider_from_env)\n"
        "store = open_keystore('yubikey:serial=777?pin-value=123456')\n"
        "key = store.signer('yubikey:slot-id=9c')\n"
        "sys.stdout.write(key.sign(b'x', ec.ECDSA(hashes.SHA256())).hex())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(bytes.fromhex(result.stdout), b"x", ec.ECDSA(hashes.SHA256()))


def test_default_provider_is_pcsc() -> None:
    """No provider registered: PC/SC readers (none here, or no pcscd)."""
    previous = register_connection_provider(None)
    try:
        with pytest.raises(KeyStoreError, match=r"pcscd|smart card|no YubiKey"):
            yk("yubikey:slot-id=9c").public_key("yubikey:slot-id=9c")
    finally:
        register_connection_provider(previous)


def test_no_provider_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The old test-only variable is not read by production code any more."""
    monkeypatch.setenv("STEPSTONE_YUBIKEY_TEST_PROVIDER", "tests.piv_emulator:provider_from_env")
    previous = register_connection_provider(None)
    try:
        with pytest.raises(KeyStoreError, match=r"pcscd|smart card|no YubiKey"):
            yk("yubikey:").public_key("9c")
    finally:
        register_connection_provider(previous)


def test_lock_files_are_per_yubikey(cards: Cards, lock_dir: Path) -> None:
    cards.add(serial=11112222)  # a serial no other test uses: lock files stay open per process
    with yk(ADMIN) as store:
        store.create_key("9c", KeySpec())
    assert [p.name for p in lock_dir.iterdir()] == [
        f"stepstone-yubikey-{os.getuid()}-11112222.lock"
    ]


# --- the appliance's signer and the ceremony ---------------------------------------------


def test_issuer_signer_from_ca_json_kms(card: VirtualPiv, tmp_path: Path) -> None:
    """appliance.signer opens the store as step-ca's ca.json says (kms type, pin, key)."""
    from appliance.signer import IssuerSigner

    with yk(ADMIN) as store:
        root_public = store.create_key("9a", KeySpec(), pin_policy=PIN_POLICY.ONCE)
        root_key = store.signer("9a")
        root = make_root(root_key)
        public = store.create_key("9c", KeySpec(), pin_policy=PIN_POLICY.ONCE)
        intermediate = make_intermediate(public, root, root_key)
    assert root_public is not None
    kms = {"type": "yubikey", "pin": "123456", "managementKey": DEFAULT_MANAGEMENT_KEY.hex()}
    issuer = IssuerSigner(kms, "yubikey:slot-id=9c", intermediate, None, tmp_path)
    issuer.check()  # in a child process
    key = issuer.get()
    leaf = make_leaf(software_key("EC").public_key(), intermediate, key)
    leaf.verify_directly_issued_by(intermediate)
    wrong = IssuerSigner(
        {"type": "yubikey", "pin": "999999"}, "yubikey:slot-id=9c", intermediate, None, tmp_path
    )
    with pytest.raises(KeyStoreError, match=r"wrong PIN .* 2 tries left"):
        wrong.check()


def test_ceremony_root_on_yubikey(card: VirtualPiv) -> None:
    """appliance.ceremony: root made and self-signed in the card, an intermediate CSR signed."""
    from appliance import ceremony

    uri = "yubikey:slot-id=9a;allow-default-management-key=true?pin-value=123456"
    result = ceremony.create_root(uri, "Ceremony", KeySpec("EC", "P-384"), None)
    assert result.key_created
    result.certificate.verify_directly_issued_by(result.certificate)
    again = ceremony.create_root(uri, "Ceremony", KeySpec("EC", "P-384"), None)
    assert not again.key_created and spki(again.public_key) == spki(result.public_key)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Ceremony"),
                    x509.NameAttribute(x509.NameOID.COMMON_NAME, "Ceremony Intermediate CA"),
                ]
            )
        )
        .sign(inter_key, hashes.SHA256())
    )
    cert, root_public = ceremony.sign_intermediate(csr, uri, result.certificate, None)
    cert.verify_directly_issued_by(result.certificate)
    assert spki(root_public) == spki(result.public_key)
