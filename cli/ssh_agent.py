"""The user's ssh-agent (SSH_AUTH_SOCK), driven through OpenSSH's own `ssh-add`.

No Python agent-protocol library is installed, so instead of writing the protocol by hand this
runs `ssh-add`: `-t` gives a certificate its lifetime, `-L` lists keys, `-d -` removes keys
read from stdin and `-D` removes everything."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import SSHCertificate

from cli import ssh_keys
from cli.common import CLIError

TIMEOUT = 120


@dataclass(frozen=True)
class AgentKey:
    """One identity in the agent: its authorized-keys line, parsed key and comment."""

    line: str
    key: ssh_keys.SSHPublic
    comment: str

    @property
    def certificate(self) -> SSHCertificate | None:
        return self.key if isinstance(self.key, SSHCertificate) else None


def _ssh_add() -> str:
    if not os.environ.get("SSH_AUTH_SOCK"):
        raise CLIError("error connecting with ssh-agent: SSH_AUTH_SOCK is not set")
    path = shutil.which("ssh-add")
    if path is None:
        raise CLIError("error connecting with ssh-agent: ssh-add not found")
    return path


def _run(
    args: list[str], stdin: bytes | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            [_ssh_add(), *args],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
            cwd=cwd,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CLIError(f"error connecting with ssh-agent: {exc}") from None


def _failure(result: subprocess.CompletedProcess[bytes], what: str) -> CLIError:
    lines = result.stderr.decode(errors="replace").strip().splitlines()
    return CLIError(f"{what}: {lines[-1] if lines else 'ssh-add failed'}")


def list_keys() -> list[AgentKey]:
    """Every identity in the agent, in the agent's order."""
    result = _run(["-L"])
    out = result.stdout.decode(errors="replace")
    if result.returncode != 0:
        if "no identities" in out.lower() or "no identities" in result.stderr.decode().lower():
            return []
        raise _failure(result, "error listing identities")
    keys: list[AgentKey] = []
    for line in out.splitlines():
        if not line.strip():
            continue
        try:
            key, comment = ssh_keys.parse_public(line.encode())
        except CLIError:
            continue
        keys.append(AgentKey(line=line.strip(), key=key, comment=comment))
    return keys


def signed_by(key: AgentKey, ca_keys: list[bytes] | None) -> bool:
    """A certificate (signed by one of `ca_keys`, wire blobs, when given)."""
    cert = key.certificate
    if cert is None:
        return False
    return ca_keys is None or ssh_keys.wire_blob(cert.signature_key()) in ca_keys


def expired(key: AgentKey, now: float | None = None) -> bool:
    cert = key.certificate
    return cert is not None and cert.valid_before < (now or time.time())


def remove(keys: list[AgentKey]) -> None:
    """Remove exactly these identities (a certificate and its plain key are separate)."""
    if not keys:
        return
    data = "".join(k.line + "\n" for k in keys).encode()
    result = _run(["-q", "-d", "-"], stdin=data)
    if result.returncode != 0:
        raise _failure(result, "error removing key")


def remove_all() -> None:
    result = _run(["-q", "-D"])
    if result.returncode != 0:
        raise _failure(result, "error removing all keys")


def add_certificate(comment: str, cert: SSHCertificate, priv: Any) -> None:
    """Put the certificate (and only the certificate) in the agent, removed by the agent when
    the certificate expires, as step does."""
    now = int(time.time())
    if cert.valid_before <= now:
        raise CLIError("error adding certificate to ssh agent - certificate is already expired")
    lifetime = cert.valid_before - now if cert.valid_before < 2**64 - 1 else 0
    with tempfile.TemporaryDirectory(prefix="step-ssh-agent-") as tmp:
        key_file = Path(tmp) / "id"
        key_file.write_bytes(ssh_keys.private_openssh(priv, None))
        key_file.chmod(0o600)
        Path(tmp, "id-cert.pub").write_bytes(ssh_keys.authorized_line(cert, comment))
        _set_comment(key_file, comment)
        args = ["-q"] + (["-t", str(lifetime)] if lifetime else []) + [str(key_file)]
        result = _run(args, cwd=tmp)
        if result.returncode != 0:
            raise _failure(result, "error adding key to agent")
        # ssh-add loads the plain key beside its certificate; step's agent holds only the
        # certificate, so the plain key goes again.
        plain = ssh_keys.authorized_line(priv.public_key(), comment)
        _run(["-q", "-d", "-"], stdin=plain)


def _set_comment(key_file: Path, comment: str) -> None:
    """The comment the agent shows (step sets it to the key ID)."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None or not comment:
        return
    subprocess.run(
        [keygen, "-q", "-c", "-C", comment, "-P", "", "-f", str(key_file)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
        check=False,
    )
