"""The YubiKeys this process holds open: one connection per card per process, shared by every
store that uses the card, so discovery never opens a second handle to a card in use here.

Entries belong to the process that opened them (a forked child opens its own) and to the
connection provider in force (registering another makes them stale). Callers hold
`locking.process_lock()`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

from yubikit.core.smartcard import SmartCardConnection
from yubikit.piv import PivSession

from keystores.yubikey.discovery import provider_generation

__all__ = ["Device", "drop", "held", "hold", "release"]

logger = logging.getLogger("keystores.yubikey")


@dataclass
class Device:
    connection: SmartCardConnection
    piv: PivSession
    serial: int | None
    reader: str
    pid: int
    generation: int = -1
    users: int = 0
    needs_select: bool = False  # another program selected another application

    @property
    def label(self) -> str:
        return f"YubiKey {self.serial}" if self.serial is not None else f"YubiKey in {self.reader}"

    @property
    def current(self) -> bool:
        """Opened by this process, with the provider in force."""
        return self.pid == os.getpid() and self.generation == provider_generation()


_held: dict[str, Device] = {}


def held(reader: str) -> Device | None:
    """The open card in `reader`, if this process holds one."""
    device = _held.get(reader)
    if device is None or not device.current:
        return None
    return device


def hold(device: Device) -> Device:
    """Count one more user of `device` (registering it when new)."""
    device.generation = provider_generation() if device.generation < 0 else device.generation
    if _held.get(device.reader) is not device:
        _held[device.reader] = device
    device.users += 1
    return device


def release(device: Device) -> None:
    """One user fewer; the last one closes the connection (leaving the card as it is)."""
    device.users -= 1
    if device.users <= 0:
        drop(device)


def drop(device: Device) -> None:
    """Forget the card and close its connection (if this process opened it)."""
    if _held.get(device.reader) is device:
        del _held[device.reader]
    if device.pid == os.getpid():
        with contextlib.suppress(Exception):  # closing a card that is gone
            device.connection.close()
