"""Every `step` command that writes a file, pointed where it cannot write.

Each must end with exactly one line on stderr (`open PATH: reason`, as step words it) and a
non-zero status, never a traceback, and must find out before it spends a token or asks the CA
for anything: the CA issues nothing, and a token given with --token still works afterwards.

The tests run as root, so permissions cannot make a path unwritable; the targets are a path
below a regular file ("not a directory") and an existing directory ("is a directory"). A
missing directory is not a failure: output files get their parent directories created.

Also here: `step ca revoke --cert --key` takes the serial number from the certificate.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import CA, csr_pem, load_chain, make_csr, run_step

KINDS = ("below-a-file", "a-directory")
REASONS = {"below-a-file": "not a directory", "a-directory": "is a directory"}


@dataclass(frozen=True)
class Target:
    """An output path that cannot be written, and the reason step gives."""

    path: Path
    reason: str


def unwritable(tmp: Path, kind: str, relative: str) -> Target:
    """`relative` placed below a regular file, or made an existing directory."""
    if kind == "below-a-file":
        blocker = tmp / "a-file"
        blocker.write_text("in the way\n")
        return Target(blocker / "sub" / relative, REASONS[kind])
    path = tmp / relative
    path.mkdir(parents=True)
    return Target(path, REASONS[kind])


def assert_refused(proc: subprocess.CompletedProcess[str], target: Target) -> None:
    """Non-zero, no traceback anywhere, and stderr is exactly the one `open` line."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.stderr.splitlines() == [f"open {target.path}: {target.reason}"], proc.stderr


def _pw(ca: CA) -> list[str]:
    return ["--password-file", str(ca.provisioner_password_file)]


def issued(ca: CA) -> tuple[int, int]:
    """The CA's certificates and spent tokens, to show that nothing was issued or spent."""
    return ca.db_rows("x509_certs"), ca.db_rows("used_tokens")


@pytest.fixture(scope="module")
def pair(client_steppath: Path, main_ca: CA, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Path, Path]:
    """A certificate and key from the shared CA, for renew and rekey."""
    out = tmp_path_factory.mktemp("pair")
    crt, key = out / "walk.crt", out / "walk.key"
    run_step(["ca", "certificate", "walk.example", crt, key, *_pw(main_ca)], client_steppath)
    return crt, key


# --- commands that talk to the CA ---------------------------------------------------------

CACommand = Callable[[Path, Path, tuple[Path, Path], CA], list[str | Path]]

CA_COMMANDS: dict[str, CACommand] = {
    "ca root": lambda t, tmp, pair, ca: ["ca", "root", t],
    "ca roots": lambda t, tmp, pair, ca: ["ca", "roots", t],
    "ca federation": lambda t, tmp, pair, ca: ["ca", "federation", t],
    "ca token --output-file": lambda t, tmp, pair, ca: [
        "ca", "token", "tok.example", "--output-file", t, *_pw(ca)
    ],
    "ca certificate (crt)": lambda t, tmp, pair, ca: [
        "ca", "certificate", "c.example", t, tmp / "ok.key", *_pw(ca)
    ],
    "ca certificate (key)": lambda t, tmp, pair, ca: [
        "ca", "certificate", "c.example", tmp / "ok.crt", t, *_pw(ca)
    ],
    "ca sign": lambda t, tmp, pair, ca: ["ca", "sign", _csr_file(tmp), t, *_pw(ca)],
    "ca renew --out": lambda t, tmp, pair, ca: ["ca", "renew", *pair, "--out", t],
    "ca renew --daemon --out": lambda t, tmp, pair, ca: [
        "ca", "renew", *pair, "--out", t, "--daemon"
    ],
    "ca rekey --out-cert": lambda t, tmp, pair, ca: [
        "ca", "rekey", *pair, "--out-cert", t, "--out-key", tmp / "ok.key"
    ],
    "ca rekey --out-key": lambda t, tmp, pair, ca: [
        "ca", "rekey", *pair, "--out-cert", tmp / "ok.crt", "--out-key", t
    ],
}  # fmt: skip


