"""The YubiKey store next to other users of the card: one connection per card per process,
discovery without a second handle, disconnects that leave the card alone, recovery after a
reset or removal, clear errors, and `step kms list yubikey:`.

Cards are the project's emulator behind the store's connection-provider seam; a connection
here can be told to fail the next APDU as pyscard does when pcscd reports a reset or a
removal. PcscConnection itself is checked against a stand-in for pyscard's connection."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from cli.kms import list_command
from keystores import KeySpec, KeyStoreError, KeyStoreUnavailableError, open_keystore
from keystores.yubikey import YubiKeyStore, register_connection_provider
from keystores.yubikey.discovery import (
    SCARD_E_NO_SMARTCARD,
    SCARD_W_RESET_CARD,
    SCARD_W_UNPOWERED_CARD,
    CardRemoved,
    CardReset,
    PcscConnection,
    Reader,
    is_empty_reader,
)
from tests.piv_emulator import EmulatedConnection, Session, VirtualPiv, new_card_state

from .test_yubikey_helpers import ADMIN, lock_dir, make_root

__all__ = ["lock_dir"]  # fixture, imported for pytest

MESSAGE = b"signed while others use the card"
ECDSA = ec.ECDSA(hashes.SHA256())


class FlakyConnection(EmulatedConnection):
    """An emulated connection that fails its next signatures (GENERAL AUTHENTICATE) as pyscard
    reports a reset or a removal."""

    def __init__(self, card: VirtualPiv) -> None:
        super().__init__(card)
        self.failures: list[Exception] = []
        self.reconnects = 0

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        if self.failures and len(apdu) > 1 and apdu[1] == 0x87:
            self.session = Session()  # the card was reset: its session is gone
            raise self.failures.pop(0)
        return super().send_and_receive(apdu)

    def reconnect(self) -> None:
        self.reconnects += 1


class Plugged:
    """Emulated YubiKeys in named readers; every connection opened, per serial."""

    def __init__(self) -> None:
        self.cards: dict[str, VirtualPiv] = {}
        self.opened: list[tuple[int, FlakyConnection]] = []

    def add(self, serial: int) -> VirtualPiv:
        card = VirtualPiv(new_card_state((5, 7, 2), serial))
        self.cards[f"Yubico YubiKey {serial}"] = card
        return card

    def remove(self, serial: int) -> None:
        del self.cards[f"Yubico YubiKey {serial}"]

    def provider(self) -> list[Reader]:
        def opener(card: VirtualPiv) -> FlakyConnection:
            connection = FlakyConnection(card)
            self.opened.append((card.state.serial, connection))
            return connection

        return [(name, lambda c=card: opener(c)) for name, card in self.cards.items()]  # type: ignore[misc]

    def connections(self, serial: int) -> list[FlakyConnection]:
        return [c for s, c in self.opened if s == serial]


@pytest.fixture
def plugged() -> Iterator[Plugged]:
    cards = Plugged()
    previous = register_connection_provider(cards.provider)
    try:
        yield cards
    finally:
        register_connection_provider(previous)


def _store(uri: str) -> YubiKeyStore:
    store = open_keystore(uri)
    assert isinstance(store, YubiKeyStore)
    return store


def _with_key(serial: int, slot: str = "9a", policy: str = "once") -> None:
    uri = ADMIN.replace("yubikey:", f"yubikey:serial={serial};")
    with _store(uri) as store:
        store.create_key(f"yubikey:slot-id={slot};pin-policy={policy}", KeySpec())


# --- one connection per card, discovery without a second handle -----------------------------


def test_discovery_never_opens_a_second_handle_to_a_card_in_use(plugged: Plugged) -> None:
    """The ceremony's pattern: the root's store holds card A while the intermediate's store
    looks for card B. The old discovery opened A again to read its serial and closed that
    handle, which through pcscd reset A under the root's connection."""
    plugged.add(1001)
    plugged.add(1002)
    _with_key(1001)
    _with_key(1002)
    opened_before = len(plugged.opened)
    root = _store("yubikey:serial=1001?pin-value=123456")
    root_key = root.signer("9a")
    inter = _store("yubikey:serial=1002?pin-value=123456")
    inter_key = inter.signer("9a")
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    assert isinstance(inter_key, ec.EllipticCurvePrivateKey)
    new = plugged.opened[opened_before:]
    assert [serial for serial, _ in new] == [1001, 1002]  # one each, A not opened again
    root_key.sign(MESSAGE, ECDSA)
    # A second store on the same card shares the connection.
    again = _store("yubikey:serial=1001?pin-value=123456")
    again.public_key("9a")
    assert len(plugged.opened) == opened_before + 2
    again.close()
    assert not plugged.connections(1001)[-1].closed  # the root's store still uses it
    root.close()
    assert plugged.connections(1001)[-1].closed  # the last user closes it
    inter.close()


