"""The SSH CA keys of ca.json's `ssh` block, opened through the same key stores as the
intermediate's key (a file path or a key URI, with the `kms` block), and the public keys
`/ssh/roots` and `/ssh/federation` list.

As appliance.signer: file keys are decrypted at start-up; hardware-held keys are opened
lazily in each process that signs, never in the gunicorn master.
"""

from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    SSHCertificate,
    SSHCertificateType,
)

from appliance.config import CAConfig
from keystores import KeyLocation, KeyStore, KeyStoreError, SigningKey, open_keystore
from pki.errors import CAError, ErrorKind
from pki.jose import key_from_jwk

SSHPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def ssh_public_text(public: Any) -> str:
    """`<type> <base64>`: an SSH public key as authorized_keys and known_hosts have it."""
    return bytes(public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)).decode()


def ssh_wire_b64(public: Any) -> str:
    """Base64 of the key's SSH wire format: how step-ca's JSON carries SSH public keys."""
    return ssh_public_text(public).split(" ")[1]


def cert_wire(cert: SSHCertificate) -> bytes:
    """A certificate's SSH wire format (`public_bytes` gives the `<type> <base64>` line)."""
    return base64.b64decode(cert.public_bytes().split(b" ")[1])


class SSHKeySigner:
    """One SSH CA key (`ssh.userKey` or `ssh.hostKey`), its store opened once per process."""

    def __init__(
        self, kms: dict[str, Any] | None, key: str, password: bytes | None, base_dir: Path
    ) -> None:
        self.location = KeyLocation.from_config(kms, key)
        self.key = key
        self.hardware = self.location.hardware
        self._password = None if self.hardware else password
        self._base_dir = base_dir
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._store: KeyStore | None = None
        self._signer: SigningKey | None = None

    def get(self) -> SigningKey:
        """The signer for this process (KeyStoreError when the store is unavailable)."""
        pid = os.getpid()
        with self._lock:
            if self._signer is None or self._pid != pid:
                store = open_keystore(
                    self.location.store_uri, password=self._password, base_dir=self._base_dir
                )
                self._signer = store.signer(self.key)
                self._store = store
                self._pid = pid
            return self._signer

    def public_key(self) -> SSHPublicKey:
        """The CA's public key (opens the key in this process)."""
        public = self.get().public_key()
        if not isinstance(public, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey,
                                   ed25519.Ed25519PublicKey)):  # fmt: skip
            raise KeyStoreError(f"the SSH CA key {self.key} has a type SSH cannot use")
        return public


@dataclass
class SSHKeys:
    """The SSH CA: its signers (None when ca.json names no such key) and federated keys."""

    user: SSHKeySigner | None = None
    host: SSHKeySigner | None = None
    user_federated: list[Any] = field(default_factory=list)
    host_federated: list[Any] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.user is not None or self.host is not None

    @classmethod
    def load(cls, config: CAConfig, password: bytes | None) -> SSHKeys:
        """The `ssh` block's keys; file keys are opened now so a wrong password stops the CA."""
        ssh = config.ssh
        if ssh is None:
            return cls()
        if password is None and config.password:
            password = config.password.encode()
        kms = config.kms.as_json() if config.kms else None
        out = cls()
        for attr, key in (("user", ssh.userKey), ("host", ssh.hostKey)):
            if key:
                signer = SSHKeySigner(kms, key, password, config.base_dir)
                if not signer.hardware:
                    signer.public_key()
                setattr(out, attr, signer)
        for item in ssh.keys or []:
            try:
                public = key_from_jwk({k: v for k, v in item.key.items() if k != "d"})
            except (ValueError, KeyError, TypeError) as exc:
                raise KeyStoreError(f"ssh.keys: invalid key: {exc}") from None
            if item.type == "user":
                out.user_federated.append(public)
            elif item.type == "host":
                out.host_federated.append(public)
            else:
                raise KeyStoreError(f"ssh.keys: unknown type {item.type!r} (user or host)")
        return out

    def verification_keys(self) -> dict[SSHCertificateType, list[Any]]:
        """The keys an SSHPOP certificate may be signed by, own and federated, by type."""
        return {
            SSHCertificateType.USER: ([self.user.public_key()] if self.user else [])
            + self.user_federated,
            SSHCertificateType.HOST: ([self.host.public_key()] if self.host else [])
            + self.host_federated,
        }

    def signer(self, cert_type: str) -> SigningKey:
        """The user or host CA key; step-ca's 501 when that kind is not configured."""
        signer = self.user if cert_type == "user" else self.host
        if signer is None:
            raise CAError(
                ErrorKind.NOT_IMPLEMENTED,
                f"authority.SignSSH: {cert_type} certificate signing is not enabled",
            )
        return signer.get()

    def roots(self, *, federated: bool) -> dict[str, list[str]]:
        """`{"userKey":[...],"hostKey":[...]}` (base64 wire format), empty lists left out as
        step-ca's omitempty does; the federated form adds `ssh.keys`."""
        out: dict[str, list[str]] = {}
        for name, signer, extra in (
            ("userKey", self.user, self.user_federated),
            ("hostKey", self.host, self.host_federated),
        ):
            keys = [signer.public_key()] if signer is not None else []
            if federated:
                keys += extra
            if keys:
                out[name] = [ssh_wire_b64(k) for k in keys]
        return out


def decode_public_key(value: str) -> SSHPublicKey:
    """`publicKey` of a request: base64 of the SSH wire format (or an authorized_keys line)."""
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    text = value.strip()
    if " " not in text:
        try:
            blob = base64.b64decode(text, validate=True)
        except ValueError:
            raise _bad_key() from None
        kind_len = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else 0
        kind = blob[4 : 4 + kind_len].decode(errors="replace")
        text = f"{kind} {text}"
    try:
        public = load_ssh_public_key(text.encode())
    except Exception:  # cryptography raises ValueError or UnsupportedAlgorithm
        raise _bad_key() from None
    if not isinstance(public, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey,
                               ed25519.Ed25519PublicKey)):  # fmt: skip
        raise CAError(
            ErrorKind.BAD_REQUEST,
            "ssh public key type not supported",
            public="ssh certificate key algorithm is not supported",
        )
    return public


def _bad_key() -> CAError:
    return CAError(ErrorKind.BAD_REQUEST, "bad publicKey", public="error parsing publicKey")
