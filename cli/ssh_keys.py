"""SSH keys and certificates on the client: reading authorized-keys lines, writing key files
the way `step ssh certificate` writes them, fingerprints, and the fields `step ssh inspect`
shows. Parsing and serialising go through cryptography; only the signature blob that
cryptography does not expose is read by hand."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    SSHCertificate,
    SSHCertificateType,
    load_pem_private_key,
    load_ssh_private_key,
    load_ssh_public_identity,
)

from cli.certificate import encode_fingerprint
from cli.common import CLIError

SSHPublic = Any  # an SSH public key or an SSHCertificate, as cryptography returns them


def wire_blob(key: SSHPublic) -> bytes:
    """The SSH wire encoding of a public key or certificate (what `publicKey` carries)."""
    line = (
        key.public_bytes()
        if isinstance(key, SSHCertificate)
        else key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    )
    return base64.b64decode(line.split()[1])


def key_type(blob: bytes) -> str:
    """The type name at the start of a wire blob, e.g. `ecdsa-sha2-nistp256-cert-v01@...`."""
    n = int.from_bytes(blob[:4], "big")
    return blob[4 : 4 + n].decode()


def authorized_line(key: SSHPublic, comment: str) -> bytes:
    """`type base64 comment\\n`, as step writes .pub and -cert.pub files."""
    blob = wire_blob(key)
    return f"{key_type(blob)} {base64.b64encode(blob).decode()} {comment}\n".encode()


def parse_public(data: bytes, what: str = "ssh public key") -> tuple[SSHPublic, str]:
    """An authorized-keys line (or a bare base64 blob) and its comment."""
    text = data.strip()
    fields = text.split(None, 2)
    candidates = [text]
    if len(fields) == 1:  # bare base64, as `step ssh list --raw | step ssh inspect` may give
        try:
            blob = base64.b64decode(fields[0], validate=True)
            candidates = [key_type(blob).encode() + b" " + fields[0]]
        except (ValueError, UnicodeDecodeError):
            pass
    for candidate in candidates:
        try:
            key = load_ssh_public_identity(candidate)
        except (ValueError, UnsupportedAlgorithm):
            continue
        comment = fields[2].decode(errors="replace") if len(fields) > 2 else ""
        return key, comment
    raise CLIError(f"error parsing {what}")


def read_input(name: str) -> bytes:
    """A file's bytes, or stdin for `-`."""
    if name == "-":
        import sys

        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise CLIError(f"open {name}: {(exc.strerror or str(exc)).lower()}") from None


def load_certificate(data: bytes) -> SSHCertificate:
    key, _ = parse_public(data, "ssh certificate")
    if not isinstance(key, SSHCertificate):
        raise CLIError(
            "error decoding ssh certificate: the file holds a public key, not a certificate"
        )
    return key


def certificate_from_b64(value: object) -> SSHCertificate:
    """A certificate as the CA sends it: base64 of the wire blob."""
    try:
        blob = base64.b64decode(str(value), validate=True)
        cert = load_ssh_public_identity(key_type(blob).encode() + b" " + str(value).encode())
    except (ValueError, UnicodeDecodeError, UnsupportedAlgorithm):
        raise CLIError("error decoding the ssh certificate sent by the CA") from None
    if not isinstance(cert, SSHCertificate):
        raise CLIError("error decoding the ssh certificate sent by the CA")
    return cert


def public_from_b64(value: object) -> SSHPublic:
    """A CA public key as /ssh/roots sends it: base64 of the wire blob."""
    try:
        blob = base64.b64decode(str(value), validate=True)
        return load_ssh_public_identity(key_type(blob).encode() + b" " + str(value).encode())
    except (ValueError, UnicodeDecodeError, UnsupportedAlgorithm):
        raise CLIError("error decoding the ssh public keys sent by the CA") from None


# --- names, sizes, fingerprints --------------------------------------------------------------


def type_and_size(key: SSHPublic) -> tuple[str, int]:
    """step's (`ECDSA`, 256) / (`RSA-CERT`, 2048) naming of a key."""
    suffix = ""
    if isinstance(key, SSHCertificate):
        key, suffix = key.public_key(), "-CERT"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA" + suffix, key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ED25519" + suffix, 256
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA" + suffix, key.key_size
    raise CLIError(f"public key {type(key).__name__} is not supported")


def fingerprint(key: SSHPublic, encoding: str = "base64-raw") -> str:
    """`SHA256:<digest>` of the key's wire blob."""
    return "SHA256:" + encode_fingerprint(hashlib.sha256(wire_blob(key)).digest(), encoding)