def test_cards_not_chosen_are_closed(plugged: Plugged) -> None:
    plugged.add(2001)
    plugged.add(2002)
    with _store("yubikey:serial=2002") as store:
        assert store.serial == 2002
        assert all(c.closed for c in plugged.connections(2001))
        assert not plugged.connections(2002)[-1].closed


# --- recovery -----------------------------------------------------------------------------


def test_reset_under_the_store_is_recovered_within_the_request(
    plugged: Plugged, caplog: pytest.LogCaptureFixture
) -> None:
    card = plugged.add(3001)
    _with_key(3001)
    with _store("yubikey:serial=3001?pin-value=123456") as store:
        key = store.signer("9a")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        key.sign(MESSAGE, ECDSA)
        connection = plugged.connections(3001)[-1]
        pins = card.pins_sent
        connection.failures.append(CardReset("Card was reset."))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="keystores.yubikey"):
            signature = key.sign(MESSAGE, ECDSA)
        key.public_key().verify(signature, MESSAGE, ECDSA)
        assert connection.reconnects == 1
        assert card.pins_sent == pins + 1  # verified again, once
        lines = [r.getMessage() for r in caplog.records]
        assert lines == ["YubiKey 3001 was reset by another program; retried"]


def test_reset_twice_is_a_503_and_the_next_request_works(plugged: Plugged) -> None:
    card = plugged.add(3002)
    _with_key(3002)
    with _store("yubikey:serial=3002?pin-value=123456") as store:
        key = store.signer("9a")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        connection = plugged.connections(3002)[-1]
        pins = card.pins_sent
        connection.failures += [CardReset("reset"), CardReset("reset again")]
        with pytest.raises(KeyStoreUnavailableError, match="YubiKey 3002 was reset by another"):
            key.sign(MESSAGE, ECDSA)
        assert card.pins_sent == pins + 1  # never more than once per request
        key.sign(MESSAGE, ECDSA)


def test_pin_never_policy_sends_no_pin_after_a_reset(plugged: Plugged) -> None:
    card = plugged.add(3003)
    _with_key(3003, policy="never")
    with _store("yubikey:serial=3003?pin-value=123456") as store:
        key = store.signer("9a")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        plugged.connections(3003)[-1].failures.append(CardReset("reset"))
        pins = card.pins_sent
        key.sign(MESSAGE, ECDSA)
        assert card.pins_sent == pins


def test_removed_card_is_a_503_until_it_is_back(plugged: Plugged) -> None:
    card = plugged.add(4001)
    _with_key(4001)
    with _store("yubikey:serial=4001?pin-value=123456") as store:
        key = store.signer("9a")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        plugged.connections(4001)[-1].failures.append(CardRemoved("No smart card inserted."))
        plugged.remove(4001)
        with pytest.raises(KeyStoreUnavailableError) as caught:
            key.sign(MESSAGE, ECDSA)
        assert str(caught.value) == "no YubiKey with serial 4001 is connected (found: none)"
        plugged.cards["Yubico YubiKey 4001"] = card  # plugged in again
        key.sign(MESSAGE, ECDSA)


def test_another_program_selecting_another_application(plugged: Plugged) -> None:
    plugged.add(5001)
    _with_key(5001)
    with _store("yubikey:serial=5001?pin-value=123456") as store:
        key = store.signer("9a")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        connection = plugged.connections(5001)[-1]
        # ykman reading DeviceInfo: SELECT of the management application (unknown to the
        # emulator: PIV is no longer selected, as on a card).
        connection.send_and_receive(bytes.fromhex("00a4040008a000000527471117"))
        signature = key.sign(MESSAGE, ECDSA)
        key.public_key().verify(signature, MESSAGE, ECDSA)


def test_missing_serial_names_the_keys_found(plugged: Plugged) -> None:
    plugged.add(6001)
    with pytest.raises(KeyStoreUnavailableError) as caught:
        _store("yubikey:serial=6002").public_key("9a")
    assert str(caught.value) == "no YubiKey with serial 6002 is connected (found: 6001)"


# --- PcscConnection against a stand-in for pyscard ------------------------------------------


class FakeScardError(Exception):
    def __init__(self, message: str, hresult: int) -> None:
        super().__init__(message)
        self.hresult = hresult


class FakePyscardConnection:
    """What PcscConnection uses of pyscard's connection, recording the dispositions."""

    def __init__(self, connect_errors: list[Exception] | None = None) -> None:
        self.calls: list[tuple[str, Any, Any]] = []
        self.connect_errors = connect_errors or []
        self.transmit_errors: list[Exception] = []
        self.disposition: Any = None

    def connect(self, protocol: Any = None, mode: Any = None, disposition: Any = None) -> None:
        self.calls.append(("connect", mode, disposition))
        if self.connect_errors:
            raise self.connect_errors.pop(0)
        self.disposition = disposition

    def reconnect(self, protocol: Any = None, mode: Any = None, disposition: Any = None) -> None:
        self.calls.append(("reconnect", mode, disposition))
        self.disposition = disposition

    def getATR(self) -> list[int]:
        return list(bytes.fromhex("3bfd1300008131fe158073c021c057597562694b657940"))

    def transmit(self, apdu: list[int]) -> tuple[list[int], int, int]:
        if self.transmit_errors:
            raise self.transmit_errors.pop(0)
        return [], 0x90, 0x00

    def disconnect(self) -> None:
        self.calls.append(("disconnect", None, self.disposition))


