"""Finding YubiKeys: the readers that may hold one, and how to connect to each.

By default PC/SC readers named like a YubiKey (ykman's `list_readers`, shared access, so
gunicorn workers can take turns). `register_connection_provider` replaces that in-process,
e.g. with an emulator in tests; production code has no other way in (no environment hook).
A provider returns `(reader name, open connection)` pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from yubikit.core.smartcard import SmartCardConnection

from keystores.base import KeyStoreError

__all__ = ["ConnectionProvider", "Reader", "readers", "register_connection_provider"]

YUBIKEY_READER = "yubico yubikey"

#: A reader: its name and a function that opens a connection to the card in it.
Reader = tuple[str, Callable[[], SmartCardConnection]]
#: Lists the readers that may hold a YubiKey.
ConnectionProvider = Callable[[], Sequence[Reader]]

_provider: ConnectionProvider | None = None


def register_connection_provider(provider: ConnectionProvider | None) -> ConnectionProvider | None:
    """Use `provider` to find YubiKeys in this process (None: back to PC/SC).

    Returns the provider it replaces, so a caller can put it back.
    """
    global _provider
    previous, _provider = _provider, provider
    return previous


def _pcsc_readers() -> list[Reader]:
    try:
        from ykman.pcsc import ScardSmartCardConnection, list_readers
    except ImportError as exc:  # pyscard or yubikey-manager missing
        raise KeyStoreError(f"YubiKey support is not installed: {exc}") from None
    try:
        readers = list_readers()  # type: ignore[no-untyped-call]
    except Exception as exc:  # pyscard raises its own exception types; any means no PC/SC
        raise KeyStoreError(f"cannot list smart card readers (is pcscd running?): {exc}") from None

    def opener(reader: object) -> Callable[[], SmartCardConnection]:
        # Shared access, so other processes (gunicorn workers) can use the key in turn.
        def connect() -> SmartCardConnection:
            connection = reader.createConnection()  # type: ignore[attr-defined]
            return ScardSmartCardConnection(connection)  # type: ignore[no-untyped-call]

        return connect

    return [(str(r), opener(r)) for r in readers]


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
