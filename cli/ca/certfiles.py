"""A certificate and its key on disk: load them, and replace them without ever leaving a
mismatched pair behind.

Renewal keeps the key, so only the certificate file changes, with one atomic rename. Rekey
changes both: the new pair is first written next to the old one as `<name>.next`, then the key
and the certificate are renamed into place; a crash between the two renames is repaired the
next time the pair is loaded (the `.next` files roll forward), so the pair read is always one
that belongs together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cli.common import CLIError, os_error_line, write_output
from keystores import KeyStoreError
from keystores.pem import load_private_key_pem


@dataclass(frozen=True)
class CertPair:
    """A leaf, the chain that came with it, and its private key."""

    chain: list[x509.Certificate]
    key: PrivateKeyTypes

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def _next(path: Path) -> Path:
    return path.with_name(path.name + ".next")


def _same_key(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    spki = PublicFormat.SubjectPublicKeyInfo
    return bool(
        cert.public_key().public_bytes(Encoding.DER, spki)
        == key.public_key().public_bytes(Encoding.DER, spki)
    )


def recover(crt: Path, key: Path, password: bytes | None = None) -> None:
    """Finish an interrupted pair replacement, or drop one that never completed.

    The order of `save_pair` is: write crt.next, write key.next, rename the key, rename the
    certificate. Both `.next` files present: roll forward. Only crt.next: either the key was
    already renamed (crt.next matches the key: roll forward) or key.next was never written
    (the old files are still a pair: drop crt.next).
    """
    crt_next, key_next = _next(crt), _next(key)
    if key_next.exists():
        if crt_next.exists():
            os.replace(key_next, key)
            os.replace(crt_next, crt)
        else:
            key_next.unlink()
        return
    if not crt_next.exists():
        return
    try:
        pending = x509.load_pem_x509_certificates(crt_next.read_bytes())[0]
        current = load_private_key_pem(key.read_bytes(), password)
    except (OSError, ValueError, KeyStoreError):
        crt_next.unlink()
        return
    if _same_key(pending, current):
        os.replace(crt_next, crt)
    else:
        crt_next.unlink()


def load_pair(crt: Path, key: Path, password: bytes | None = None) -> CertPair:
    """Read a certificate chain and its key (after finishing any interrupted replacement)."""
    recover(crt, key, password)
    try:
        chain = x509.load_pem_x509_certificates(crt.read_bytes())
    except FileNotFoundError:
        raise CLIError(f"open {crt}: no such file or directory") from None
    except ValueError:
        raise CLIError(f"error parsing {crt}: not a PEM certificate") from None
    try:
        private = load_private_key_pem(key.read_bytes(), password)
    except FileNotFoundError:
        raise CLIError(f"open {key}: no such file or directory") from None
    except KeyStoreError as exc:
        raise CLIError(f"error loading {key}: {exc}") from None
    if not _same_key(chain[0], private):
        raise CLIError(f"the key {key} does not match the certificate {crt}")
    return CertPair(chain, private)


def chain_pem(chain: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in chain)


def save_certificate(crt: Path, chain: list[x509.Certificate]) -> None:
    """Replace the certificate file (same key) atomically."""
    write_output(crt, chain_pem(chain), mode=0o600)


def save_pair(crt: Path, key: Path, chain: list[x509.Certificate], key_pem: bytes) -> None:
    """Replace certificate and key so that a crash at any point leaves a matching pair."""
    write_output(_next(crt), chain_pem(chain), mode=0o600)
    write_output(_next(key), key_pem, mode=0o600)
    try:
        os.replace(_next(key), key)
        os.replace(_next(crt), crt)
        fd = os.open(crt.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise CLIError(os_error_line(exc)) from None
