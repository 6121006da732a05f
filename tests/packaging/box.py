"""This machine as the server the package is installed on (tests/packaging/test_deb.py).

`Box` installs the package with dpkg, runs commands as the stepstone user, and starts the
unit's command lines the way systemd would: the unit's environment (Environment=, then
/etc/default/stepstone), its user and group without supplementary groups, UMask=0077, `/` as
the working directory, a CREDENTIALS_DIRECTORY holding a 0400 copy of the credential, and the
kernel flags behind NoNewPrivileges= and MemoryDenyWriteExecute=. Everything it makes is
removed by `clean_up`, the package purged with its keys.
"""

from __future__ import annotations

import ctypes
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.packaging.unit_file import Unit

ETC = Path("/etc/stepstone")
STATE = Path("/var/lib/stepstone")
DEFAULTS = Path("/etc/default/stepstone")
UNIT = Path("/lib/systemd/system/stepstone.service")
HOST = "127.0.0.1"
CA_NAME = "Packaged CA"
CA_PASSWORD = "packaged-ca-password"
PROVISIONER = "admin"
PROVISIONER_PASSWORD = "packaged-provisioner-password"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0
OWNER_MARK = Path("/var/tmp/stepstone-package-test.owner")
"""Written before the test installs the package, removed once it purged it: a package found
installed while this exists was left by a test run that was killed, and may be purged."""
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1
_libc = ctypes.CDLL(None, use_errno=True)
HAVE_MDWE = _libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0
"""The kernel (6.3+) can refuse writable+executable memory, as MemoryDenyWriteExecute= does."""


def _harden() -> None:
    """In the child, after it became the service user: NoNewPrivileges= and
    MemoryDenyWriteExecute= (both kept across exec and fork)."""
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if HAVE_MDWE and _libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_MDWE")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def dpkg(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """dpkg noninteractively; STEPSTONE_PURGE_KEYS only when given. --force-unsafe-io skips
    the fsync of every unpacked file: what is tested is unchanged, the test a lot faster."""
    base = {k: v for k, v in os.environ.items() if k != "STEPSTONE_PURGE_KEYS"}
    return subprocess.run(
        ["dpkg", "--force-unsafe-io", *args],
        env={**base, "DEBIAN_FRONTEND": "noninteractive", **(env or {})},
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )


def package_state() -> str:
    """dpkg's idea of the package: installed, config-files, not-installed, or unknown."""
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}", "stepstone"],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def purge_left_by_killed_run() -> bool:
    """Purge a package a killed test run left installed (OWNER_MARK says so); True if done."""
    if package_state() in ("not-installed", "unknown") or not OWNER_MARK.exists():
        return False
    dpkg("--purge", "--force-remove-reinstreq", "stepstone", env={"STEPSTONE_PURGE_KEYS": "yes"})
    for path in (STATE, ETC):
        shutil.rmtree(path, ignore_errors=True)
    OWNER_MARK.unlink(missing_ok=True)
    return True


