"""The project's PIV emulator (tests/piv_emulator.py) as a card in a vsmartcard vpcd reader.

vpcd (a pcscd reader driver) listens on a TCP port per slot; this bridge connects to it and
answers its frames: a 2-byte big-endian length, then the payload. A 1-byte payload is a
control code (0 power off, 1 power on, 2 reset, 4 get ATR); anything else is an APDU,
answered with the response data and status word. Power off and reset end the card's session
(applet selection, PIN verified, management key authenticated), as on a real YubiKey.

Besides PIV the card answers the YubiKey management applet (SELECT with the firmware
version, READ CONFIG with DeviceInfo: serial, firmware, form factor), which ykman reads to
list keys and to find one by serial. The card state lives in this process: factory defaults
at start, gone when it exits (that is how a test "unplugs" the key).

    python -m tests.vpcd_bridge PORT --serial N [--firmware 5.7.2]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
import time

from tests.piv_emulator import OK, SW_INS, Session, VirtualPiv, new_card_state, parse_apdu, tlv

__all__ = ["MANAGEMENT_AID", "YK5_USB_ATR", "YubiKeyCard", "serve"]

# A YubiKey 5 over USB (historical bytes "YubiKey@"): ykman takes the USB path.
YK5_USB_ATR = bytes.fromhex("3bfd1300008131fe158073c021c057597562694b657940")
MANAGEMENT_AID = bytes.fromhex("a000000527471117")
CAPABILITIES = 0x023B  # OTP, U2F, OpenPGP, PIV, OATH, FIDO2


class YubiKeyCard:
    """A PIV card (VirtualPiv) plus the management applet, with one card session."""

    def __init__(self, serial: int, firmware: tuple[int, int, int] = (5, 7, 2)) -> None:
        self.piv = VirtualPiv(new_card_state(firmware, serial))
        self.session = Session()
        self.management = False  # the management applet is selected

    def power_cycle(self) -> None:
        """Power off or reset: the applet selection and the security state are gone."""
        self.session = Session()
        self.management = False

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if len(apdu) >= 4 and apdu[1] == 0xA4 and apdu[2] == 0x04:
            data = parse_apdu(apdu)[4]
            if len(data) >= 8 and MANAGEMENT_AID.startswith(data):
                self.session = Session()  # PIV is no longer selected
                self.management = True
                return ".".join(map(str, self.piv.state.version)).encode(), OK
            self.management = False
        elif self.management:
            if apdu[1] == 0x1D:  # READ CONFIG
                body = self._device_info() if apdu[2] == 0 else b""
                return bytes([len(body)]) + body, OK
            return b"", SW_INS
        return self.piv.process(self.session, apdu)

    def _device_info(self) -> bytes:
        state = self.piv.state
        caps = CAPABILITIES.to_bytes(2, "big")
        return (
            tlv(0x01, caps)
            + tlv(0x02, state.serial.to_bytes(4, "big"))
            + tlv(0x03, caps)
            + tlv(0x04, bytes([state.form_factor]))
            + tlv(0x05, bytes(state.version))
            + tlv(0x06, b"\x00\x00")
            + tlv(0x07, b"\x0f")
            + tlv(0x08, b"\x00")
            + tlv(0x0A, b"\x00")
        )


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("vpcd closed the connection")
        # vpcd writes the length and the APDU separately: acknowledge at once, or Nagle on
        # its side holds the APDU for our delayed ACK (40 ms a command).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        buf += chunk
    return buf


def _serve_connection(sock: socket.socket, card: YubiKeyCard) -> None:
    while True:
        (size,) = struct.unpack("!H", _recv_exact(sock, 2))
        message = _recv_exact(sock, size)
        if size == 1:
            if message[0] == 4:
                sock.sendall(struct.pack("!H", len(YK5_USB_ATR)) + YK5_USB_ATR)
            elif message[0] in (0, 2):
                card.power_cycle()
            continue
        data, sw = card.transmit(message)
        response = data + struct.pack("!H", sw)
        sock.sendall(struct.pack("!H", len(response)) + response)


def serve(card: YubiKeyCard, port: int, host: str = "127.0.0.1") -> None:
    """Connect to vpcd's slot on host:port and answer it; reconnect when vpcd drops us."""
    while True:
        try:
            sock = socket.create_connection((host, port))
        except OSError:
            time.sleep(0.1)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(ConnectionError, OSError):
            _serve_connection(sock, card)
        sock.close()
        card.power_cycle()


def main() -> None:
    parser = argparse.ArgumentParser(description="An emulated YubiKey for a vpcd reader")
    parser.add_argument("port", type=int)
    parser.add_argument("--serial", type=int, required=True)
    parser.add_argument("--firmware", default="5.7.2")
    args = parser.parse_args()
    major, minor, patch = (int(x) for x in args.firmware.split("."))
    card = YubiKeyCard(args.serial, (major, minor, patch))
    print(f"serving YubiKey {args.serial} to vpcd on port {args.port}", flush=True)
    serve(card, args.port)


if __name__ == "__main__":
    main()
