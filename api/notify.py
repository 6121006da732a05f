"""systemd readiness (`Type=notify`): tell the service manager when the CA serves, reloads, stops.

Why hand-written: the protocol is one datagram of `KEY=value` lines on the AF_UNIX socket that
$NOTIFY_SOCKET names (sd_notify(3)), a few lines of code. python-systemd would be a C
extension for them, and gunicorn's own helper is internal and announces READY=1 as soon as
its master has booted, before any worker can serve; taking $NOTIFY_SOCKET out of the
environment first silences that one, and this module says READY=1 when a worker serves.

A name starting with `@` is an abstract socket (a leading NUL byte on the wire). Failures to
send are ignored, as sd_notify's callers do: readiness is advice to the service manager, and
the CA must serve without one.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("stepstone.server")

ENVIRONMENT = "NOTIFY_SOCKET"


class Notifier:
    """Sends sd_notify datagrams to one socket; does nothing without one."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None

    @classmethod
    def from_environment(cls) -> Notifier:
        """The socket systemd gave this process, taken out of the environment so that neither
        gunicorn's early READY=1 nor any child process uses it (sd_notify's
        `unset_environment`). Forked workers keep it through this object."""
        return cls(os.environ.pop(ENVIRONMENT, None))

    def send(self, *fields: str) -> bool:
        """One datagram of `fields` (each `KEY=value`); True if it was sent."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, target)
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        """The service serves (also the end of a reload)."""
        return self.send("READY=1", status_field(status))

    def reloading(self, status: str) -> bool:
        """A reload began; READY=1 ends it. MONOTONIC_USEC lets `Type=notify-reload` match
        the reload to its signal."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", status_field(status))

    def stopping(self, status: str) -> bool:
        return self.send("STOPPING=1", status_field(status))

    def status(self, status: str) -> bool:
        return self.send(status_field(status))


def status_field(text: str) -> str:
    """`STATUS=text` on one line: a newline would start a field of its own."""
    return "STATUS=" + " ".join(text.split())
