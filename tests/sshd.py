"""Real OpenSSH for the tests: an sshd with a private config on a free 127.0.0.1 port, a
private ssh-agent, and an `ssh` client that reads no user or system configuration.

Everything lives in a temporary folder; /etc/ssh and the system's sshd are never touched.
Processes are ended by their PID."""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
)

from tests.tools import required

SSHD_BIN = "/usr/sbin/sshd"
HOST = "127.0.0.1"
TIMEOUT = 60.0
USER = getpass.getuser()


def require_openssh() -> None:
    """Fail when OpenSSH is not installed (`make system-deps` installs it)."""
    for tool in (SSHD_BIN, "ssh", "ssh-agent", "ssh-add", "ssh-keygen"):
        required(tool)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def public_line(key: SSHCertificate | ec.EllipticCurvePublicKey) -> str:
    if isinstance(key, SSHCertificate):
        return key.public_bytes().decode()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    path.chmod(0o600)
    return path


def local_cert(
    ca: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePublicKey,
    principals: Sequence[str],
    *,
    host: bool = False,
    valid_after: datetime | None = None,
    valid_before: datetime | None = None,
    key_id: str = "test",
) -> SSHCertificate:
    """A certificate signed by a local CA key, for tests that need no CA server (an expired
    one, for instance)."""
    now = datetime.now(UTC)
    builder = (
        SSHCertificateBuilder()
        .public_key(key)
        .serial(int.from_bytes(os.urandom(8), "big"))
        .type(SSHCertificateType.HOST if host else SSHCertificateType.USER)
        .key_id(key_id.encode())
        .valid_principals([p.encode() for p in principals])
        .valid_after(int((valid_after or now - timedelta(minutes=1)).timestamp()))
        .valid_before(int((valid_before or now + timedelta(hours=1)).timestamp()))
    )
    if not host:
        builder = builder.add_extension(b"permit-pty", b"")
    return builder.sign(ca)


@dataclass
class SSHD:
    """One sshd on 127.0.0.1:`port`, configured by files in `root`."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / "sshd.log"

    def start(
        self,
        *,
        host_key: Path,
        user_ca: str | None = None,
        host_cert: Path | None = None,
    ) -> None:
        """Start `sshd -D -e -f CONFIG` and wait until it accepts connections."""
        assert self.proc is None
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        lines = [
            f"Port {self.port}",
            f"ListenAddress {HOST}",
            f"HostKey {host_key}",
            f"PidFile {self.root / 'sshd.pid'}",
            "AuthorizedKeysFile none",
            "AuthorizedPrincipalsFile none",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "LogLevel VERBOSE",
        ]
        if user_ca is not None:
            ca_file = self.root / "trusted_user_ca.pub"
            ca_file.write_text(user_ca if user_ca.endswith("\n") else user_ca + "\n")
            lines.append(f"TrustedUserCAKeys {ca_file}")
        if host_cert is not None:
            lines.append(f"HostCertificate {host_cert}")
        config = self.root / "sshd_config"
        config.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [SSHD_BIN, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),  # noqa: SIM115 - the child keeps it
            start_new_session=True,
        )
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sshd exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1.0) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"sshd did not come up:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=TIMEOUT)


@contextmanager
def sshd(root: Path, **kwargs: object) -> Iterator[SSHD]:
    server = SSHD(root)
    server.start(**kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def ssh_agent(root: Path) -> Iterator[dict[str, str]]:
    """A private `ssh-agent -D` on a socket in `root`; yields an environment that uses it."""
    sock = root / "agent.sock"
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("ssh-agent did not start")
            time.sleep(0.05)
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        yield env
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=TIMEOUT)


def ssh(
    server: SSHD,
    known_hosts: Path,
    *options: str,
    user: str = USER,
    env: dict[str, str] | None = None,
    command: str = "echo connected-as-$(id -un)",
) -> subprocess.CompletedProcess[str]:
    """`ssh` to the server with no config but `options`; never prompts."""
    args = [
        "ssh",
        "-F",
        "/dev/null",
        "-p",
        str(server.port),
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=30",
        *options,
        f"{user}@{HOST}",
        command,
    ]
    base = env if env is not None else {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    return subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=base,
        check=False,
    )