def _csr_file(tmp: Path) -> Path:
    path = tmp / "in.csr"
    path.write_text(csr_pem(make_csr("signme.example", ["signme.example"])))
    return path


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", list(CA_COMMANDS))
def test_ca_command_refuses_unwritable_target_first(
    command: str,
    kind: str,
    client_steppath: Path,
    main_ca: CA,
    pair: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    target = unwritable(tmp_path, kind, "out.pem")
    pair_before = [p.read_bytes() for p in pair]
    before = issued(main_ca)
    proc = run_step(CA_COMMANDS[command](target.path, tmp_path, pair, main_ca), client_steppath,
                    check=False)
    assert_refused(proc, target)
    assert proc.stdout == ""
    assert issued(main_ca) == before, "the CA issued a certificate or took a token"
    assert [p.read_bytes() for p in pair] == pair_before
    assert not (tmp_path / "ok.crt").exists() and not (tmp_path / "ok.key").exists()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", ["crt", "key"])
def test_certificate_token_survives_unwritable_target(
    which: str, kind: str, client_steppath: Path, main_ca: CA, tmp_path: Path
) -> None:
    token = run_step(["ca", "token", "kept.example", *_pw(main_ca)],
                     client_steppath).stdout.strip()
    target = unwritable(tmp_path, kind, "out.pem")
    crt, key = tmp_path / "kept.crt", tmp_path / "kept.key"
    args = [target.path, key] if which == "crt" else [crt, target.path]
    proc = run_step(["ca", "certificate", "kept.example", *args, "--token", token],
                    client_steppath, check=False)
    assert_refused(proc, target)
    run_step(["ca", "certificate", "kept.example", crt, key, "--token", token], client_steppath)
    leaf = load_chain(crt.read_bytes())[0]
    assert leaf.subject.rfc4514_string() == "CN=kept.example"


def test_missing_directories_are_created(client_steppath: Path, main_ca: CA, tmp_path: Path
                                         ) -> None:
    """The check refuses only what the write would fail on: parents are made as needed."""
    out = tmp_path / "new" / "dir" / "root.crt"
    run_step(["ca", "root", out], client_steppath)
    assert load_chain(out.read_bytes()) == [main_ca.root]


@pytest.mark.parametrize("kind", KINDS)
def test_bootstrap_refuses_unwritable_steppath(kind: str, main_ca: CA, tmp_path: Path) -> None:
    target = unwritable(tmp_path, kind, "step/certs/root_ca.crt")
    steppath = target.path.parents[1]
    proc = run_step(["ca", "bootstrap", "--ca-url", main_ca.url, "--fingerprint",
                     main_ca.fingerprint], steppath, check=False)
    assert_refused(proc, target)
    assert not (steppath / "config" / "defaults.json").exists()


# --- commands that work offline -------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_init_refuses_unwritable_steppath(kind: str, main_ca: CA, tmp_path: Path) -> None:
    target = unwritable(tmp_path, kind, "step/config/ca.json")
    steppath = target.path.parents[1]
    proc = run_step(["ca", "init", "--name", "X", "--dns", "127.0.0.1", "--address",
                     "127.0.0.1:1", "--provisioner", "admin", "--password-file",
                     main_ca.password_file], steppath, check=False)
    assert_refused(proc, target)
    assert not (steppath / "certs").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_init_refuses_unwritable_intermediate_csr(kind: str, main_ca: CA, tmp_path: Path
                                                  ) -> None:
    target = unwritable(tmp_path, kind, "intermediate.csr")
    steppath = tmp_path / "step"
    proc = run_step(["ca", "init", "--name", "X", "--dns", "127.0.0.1", "--address",
                     "127.0.0.1:1", "--provisioner", "admin", "--password-file",
                     main_ca.password_file, "--intermediate-csr", target.path], steppath,
                    check=False)
    assert_refused(proc, target)
    assert not steppath.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_kms_create_refuses_unwritable_key(kind: str, main_ca: CA, tmp_path: Path) -> None:
    target = unwritable(tmp_path, kind, "k.key")
    record = tmp_path / "record.jsonl"
    proc = run_step(["kms", "create", target.path, "--password-file", main_ca.password_file,
                     "--record", record], tmp_path / "step", check=False)
    assert_refused(proc, target)
    assert not record.exists()


@pytest.fixture(scope="module")
def offline_root(main_ca: CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(root certificate, root key file) made by `step ca ceremony create-root`."""
    out = tmp_path_factory.mktemp("offline-root")
    crt, key = out / "root.crt", out / "root.key"
    run_step(["ca", "ceremony", "create-root", "--name", "Offline", "--out", crt,
              "--root-kms", f"file:{key}", "--password-file", main_ca.password_file,
              "--record", out / "record.jsonl"], out / "step")
    return crt, key


@pytest.mark.parametrize("kind", KINDS)
def test_ceremony_create_root_refuses_unwritable_out(kind: str, main_ca: CA, tmp_path: Path
                                                     ) -> None:
    target = unwritable(tmp_path, kind, "root.crt")
    key, record = tmp_path / "root.key", tmp_path / "record.jsonl"
    proc = run_step(["ca", "ceremony", "create-root", "--name", "X", "--out", target.path,
                     "--root-kms", f"file:{key}", "--password-file", main_ca.password_file,
                     "--record", record], tmp_path / "step", check=False)
    assert_refused(proc, target)
    assert not key.exists() and not record.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_ceremony_sign_intermediate_refuses_unwritable_out(
    kind: str, main_ca: CA, offline_root: tuple[Path, Path], tmp_path: Path
) -> None:
    target = unwritable(tmp_path, kind, "intermediate.crt")
    root_crt, root_key = offline_root
    record = tmp_path / "record.jsonl"
    proc = run_step(["ca", "ceremony", "sign-intermediate", _csr_file(tmp_path), "--root",
                     root_crt, "--root-kms", f"file:{root_key}", "--out", target.path,
                     "--password-file", main_ca.password_file, "--record", record],
                    tmp_path / "step", check=False)
    assert_refused(proc, target)
    assert not record.exists()


PROVISIONER_COMMANDS = {
    "add": ["add", "extra", "--type", "X5C"],
    "update": ["update", "admin", "--x509-max-dur", "48h"],
    "remove": ["remove", "admin"],
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", list(PROVISIONER_COMMANDS))
def test_provisioner_edit_refuses_unwritable_config(
    command: str, kind: str, main_ca: CA, tmp_path: Path
) -> None:
    """ca.json below a file, or its backup (ca.json.bak) a directory."""
    tmp = tmp_path.resolve()  # the edit, and so the message, names the resolved path
    if kind == "below-a-file":
        target = unwritable(tmp, kind, "ca.json")
        ca_json = target.path
    else:
        ca_json = tmp / "ca.json"
        shutil.copy(main_ca.ca_json, ca_json)
        target = unwritable(tmp, kind, "ca.json.bak")
    before = ca_json.read_bytes() if ca_json.exists() else None
    proc = run_step(["ca", "provisioner", *PROVISIONER_COMMANDS[command], "--ca-config",
                     ca_json], tmp_path / "step", check=False)
    assert_refused(proc, target)
    assert (ca_json.read_bytes() if ca_json.exists() else None) == before


# --- revoke by certificate ------------------------------------------------------------------


def test_revoke_takes_the_serial_from_the_certificate(
    client_steppath: Path, main_ca: CA, tmp_path: Path
) -> None:
    crt, key = tmp_path / "r.crt", tmp_path / "r.key"
    run_step(["ca", "certificate", "revoke-me.example", crt, key, *_pw(main_ca)],
             client_steppath)
    serial = load_chain(crt.read_bytes())[0].serial_number
    proc = run_step(["ca", "revoke", "--cert", crt, "--key", key, "--reasonCode",
                     "keyCompromise"], client_steppath)
    revoked = f"Certificate with Serial Number {serial} has been revoked."
    assert proc.stderr.splitlines() == [revoked]
    renew = run_step(["ca", "renew", crt, key, "--force"], client_steppath, check=False)
    assert renew.returncode == 1 and "lacked necessary authorization" in renew.stderr


def test_revoke_serial_must_match_the_certificate(
    client_steppath: Path, main_ca: CA, tmp_path: Path
) -> None:
    crt, key = tmp_path / "m.crt", tmp_path / "m.key"
    run_step(["ca", "certificate", "keep-me.example", crt, key, *_pw(main_ca)], client_steppath)
    serial = load_chain(crt.read_bytes())[0].serial_number
    proc = run_step(["ca", "revoke", str(serial + 1), "--cert", crt, "--key", key],
                    client_steppath, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"serial number {serial + 1} does not match the serial number {serial} of {crt}"
    ]
    run_step(["ca", "renew", crt, key, "--force"], client_steppath)  # not revoked


def test_revoke_needs_a_serial_or_a_certificate(client_steppath: Path) -> None:
    proc = run_step(["ca", "revoke"], client_steppath, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "'step ca revoke' requires a serial number, or '--cert' and '--key'"
    ]
