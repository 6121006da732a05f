"""A private pcscd with emulated YubiKeys in vpcd readers, for tests through the real PC/SC stack.

pyscard -> libpcsclite -> pcscd -> vpcd (vsmartcard's reader driver) -> tests/vpcd_bridge.py
(the project's PIV emulator plus the YubiKey management applet). pcscd runs in its own mount
and network namespaces (`unshare`, as root): a tmpfs over /run there holds /run/pcscd, bound
to a directory of the test, so the system's /run/pcscd and any system pcscd are never touched;
vpcd's listening ports exist only on that namespace's loopback, where the bridges (entered
with `nsenter --net`) connect. Clients reach it through `PCSCLITE_CSOCK_NAME` (`env`).

One vpcd reader entry has two slots, named like a USB YubiKey ("Yubico YubiKey OTP+FIDO+CCID
00 00" and "... 00 01"), so up to two keys. `unplug(serial)` ends that key's bridge: the reader
stays, the card is gone, as pcscd sees a YubiKey pulled out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["READER", "PrivatePcscd", "private_pcscd", "unavailable_reason"]

READER = "Yubico YubiKey OTP+FIDO+CCID"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_PORT = 35963  # slot 0; slot 1 is the next port (vpcd's layout)
REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0


def unavailable_reason() -> str | None:
    """Why a private pcscd cannot run here (None: it can)."""
    for tool in ("unshare", "nsenter", "pcscd", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make system-deps installs pcscd, vsmartcard-vpcd)"
    if not VPCD_DRIVER.exists():
        return f"{VPCD_DRIVER} is missing (Debian package vsmartcard-vpcd)"
    probe = subprocess.run(
        ["unshare", "--mount", "--net", "--propagation", "private", "--", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot create mount and network namespaces: {probe.stderr.strip()}"
    return None


@dataclass
class PrivatePcscd:
    """A running pcscd and its card bridges (every process started here, by PID)."""

    directory: Path
    serials: list[int]
    pcscd: subprocess.Popen[bytes]
    bridges: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.directory / "ipc" / "pcscd.comm"

    @property
    def env(self) -> dict[str, str]:
        """What a PC/SC client (pyscard, ykman, step) needs to use this pcscd."""
        return {"PCSCLITE_CSOCK_NAME": str(self.socket)}

    def reader(self, serial: int) -> str:
        return f"{READER} 00 {self.serials.index(serial):02X}"

    def plug(self, serial: int) -> None:
        """Start the bridge for `serial` (a fresh card: factory defaults)."""
        slot = self.serials.index(serial)
        log = open(self.directory / f"bridge-{serial}.log", "ab")  # noqa: SIM115 - child keeps it
        with log:
            self.bridges[serial] = subprocess.Popen(
                [
                    "nsenter", f"--net=/proc/{self.pcscd.pid}/ns/net", "--",
                    sys.executable, "-m", "tests.vpcd_bridge", str(VPCD_PORT + slot),
                    "--serial", str(serial),
                ],
                cwd=str(REPO),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                start_new_session=True,
            )  # fmt: skip

    def unplug(self, serial: int) -> None:
        """End the bridge of `serial`: pcscd sees its card removed."""
        proc = self.bridges.pop(serial, None)
        if proc is not None:
            _end(proc)

    def stop(self) -> None:
        for serial in list(self.bridges):
            self.unplug(serial)
        _end(self.pcscd)

    def log(self) -> str:
        return (self.directory / "pcscd.log").read_text(errors="replace")[-3000:]


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _ykman_serials(env: dict[str, str]) -> set[int]:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ykman")), "list", "--serials"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    return {int(line) for line in proc.stdout.split() if line.isdigit()}


@contextlib.contextmanager
def private_pcscd(directory: Path, serials: list[int]) -> Iterator[PrivatePcscd]:
    """Start pcscd with one emulated YubiKey per serial (at most two); stop it on exit."""
    if not 1 <= len(serials) <= 2:
        raise ValueError("one vpcd reader entry holds one or two keys")
    directory.mkdir(parents=True, exist_ok=True)
    ipc, conf = directory / "ipc", directory / "reader.conf.d"
    ipc.mkdir(exist_ok=True)
    conf.mkdir(exist_ok=True)
    (conf / "vpcd").write_text(
        f'FRIENDLYNAME "{READER}"\nDEVICENAME /dev/null:{VPCD_PORT}\n'
        f"LIBPATH {VPCD_DRIVER}\nCHANNELID {VPCD_PORT}\n"
    )
    # Inside the namespaces: loopback up, a tmpfs over /run (the host's stays as it is),
    # /run/pcscd bound to our directory, then pcscd itself.
    script = (
        "ip link set lo up && mount -n -t tmpfs -o mode=0755 stepstone-pcscd /run && "
        'mkdir /run/pcscd && mount -n --bind "$1" /run/pcscd && '
        'exec pcscd --foreground --info --config "$2"'
    )
    with open(directory / "pcscd.log", "wb") as log:
        pcscd = subprocess.Popen(
            ["unshare", "--mount", "--net", "--propagation", "private", "--",
             "sh", "-c", script, "sh", str(ipc), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = PrivatePcscd(directory, list(serials), pcscd)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not server.socket.exists():
            if pcscd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pcscd did not start:\n{server.log()}")
            time.sleep(0.05)
        for serial in serials:
            server.plug(serial)
        while _ykman_serials(server.env) != set(serials):
            if pcscd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the emulated YubiKeys did not appear:\n{server.log()}")
            time.sleep(0.2)
        yield server
    finally:
        server.stop()
