"""Recovering from other programs on the card, within the request that meets them.

A reset (another handle disconnected with SCARD_RESET_CARD or SCARD_UNPOWER_CARD, as ykman
does) is acknowledged and PIV selected again; a removal forgets the card, so the next use
looks for it again; another program's application selection (ykman reading DeviceInfo) is
left to finish, then PIV is selected again. `Recovery._retrying` runs the operation once
more after each kind, logging one line; the PIN is verified again only if the key's policy
asks, with the PIN that already worked. Anything beyond is a `KeyStoreUnavailableError`:
the API answers 503 with Retry-After and the next request tries again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from yubikit.piv import PivSession

from keystores.base import KeyNotFoundError, KeyStoreUnavailableError
from keystores.yubikey.discovery import CardReset
from keystores.yubikey.registry import Device, drop

__all__ = [
    "DESELECTED_PAUSE",
    "Recovery",
    "YubiKeyAbsentError",
    "YubiKeyDeselectedError",
    "YubiKeyResetError",
]

logger = logging.getLogger("keystores.yubikey")

T = TypeVar("T")


class YubiKeyAbsentError(KeyNotFoundError, KeyStoreUnavailableError):
    """The YubiKey named by serial is not connected (now): a 503 for the API, retried later."""


class YubiKeyResetError(KeyStoreUnavailableError):
    """The card was reset or removed under the operation; the store has reconnected (or will
    at the next use) and the operation may be tried again."""


class YubiKeyDeselectedError(YubiKeyResetError):
    """Another program selected another application (ykman reading the management
    application, say): PIV is selected again at the next use, after a pause."""


#: How long to leave the card to another program that is in the middle of something.
DESELECTED_PAUSE = 0.2


class Recovery:
    """The recovery half of `CardSession` (which owns these attributes)."""

    _device: Device | None
    _pin_verified: bool
    _mgm_authenticated: bool

    def _deselected(self, device: Device) -> YubiKeyDeselectedError:
        self._pin_verified = False
        self._mgm_authenticated = False
        device.needs_select = True
        return YubiKeyDeselectedError(
            f"another program selected another application on {device.label}"
        )

    def _recover(self, device: Device, exc: Exception) -> YubiKeyResetError:
        """After a reset: acknowledge it and select PIV again (the PIN is verified again by
        the retried operation, if its policy asks). After a removal: forget the card, so the
        next use looks for it again."""
        self._pin_verified = False
        self._mgm_authenticated = False
        if isinstance(exc, CardReset):
            try:
                reconnect = getattr(device.connection, "reconnect", None)
                if reconnect is not None:
                    reconnect()
                device.piv = PivSession(device.connection)
                return YubiKeyResetError(f"{device.label} was reset by another program")
            except Exception as again:  # gone as well
                exc = again
        logger.warning("%s was removed (%s)", device.label, exc)
        drop(device)
        self._device = None
        return YubiKeyResetError(f"{device.label} was removed")

    def _retrying(self, operation: Callable[[], T]) -> T:
        """Run `operation`; after a reset or removal, once more (the card found again, PIV
        selected, the PIN verified again if the key's policy asks); likewise once after
        another program selected another application (after a pause that lets it finish).
        Anything more is a `KeyStoreUnavailableError` (503): the next request tries again."""
        recovered: list[YubiKeyResetError] = []
        while True:
            try:
                result = operation()
            except YubiKeyResetError as exc:
                if any(type(seen) is type(exc) for seen in recovered):
                    raise KeyStoreUnavailableError(f"{exc}; try again later") from None
                recovered.append(exc)
                if isinstance(exc, YubiKeyDeselectedError):
                    time.sleep(DESELECTED_PAUSE)
                continue
            for seen in recovered:
                logger.warning("%s; retried", seen)
            return result
