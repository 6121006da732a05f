"""The intermediate's signer, opened from ca.json's `kms` block and `key`.

File keys are decrypted at start-up, in the process that reads the config. Hardware-held
keys (HSMs, security keys: `keystores` says which) are opened lazily in each process that
signs, never in the gunicorn master: device libraries do not survive fork. A check at
start-up runs in a short-lived child process so a wrong PIN or a missing key still stops the
CA before it serves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.metrics import keystore_operation
from keystores import KeyLocation, KeyStore, KeyStoreError, SigningKey, open_keystore

T = TypeVar("T")


def _spki(public_key: Any) -> bytes:
    return bytes(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


class IssuerSigner:
    """Hands out the issuing key, opening its store once per process."""

    def __init__(
        self,
        kms: dict[str, Any] | None,
        key: str,
        certificate: x509.Certificate,
        password: bytes | None,
        base_dir: Path,
    ) -> None:
        self.location = KeyLocation.from_config(kms, key)
        self.uri = self.location.store_uri
        self.key = key
        self.certificate = certificate
        self._password = password
        self._base_dir = base_dir
        self.hardware = self.location.hardware
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._store: KeyStore | None = None
        self._signer: SigningKey | None = None

    def _open(self) -> SigningKey:
        # The CA password decrypts key files; it is never tried as a device PIN (a wrong PIN
        # costs a retry, and enough of them lock the token): those come from the URI
        # (`pin-value`/`pin-source`) or the `kms.pin` field.
        password = None if self.hardware else self._password
        store = open_keystore(self.uri, password=password, base_dir=self._base_dir)
        signer = store.signer(self.key)
        if _spki(signer.public_key()) != _spki(self.certificate.public_key()):
            store.close()
            raise KeyStoreError(f"the key {self.key} does not match the intermediate certificate")
        self._store = store
        return signer

    def get(self) -> SigningKey:
        """The signer for this process (KeyStoreError when the store is unavailable)."""
        pid = os.getpid()
        with self._lock:
            if self._signer is None or self._pid != pid:
                self._store = None
                self._signer = self._open()
                self._pid = pid
            return self._signer

    def sign_with(self, build: Callable[[SigningKey], T]) -> T:
        """`build(key)` (which signs) with this process's key, timed as a key store operation."""
        with keystore_operation("sign"):
            return build(self.get())

    def check(self) -> None:
        """Open the key once to fail fast; hardware stores are tried in a child process."""
        self.run_safely(self._open)

    def run_safely(self, work: Callable[[], object]) -> None:
        """Run `work` (which may sign) here for software keys, in a forked child for
        hardware keys so that this process never initialises the hardware library."""
        if not self.hardware:
            work()
            return
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: work, report, exit without running the parent's cleanups
            os.close(read)
            message = b""
            try:
                work()
            except Exception as exc:  # report any failure, whatever the backend raises
                message = (str(exc) or type(exc).__name__).encode()[:4000]
            os.write(write, message)
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            message = pipe.read()
        os.waitpid(pid, 0)
        if message:
            raise KeyStoreError(message.decode(errors="replace"))