def snapshot(*roots: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under `roots` (default: the CA's folders and /etc/default/stepstone) with
    owner, group, mode, and content hash or link target."""
    found: dict[str, tuple[Any, ...]] = {}
    for root in roots or (STATE, ETC, DEFAULTS):
        paths = [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]
        for path in paths:
            st = path.lstat()
            if path.is_symlink():
                content: str = os.readlink(path)
            elif path.is_file():
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = "dir"
            found[str(path)] = (st.st_uid, st.st_gid, st.st_mode, content)
    return found


class Box:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.had_user = _exists(pwd.getpwnam, "stepstone")
        self.had_group = _exists(grp.getgrnam, "stepstone")
        self.port = free_port()
        self.metrics_port = free_port()
        self.secrets: Path | None = None  # files the stepstone user may read, e.g. passwords
        self.credentials: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "stepstone.log"
        self.preseeded = False
        self.notify_dir: Path | None = None
        self.notify: socket.socket | None = None

    # --- the package -----------------------------------------------------------------------

    def install(self, deb: Path) -> None:
        OWNER_MARK.write_text(f"{os.getpid()}\n")
        proc = dpkg("--install", str(deb))
        assert proc.returncode == 0, f"dpkg -i failed:\n{proc.stdout}\n{proc.stderr}"
        assert package_state() == "installed"

    def preseed(self, line: str) -> None:
        self.preseeded = True
        subprocess.run(["debconf-set-selections"], input=line + "\n", text=True, check=True)

    def verify_unit(self) -> None:
        """`systemd-analyze verify` of the installed unit: its commands exist, it parses."""
        if shutil.which("systemd-analyze") is None:
            return
        proc = subprocess.run(["systemd-analyze", "verify", str(UNIT)],
                              capture_output=True, text=True, timeout=120)
        problems = [line for line in proc.stderr.splitlines() if "stepstone" in line]
        assert proc.returncode == 0 and not problems, proc.stderr

    # --- as the service user ---------------------------------------------------------------

    def unit(self) -> Unit:
        return Unit.read(UNIT)

    def service_env(self) -> dict[str, str]:
        """The environment systemd gives the unit's commands (what matters of it)."""
        user = pwd.getpwnam("stepstone")
        env = {"PATH": SERVICE_PATH, "HOME": user.pw_dir, "USER": "stepstone",
               "LOGNAME": "stepstone", "SHELL": user.pw_shell}
        env.update(self.unit().environment())
        if self.credentials is not None:
            env["CREDENTIALS_DIRECTORY"] = str(self.credentials)
        if self.notify is not None:
            env["NOTIFY_SOCKET"] = str(self.notify.getsockname())
        return env

    def as_service(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """A command as the unit runs one, to completion."""
        return subprocess.run(
            list(argv), env=self.service_env(), cwd="/", user="stepstone", group="stepstone",
            extra_groups=[], umask=0o077, preexec_fn=_harden, capture_output=True, text=True,
            timeout=300, stdin=subprocess.DEVNULL,
        )

    def run_unit_commands(self, key: str) -> list[subprocess.CompletedProcess[str]]:
        """Each command line of `key` in order, as the service; like systemd, none after
        one that fails."""
        done = []
        for argv in self.unit().commands(key, self.service_env()):
            done.append(self.as_service(argv))
            if done[-1].returncode != 0:
                break
        return done

    def start_checks_pass(self) -> bool:
        """ExecStartPre= (the schema upgrade, then `step-ca --check`) succeeds."""
        return all(proc.returncode == 0 for proc in self.run_unit_commands("ExecStartPre"))

    def init_ca(self) -> None:
        """`step ca init` as the operator runs it: `runuser -u stepstone`, STEPPATH from the
        unit's environment, passwords from files only stepstone reads."""
        self.secrets = Path(tempfile.mkdtemp(prefix="stepstone-test-"))
        shutil.chown(self.secrets, "stepstone", "stepstone")
        for name, secret in (("pw", CA_PASSWORD), ("ppw", PROVISIONER_PASSWORD)):
            (self.secrets / name).write_text(secret + "\n")
            shutil.chown(self.secrets / name, "stepstone", "stepstone")
            (self.secrets / name).chmod(0o600)
        env = self.service_env()
        proc = subprocess.run(
            ["runuser", "-u", "stepstone", "--", "step", "ca", "init", "--name", CA_NAME,
             "--dns", f"{HOST},localhost", "--address", f"{HOST}:{self.port}",
             "--provisioner", PROVISIONER, "--password-file", str(self.secrets / "pw"),
             "--provisioner-password-file", str(self.secrets / "ppw")],
            env=env, cwd="/", capture_output=True, text=True, timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, f"step ca init failed:\n{proc.stdout}\n{proc.stderr}"
        assert (STATE / "config" / "ca.json").is_file()

    def write_credential(self) -> None:
        """The operator's /etc/stepstone/credentials/ca-password (0600 root), and the copy
        systemd would hand the service: a folder of its own, the file 0400 stepstone."""
        source = ETC / "credentials" / "ca-password"
        source.write_text(CA_PASSWORD + "\n")
        source.chmod(0o600)
        (name, path), = (v.split(":", 1) for v in self.unit().values("LoadCredential"))
        assert (name, path) == ("ca-password", str(source))
        self.credentials = Path(tempfile.mkdtemp(prefix="stepstone-credentials-"))
        shutil.copy(source, self.credentials / name)
        (self.credentials / name).chmod(0o400)
        shutil.chown(self.credentials / name, "stepstone", "stepstone")
        shutil.chown(self.credentials, "stepstone", "stepstone")
        self.credentials.chmod(0o500)

    def enable_metrics(self) -> None:
        """ca.json's `stepstone.metrics.address`, edited in place (owner and mode kept)."""
        ca_json = STATE / "config" / "ca.json"
        config = json.loads(ca_json.read_text())
        config.setdefault("stepstone", {})["metrics"] = {
            "address": f"{HOST}:{self.metrics_port}"
        }
        with ca_json.open("r+") as f:
            f.truncate(0)
            f.write(json.dumps(config, indent="\t"))

    # --- the running service ---------------------------------------------------------------

    def listen_for_notifications(self) -> None:
        """A datagram socket the service user may send to, as systemd's $NOTIFY_SOCKET."""
        self.notify_dir = Path(tempfile.mkdtemp(prefix="stepstone-notify-"))
        self.notify_dir.chmod(0o755)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_dir / "notify"))
        (self.notify_dir / "notify").chmod(0o666)

    def wait_for_notification(self, field: str) -> list[str]:
        """The sd_notify datagrams received until one holds `field` (e.g. READY=1)."""
        assert self.notify is not None
        received: list[str] = []
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.notify.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                message = self.notify.recv(4096).decode()
            except TimeoutError:
                break
            received.append(message)
            if field in message.splitlines():
                return received
        raise AssertionError(f"no {field} from the service; got {received}:\n{self.log_tail()}")


    def start_service(self) -> None:
        (argv,) = self.unit().commands("ExecStart", self.service_env())
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.service_env(), cwd="/", user="stepstone", group="stepstone",
                extra_groups=[], umask=0o077, preexec_fn=_harden, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"step-ca exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.health() == {"status": "ok"}:
                    return
            except (httpx.HTTPError, ssl.SSLError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"step-ca did not serve in {START_TIMEOUT}s:\n{self.log_tail()}")

    def health(self) -> Any:
        root = STATE / "certs" / "root_ca.crt"
        with httpx.Client(verify=ssl.create_default_context(cafile=str(root)),
                          timeout=10) as client:
            return client.get(f"https://{HOST}:{self.port}/health").json()

    def reload_service(self) -> None:
        assert self.proc is not None
        (argv,) = self.unit().commands("ExecReload", {"MAINPID": str(self.proc.pid)})
        subprocess.run(argv, check=True, timeout=30)
        assert self.proc.poll() is None, self.log_tail()

    def stop_service(self) -> int | None:
        """SIGTERM to the main process (systemd's stop), then its exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT)
        return proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- a client --------------------------------------------------------------------------

    def step(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The packaged /usr/bin/step as a client with a STEPPATH of its own."""
        env = {"PATH": SERVICE_PATH, "HOME": str(self.tmp), "STEPPATH": str(self.tmp / "client")}
        proc = subprocess.run(["/usr/bin/step", *args], env=env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"step {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def sign_with_packaged_step(self, subject: str) -> str:
        """bootstrap by fingerprint, a certificate by the provisioner flow, inspected."""
        root = STATE / "certs" / "root_ca.crt"
        fingerprint = self.step("certificate", "fingerprint", str(root)).stdout.strip()
        self.step("ca", "bootstrap", "--ca-url", f"https://{HOST}:{self.port}",
                  "--fingerprint", fingerprint)
        assert self.secrets is not None
        crt, key = self.tmp / "leaf.crt", self.tmp / "leaf.key"
        self.step("ca", "certificate", subject, str(crt), str(key),
                  "--provisioner", PROVISIONER,
                  "--password-file", str(self.secrets / "ppw"))
        verify = subprocess.run(
            ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(crt), str(crt)],
            capture_output=True, text=True,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        return self.step("certificate", "inspect", "--short", str(crt)).stdout

    def scrape(self) -> str:
        return httpx.get(f"http://{HOST}:{self.metrics_port}/metrics", timeout=10).text

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples that carry `labels`."""
        total = 0.0
        for line in self.scrape().splitlines():
            found = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
            if found and all(f'{k}="{v}"' in found.group(1) for k, v in labels.items()):
                total += float(found.group(2))
        return total

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def owner_mode(path: Path) -> tuple[str, str, int]:
        st = path.stat()
        return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
                st.st_mode & 0o7777)

    def clean_up(self) -> None:
        """Stop the server, purge the package with its keys, remove what the test made,
        and the user and group when they did not exist before."""
        self.stop_service()
        if package_state() in ("installed", "config-files", "half-installed",
                               "half-configured", "unpacked"):
            dpkg("--purge", "stepstone", env={"STEPSTONE_PURGE_KEYS": "yes"})
        OWNER_MARK.unlink(missing_ok=True)
        if self.notify is not None:
            self.notify.close()
        for path in (STATE, ETC, self.secrets, self.credentials, self.notify_dir):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
        if self.preseeded:
            subprocess.run(["debconf-communicate", "stepstone"], input="PURGE\n", text=True,
                           capture_output=True)
        if not self.had_user and _exists(pwd.getpwnam, "stepstone"):
            subprocess.run(["userdel", "stepstone"], capture_output=True)
        if not self.had_group and _exists(grp.getgrnam, "stepstone"):
            subprocess.run(["groupdel", "stepstone"], capture_output=True)


def _exists(lookup: Any, name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True