def format_fingerprint(key: SSHPublic, comment: str, encoding: str, whole_cert: bool) -> str:
    """`<size> SHA256:<fp> <comment> (<TYPE>)`, as `ssh-keygen -l` and step print it."""
    typ, size = type_and_size(key)
    target = key
    if isinstance(key, SSHCertificate) and not whole_cert:
        target = key.public_key()
    return f"{size} {fingerprint(target, encoding)} {comment or 'no comment'} ({typ})"


def signature_of(cert: SSHCertificate) -> tuple[str, bytes]:
    """(format, blob) of the CA's signature: the last field of the certificate, after the
    signature key, which cryptography does not expose."""
    blob = wire_blob(cert)
    sig_key = wire_blob(cert.signature_key())
    marker = len(sig_key).to_bytes(4, "big") + sig_key
    at = blob.rfind(marker)
    if at < 0:
        return "", b""
    sig = blob[at + len(marker) + 4 :]
    n = int.from_bytes(sig[:4], "big")
    fmt = sig[4 : 4 + n].decode(errors="replace")
    rest = sig[4 + n :]
    m = int.from_bytes(rest[:4], "big")
    return fmt, rest[4 : 4 + m]


def cert_type_name(cert: SSHCertificate) -> str:
    return "host" if cert.type == SSHCertificateType.HOST else "user"


# --- key pairs and files ---------------------------------------------------------------------


def openssh_public(priv: Any) -> SSHPublic:
    return priv.public_key()


def private_openssh(priv: Any, password: bytes | None) -> bytes:
    """The private key in OpenSSH format, encrypted with `password` when given.

    cryptography needs the bcrypt module to encrypt OpenSSH keys; without it the key is
    encrypted by OpenSSH's own `ssh-keygen -p`, the password handed over through SSH_ASKPASS
    (never on a command line)."""
    if not password:
        return bytes(priv.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    try:
        return bytes(
            priv.private_bytes(
                Encoding.PEM, PrivateFormat.OpenSSH, BestAvailableEncryption(password)
            )
        )
    except UnsupportedAlgorithm:
        plain = bytes(priv.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
        return _ssh_keygen_passphrase(plain, b"", password, "encrypting")


def load_private(path: Path, password: bytes | None) -> Any:
    """A private key file: OpenSSH (encrypted or not) or PEM. An encrypted OpenSSH key is
    opened by `ssh-keygen -p` in a private temporary folder when bcrypt is missing."""
    data = read_input(str(path))
    needs_password = False
    for loader in (load_ssh_private_key, load_pem_private_key):
        try:
            return loader(data, password or None)
        except UnsupportedAlgorithm:
            if loader is load_ssh_private_key and password:
                plain = _ssh_keygen_passphrase(data, password, b"", "decrypting")
                return load_ssh_private_key(plain, None)
            needs_password = True
        except TypeError:
            needs_password = not password
        except ValueError:
            continue
    if needs_password:
        raise CLIError(f"error decrypting {path}: the key is encrypted, a password is needed")
    raise CLIError(f"error parsing private key {path}")


def _ssh_keygen_passphrase(key_data: bytes, old: bytes, new: bytes, what: str) -> bytes:
    """`ssh-keygen -p` on a copy of the key: `old` passphrase to `new`, both given through
    SSH_ASKPASS (or -P/-N when empty) so that no password is ever on a command line."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise CLIError(f"error {what} the private key: ssh-keygen not found")
    with tempfile.TemporaryDirectory(prefix="step-ssh-") as tmp:
        key = Path(tmp) / "key"
        key.write_bytes(key_data)
        key.chmod(0o600)
        secret = Path(tmp) / "secret"
        secret.write_bytes((old or new) + b"\n")
        secret.chmod(0o600)
        askpass = Path(tmp) / "askpass"
        askpass.write_text(f"#!/bin/sh\ncat '{secret}'\n")
        askpass.chmod(stat.S_IRWXU)
        env = dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
        args = [keygen, "-q", "-p", "-f", str(key)]
        args += ["-N", ""] if old else ["-P", ""]
        result = subprocess.run(
            args, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False
        )
        if result.returncode != 0:
            reason = result.stderr.decode(errors="replace").strip().splitlines()
            detail = reason[-1].rsplit(": ", 1)[-1] if reason else "ssh-keygen failed"
            raise CLIError(f"error {what} the private key: {detail}")
        return key.read_bytes()
