"""An emulated YubiKey behind the private pcscd (tests/pcscd.py) whose attestation root is
known: the bridge writes the card's emulator root (the issuer of its f9 certificate) to a file,
for a CA to trust as its ACME provisioner's `attestationRoots`.

    python -m tests.e2e.attested_yubikey PORT --serial N --root-out PATH
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.pcscd import REPO, VPCD_PORT, PrivatePcscd, _ykman_serials
from tests.vpcd_bridge import YubiKeyCard, serve

__all__ = ["replug_with_known_root"]

READY_TIMEOUT = 60.0


def replug_with_known_root(server: PrivatePcscd, serial: int, root_out: Path) -> bytes:
    """Replace the card of `serial` by a fresh one from this module's bridge (ended with the
    others by `server.stop()`); its attestation root as PEM once ykman sees the card."""
    server.unplug(serial)
    slot = server.serials.index(serial)
    log = open(server.directory / f"attested-bridge-{serial}.log", "ab")  # noqa: SIM115
    with log:
        server.bridges[serial] = subprocess.Popen(
            [
                "nsenter", f"--net=/proc/{server.pcscd.pid}/ns/net", "--",
                sys.executable, "-m", "tests.e2e.attested_yubikey", str(VPCD_PORT + slot),
                "--serial", str(serial), "--root-out", str(root_out),
            ],
            cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + READY_TIMEOUT
    while not (root_out.exists() and serial in _ykman_serials(server.env)):
        if server.bridges[serial].poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the attested YubiKey did not appear:\n{server.log()}")
        time.sleep(0.2)
    return root_out.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description="An emulated YubiKey with a known root")
    parser.add_argument("port", type=int)
    parser.add_argument("--serial", type=int, required=True)
    parser.add_argument("--root-out", type=Path, required=True)
    args = parser.parse_args()
    card = YubiKeyCard(args.serial)
    tmp = args.root_out.with_suffix(".tmp")
    tmp.write_bytes(card.piv.state.attestation_root_pem)
    tmp.replace(args.root_out)
    print(f"serving YubiKey {args.serial} to vpcd on port {args.port}", flush=True)
    serve(card, args.port)


if __name__ == "__main__":
    main()
