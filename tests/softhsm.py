"""Private SoftHSM2 tokens for tests: a conf of our own, tokens in a temp dir, never the system's.

SoftHSM2 reads SOFTHSM2_CONF once, at C_Initialize, so `activate()` must run before the
library is loaded in the test process; child processes get it through `env()` (or inherit the
activated environment). One SoftHSM per test session is the usual pattern (see
`softhsm_session`); each test then creates tokens with labels of its own.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from keystores.pkcs11 import DEFAULT_MODULE

__all__ = ["MODULE", "PIN", "SO_PIN", "SoftHSM", "Token", "softhsm_session"]

MODULE = DEFAULT_MODULE
PIN = "1234"
SO_PIN = "5678"
TEMPLATE = Path(__file__).resolve().parent.parent / "softhsm" / "softhsm2.conf.in"
_counter = itertools.count(1)


@dataclass(frozen=True)
class Token:
    """One initialised token and the way to reach it."""

    label: str
    pin: str
    so_pin: str
    directory: Path

    def uri(self, *, pin: bool = True, module: str = MODULE) -> str:
        """The store URI, `pkcs11:module-path=...;token=LABEL?pin-value=PIN`."""
        query = f"?pin-value={quote(self.pin, safe='')}" if pin else ""
        return f"pkcs11:module-path={module};token={quote(self.label, safe='')}{query}"


class SoftHSM:
    """A SoftHSM2 installation confined to `root`: conf at root/softhsm2.conf, tokens below."""

    def __init__(self, root: Path) -> None:
        if shutil.which("softhsm2-util") is None:
            raise RuntimeError("softhsm2-util is missing: apt-get install -y softhsm2")
        self.root = root
        self.tokendir = root / "tokens"
        self.removed = root / "removed"
        self.tokendir.mkdir(parents=True, exist_ok=True)
        self.removed.mkdir(exist_ok=True)
        self.conf = root / "softhsm2.conf"
        text = TEMPLATE.read_text().replace("@TOKENDIR@", str(self.tokendir))
        self.conf.write_text(text)
        self.tokens: dict[str, Token] = {}

    def env(self) -> dict[str, str]:
        """An environment for child processes (softhsm2-util, a server, a CLI)."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def activate(self) -> None:
        """Point this process at the private tokens (before the library is loaded here)."""
        os.environ["SOFTHSM2_CONF"] = str(self.conf)

    def util(self, *args: str) -> str:
        done = subprocess.run(
            ["softhsm2-util", *args], env=self.env(), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"softhsm2-util {args[0]} failed: {done.stderr or done.stdout}")
        return done.stdout

    def init_token(
        self, label: str | None = None, *, pin: str = PIN, so_pin: str = SO_PIN
    ) -> Token:
        """Initialise a free slot as a new token (a unique label when none is given)."""
        label = label or f"t{os.getpid()}-{next(_counter)}"
        before = set(self.tokendir.iterdir())
        self.util("--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin)
        (directory,) = set(self.tokendir.iterdir()) - before
        token = Token(label, pin, so_pin, directory)
        self.tokens[label] = token
        return token

    def slot_and_serial(self, token: Token) -> tuple[int, str]:
        """The token's current slot id and serial number, as softhsm2-util shows them."""
        slot: int | None = None
        serial = ""
        for line in self.util("--show-slots").splitlines():
            text = line.strip()
            if text.startswith("Slot ") and text[5:].isdigit():
                slot, serial = int(text[5:]), ""
            elif text.startswith("Serial number:"):
                serial = text.partition(":")[2].strip()
            elif text.startswith("Label:") and text.partition(":")[2].strip() == token.label:
                if slot is None:
                    break
                return slot, serial
        raise LookupError(f"token {token.label} is not in any slot")

    def remove_token(self, token: Token) -> None:
        """Make the token vanish, as if pulled out: its files move aside (restorable)."""
        shutil.move(token.directory, self.removed / token.directory.name)

    def restore_token(self, token: Token) -> None:
        """Put a removed (or re-initialised) token's saved files back in place."""
        saved = self.removed / token.directory.name
        if token.directory.exists():
            shutil.rmtree(token.directory)
        shutil.move(saved, token.directory)

    def reinit_token(self, token: Token) -> None:
        """Re-initialise the token in place (its keys are gone); a copy is kept for restore."""
        saved = self.removed / token.directory.name
        if saved.exists():
            shutil.rmtree(saved)
        shutil.copytree(token.directory, saved)
        self.util(
            "--init-token",
            "--token",
            token.label,
            "--label",
            token.label,
            "--pin",
            token.pin,
            "--so-pin",
            token.so_pin,
        )


@contextmanager
def softhsm_session(root: Path) -> Iterator[SoftHSM]:
    """A SoftHSM for a test session, activated in this process; restores SOFTHSM2_CONF after.

    The library state of keystores.pkcs11 is finalised on both ends so that it is loaded
    with this configuration and left clean for whatever runs next.
    """
    from keystores.pkcs11 import finalize_process

    previous = os.environ.get("SOFTHSM2_CONF")
    hsm = SoftHSM(root)
    finalize_process()
    hsm.activate()
    try:
        yield hsm
    finally:
        finalize_process()
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