def test_pcsc_connection_shares_the_card_and_leaves_it_alone() -> None:
    from smartcard.scard import SCARD_LEAVE_CARD, SCARD_SHARE_SHARED

    raw = FakePyscardConnection()
    connection = PcscConnection(raw)
    assert connection.send_and_receive(b"\x00\xa4\x04\x00") == (b"", 0x9000)
    raw.transmit_errors = [
        FakeScardError("Card was reset.", SCARD_W_RESET_CARD),
        FakeScardError("No smart card inserted.", SCARD_E_NO_SMARTCARD),
    ]
    with pytest.raises(CardReset):
        connection.send_and_receive(b"\x00")
    with pytest.raises(CardRemoved):
        connection.send_and_receive(b"\x00")
    connection.close()
    assert raw.calls == [
        ("connect", SCARD_SHARE_SHARED, SCARD_LEAVE_CARD),
        ("disconnect", None, SCARD_LEAVE_CARD),  # never SCARD_UNPOWER_CARD (pyscard's default)
    ]


def test_pcsc_connection_powers_up_a_card_left_unpowered() -> None:
    from smartcard.scard import SCARD_LEAVE_CARD, SCARD_RESET_CARD

    raw = FakePyscardConnection([FakeScardError("Card is unpowered.", SCARD_W_UNPOWERED_CARD)])
    connection = PcscConnection(raw)
    connection.close()
    assert [c[2] for c in raw.calls] == [
        SCARD_LEAVE_CARD, SCARD_LEAVE_CARD, SCARD_RESET_CARD, SCARD_LEAVE_CARD, SCARD_LEAVE_CARD
    ]  # fmt: skip


def test_empty_reader_is_not_an_error() -> None:
    assert is_empty_reader(FakeScardError("No smart card inserted.", SCARD_E_NO_SMARTCARD))
    assert not is_empty_reader(FakeScardError("Card was reset.", SCARD_W_RESET_CARD))


# --- step kms list yubikey: ----------------------------------------------------------------


def _listing_app() -> typer.Typer:
    app = typer.Typer()
    app.command(name="list")(list_command)
    app.command(name="unused")(lambda: None)
    return app


def test_list_every_yubikey_and_one_by_serial(plugged: Plugged) -> None:
    plugged.add(7001)
    plugged.add(7002)
    _with_key(7001, "9c", "always")
    _with_key(7002, "9a", "once")
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_root(root_key)
    uri = ADMIN.replace("yubikey:", "yubikey:serial=7002;")
    with _store(uri) as store:
        public = store.public_key("9a")
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name.from_rfc4514_string("CN=Slot 9a"))
            .issuer_name(root.subject)
            .public_key(public)
            .serial_number(1)
            .not_valid_before(root.not_valid_before_utc)
            .not_valid_after(root.not_valid_after_utc)
            .sign(root_key, hashes.SHA256())
        )
        store.put_certificate("9a", cert)
    with _store("yubikey:") as store:
        rows = store.list_keys()
    by_uri = {row["uri"]: row for row in rows}
    assert set(by_uri) == {"yubikey:serial=7001;slot-id=9c", "yubikey:serial=7002;slot-id=9a"}
    row = by_uri["yubikey:serial=7002;slot-id=9a"]
    assert row["type"] == "ECCP256" and row["pinPolicy"] == "once"
    assert row["touchPolicy"] == "never" and row["generated"] == "true"
    assert row["subject"] == "CN=Slot 9a" and row["firmware"] == "5.7.2"
    assert by_uri["yubikey:serial=7001;slot-id=9c"]["subject"] == ""

    result = CliRunner().invoke(_listing_app(), ["list", "yubikey:serial=7002"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "YubiKey 7002: firmware 5.7.2, form factor unknown"
    assert lines[1].split("  ") == [
        "", "yubikey:serial=7002;slot-id=9a", "ECCP256", "pin-policy=once",
        "touch-policy=never", "generated on the card", "certificate CN=Slot 9a",
    ]  # fmt: skip
    assert "7001" not in result.stdout


def test_list_an_empty_yubikey_and_none(plugged: Plugged) -> None:
    plugged.add(8001)
    with _store("yubikey:") as store:
        assert store.list_keys() == [
            {
                "serial": "8001",
                "firmware": "5.7.2",
                "formFactor": "unknown",
                "reader": "Yubico YubiKey 8001",
                "uri": "yubikey:serial=8001",
            }
        ]
    plugged.remove(8001)
    with pytest.raises(KeyStoreError, match="no YubiKey is connected"), _store("yubikey:") as s:
        s.list_keys()
