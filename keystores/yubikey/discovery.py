"""Finding YubiKeys: the readers that may hold one, and how to connect to each.

By default PC/SC readers named like a YubiKey (ykman's `list_readers`), in shared mode, so
gunicorn workers and other programs can take turns. `register_connection_provider` replaces
that in-process, e.g. with an emulator in tests; production code has no other way in (no
environment hook). A provider returns `(reader name, open connection)` pairs.

A PC/SC connection never disturbs a card another handle uses: it connects and disconnects
with SCARD_LEAVE_CARD (ykman's connection, pyscard's default, powers the card down on
disconnect, and pcscd turns that into a reset of the card under every other handle). A card
reset or removed under an open connection raises `CardReset` or `CardRemoved`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from yubikit.core import TRANSPORT
from yubikit.core.smartcard import SmartCardConnection

from keystores.base import KeyStoreError, KeyStoreUnavailableError

__all__ = [
    "CardRemoved",
    "CardReset",
    "ConnectionProvider",
    "PcscConnection",
    "Reader",
    "readers",
    "register_connection_provider",
    "transaction",
]

YUBIKEY_READER = "yubico yubikey"

#: A reader: its name and a function that opens a connection to the card in it.
Reader = tuple[str, Callable[[], SmartCardConnection]]
#: Lists the readers that may hold a YubiKey.
ConnectionProvider = Callable[[], Sequence[Reader]]

# PC/SC result codes (winscard.h), as unsigned 32-bit values.
SCARD_W_RESET_CARD = 0x80100068
SCARD_W_REMOVED_CARD = 0x80100069
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_READER_UNAVAILABLE = 0x80100017
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_SERVICE_STOPPED = 0x8010001E
SCARD_POWERED = 0x0010  # SCardStatus state bit
_RESET = {SCARD_W_RESET_CARD, SCARD_W_UNPOWERED_CARD}
_NO_SERVICE = {SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED}

_provider: ConnectionProvider | None = None
_provider_generation = 0


class CardReset(Exception):
    """The card was reset (or powered down) under this connection by another handle."""


class CardRemoved(Exception):
    """The card (or its reader, or pcscd) went away under this connection."""


def provider_generation() -> int:
    """Changes whenever a provider is registered: held connections of an older one are stale."""
    return _provider_generation


def register_connection_provider(provider: ConnectionProvider | None) -> ConnectionProvider | None:
    """Use `provider` to find YubiKeys in this process (None: back to PC/SC).

    Returns the provider it replaces, so a caller can put it back.
    """
    global _provider, _provider_generation
    previous, _provider = _provider, provider
    _provider_generation += 1
    return previous


def _hresult(exc: Exception) -> int:
    return int(getattr(exc, "hresult", -1)) & 0xFFFFFFFF


def is_empty_reader(exc: Exception) -> bool:
    """Whether a failed connect means only that no card is in the reader."""
    return _hresult(exc) in (SCARD_E_NO_SMARTCARD, SCARD_W_REMOVED_CARD)


class PcscConnection(SmartCardConnection):
    """A yubikit connection over a pyscard connection, shared mode, SCARD_LEAVE_CARD."""

    def __init__(self, connection: Any) -> None:
        from smartcard.scard import SCARD_LEAVE_CARD, SCARD_SHARE_SHARED

        self._leave = SCARD_LEAVE_CARD
        self.connection = connection
        try:
            connection.connect(mode=SCARD_SHARE_SHARED, disposition=SCARD_LEAVE_CARD)
        except Exception as exc:
            if _hresult(exc) != SCARD_W_UNPOWERED_CARD:
                raise
            # Another program powered the card down under the handles still open (ykman
            # disconnects so): nobody can use it until it is powered up again.
            from smartcard.scard import SCARD_RESET_CARD, SCARD_SHARE_DIRECT

            connection.connect(mode=SCARD_SHARE_DIRECT, disposition=SCARD_LEAVE_CARD)
            connection.reconnect(mode=SCARD_SHARE_SHARED, disposition=SCARD_RESET_CARD)
            connection.reconnect(mode=SCARD_SHARE_SHARED, disposition=SCARD_LEAVE_CARD)
        atr = connection.getATR()
        self._transport = TRANSPORT.USB if atr and atr[1] & 0xF0 == 0xF0 else TRANSPORT.NFC

    @property
    def transport(self) -> TRANSPORT:
        return self._transport

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        try:
            data, sw1, sw2 = self.connection.transmit(list(apdu))
        except Exception as exc:  # pyscard's CardConnectionException and friends
            code = _hresult(exc)
            if code in _RESET:
                raise CardReset(str(exc)) from None
            raise CardRemoved(str(exc)) from None
        return bytes(data), sw1 << 8 | sw2

    def _handle(self) -> Any:
        connection = self.connection
        while not hasattr(connection, "hcard") and hasattr(connection, "component"):
            connection = connection.component  # pyscard's decorators
        return getattr(connection, "hcard", None)

    def begin(self) -> None:
        """SCardBeginTransaction: another program's APDUs wait until `end` (pcscd queues
        them), so none lands between a VERIFY and the signature it allows."""
        from smartcard.scard import SCardBeginTransaction

        code = SCardBeginTransaction(self._handle()) & 0xFFFFFFFF
        if code in _RESET:
            raise CardReset("the card was reset")
        if code:
            raise CardRemoved(f"cannot begin a transaction (0x{code:08X})")

    def end(self) -> None:
        from smartcard.scard import SCardEndTransaction

        SCardEndTransaction(self._handle(), self._leave)

    def reconnect(self) -> None:
        """Acknowledge a reset: SCardReconnect leaving the card as it is, unless another
        program left it powered down (then nobody is using it: power it up)."""
        from smartcard.scard import SCARD_RESET_CARD

        try:
            self.connection.reconnect(disposition=self._leave)
            if not self._powered():
                self.connection.reconnect(disposition=SCARD_RESET_CARD)
                self.connection.reconnect(disposition=self._leave)  # and leave it at the end
        except Exception as exc:  # the card is gone too
            raise CardRemoved(str(exc)) from None

    def _powered(self) -> bool:
        from smartcard.scard import SCardStatus

        result = SCardStatus(self._handle())
        return int(result[0]) == 0 and bool(int(result[2]) & SCARD_POWERED)

    def close(self) -> None:
        try:
            self.connection.disconnect()  # with the disposition given at connect: leave
        finally:
            release = getattr(self.connection, "release", None)
            if release is not None:
                release()


@contextlib.contextmanager
def transaction(connection: SmartCardConnection) -> Iterator[None]:
    """A PC/SC transaction on connections that have them (others: nothing)."""
    begin = getattr(connection, "begin", None)
    if begin is None:
        yield
        return
    begin()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # the card went away: nothing to end
            connection.end()  # type: ignore[attr-defined]


def _pcsc_readers() -> list[Reader]:
    try:
        from ykman.pcsc import list_readers
    except ImportError as exc:  # pyscard or yubikey-manager missing
        raise KeyStoreError(f"YubiKey support is not installed: {exc}") from None
    try:
        found = list_readers()  # type: ignore[no-untyped-call]
    except Exception as exc:  # pyscard raises its own exception types; any means no PC/SC
        if _hresult(exc) in _NO_SERVICE or "service" in str(exc).lower():
            raise KeyStoreUnavailableError("pcscd is not running") from None
        raise KeyStoreUnavailableError(
            f"cannot list smart card readers (is pcscd running?): {exc}"
        ) from None

    def opener(reader: Any) -> Callable[[], SmartCardConnection]:
        def connect() -> SmartCardConnection:
            return PcscConnection(reader.createConnection())

        return connect

    return [(str(r), opener(r)) for r in found]


def readers(name_filter: str | None) -> list[Reader]:
    """The readers whose name contains `name_filter` (default: PC/SC readers named like a
    YubiKey; a registered provider's readers are all taken)."""
    if _provider is not None:
        found = list(_provider())
    else:
        found = _pcsc_readers()
        name_filter = name_filter or YUBIKEY_READER
    if name_filter is None:
        return found
    return [r for r in found if name_filter.lower() in r[0].lower()]
