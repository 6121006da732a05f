"""ACME device-attest-01 end to end: `step ca certificate SERIAL CRT --provisioner acme-da
--attestation-uri yubikey:...` with an emulated YubiKey behind a real pcscd (tests/pcscd.py)
and the real step-ca, whose ACME provisioner trusts the card's emulator root
(`attestationRoots`). The key is made in slot 9a with `step kms create`; step attests it,
signs the key authorization and the CSR on the card, and writes no key file.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509.oid import ExtendedKeyUsageOID
from yubikit.piv import DEFAULT_MANAGEMENT_KEY

from keystores.yubikey import ENV_LOCK_DIR
from tests.e2e import harness
from tests.e2e.attested_yubikey import replug_with_known_root
from tests.e2e.harness import CA, OPENSSL, CAFactory, run_step
from tests.pcscd import private_pcscd, unavailable_reason
from tests.tools import missing

SERIAL = 13572468
OID_PERMANENT_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.3")

_reason = unavailable_reason()
if _reason is not None:
    missing(f"no private pcscd: {_reason}")


@pytest.fixture
def card_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[bytes]:
    """The private pcscd with one YubiKey, seen by every `step` child; its attestation root."""
    locks, shims = tmp_path / "locks", tmp_path / "bin"
    locks.mkdir()
    shims.mkdir()
    # ykman kills scdaemon when it cannot connect at all: never another program's here.
    (shims / "pkill").write_text("#!/bin/sh\nexit 1\n")
    (shims / "pkill").chmod(0o755)
    with private_pcscd(tmp_path / "pcsc", [SERIAL]) as server:
        root = replug_with_known_root(server, SERIAL, tmp_path / "attestation-root.pem")
        original = harness.clean_env

        def clean_env(steppath: Path, home: Path | None = None) -> dict[str, str]:
            env = original(steppath, home)
            env.update(server.env)
            env[ENV_LOCK_DIR] = str(locks)
            env["PATH"] = f"{shims}{os.pathsep}{env.get('PATH', '')}"
            return env

        monkeypatch.setattr(harness, "clean_env", clean_env)
        yield root


def _provisioners(root: bytes) -> Any:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["authority"]["provisioners"] += [
            {
                "type": "ACME",
                "name": "acme-da",
                "challenges": ["device-attest-01"],
                "attestationFormats": ["step"],
                "attestationRoots": base64.b64encode(root).decode(),
            },
            # no attestationRoots: only Yubico's roots, which the emulator's chain misses
            {"type": "ACME", "name": "acme-yubico", "challenges": ["device-attest-01"]},
        ]

    return edit


def _failure_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_a_yubikey_attested_certificate(
    card_root: bytes, ca_factory: CAFactory, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "pin").write_text("123456\n")
    (secrets / "mgm").write_text(DEFAULT_MANAGEMENT_KEY.hex() + "\n")
    uri = (
        f"yubikey:serial={SERIAL};slot-id=9a;management-key-source={secrets / 'mgm'}"
        f"?pin-source={secrets / 'pin'}"
    )
    work = tmp_path / "work"
    work.mkdir()
    ca: CA = ca_factory("acme-da", edit=_provisioners(card_root))
    public = load_pem_public_key(run_step(["kms", "create", uri], ca.steppath).stdout.encode())

    def step(*args: str) -> subprocess.CompletedProcess[str]:
        return run_step(["ca", "certificate", *args, "--attestation-uri", uri], ca.steppath,
                        cwd=work, check=False)  # fmt: skip

    done = step(str(SERIAL), "yk.crt", "--provisioner", "acme-da")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "✔ Provisioner: acme-da (ACME)"
    assert lines[1].startswith(f'Using Device Attestation challenge to validate "{SERIAL}" .')
    assert lines[1].endswith(" done!")
    assert lines[2].startswith("Waiting for Order to be 'ready' for finalization .")
    assert lines[3].startswith("Finalizing Order .") and lines[3].endswith(" done!")
    shown = f"yubikey:serial={SERIAL};slot-id=9a;management-key-source={secrets / 'mgm'}"
    assert lines[4:] == ["✔ Certificate: yk.crt", f"✔ Private Key: {shown}?pin-source="
                         f"{secrets / 'pin'}"]  # fmt: skip
    assert [p.name for p in work.iterdir()] == ["yk.crt"]  # no key file: the key stays on the card

    crt = work / "yk.crt"
    assert stat.S_IMODE(crt.stat().st_mode) == 0o600
    leaf, intermediate = x509.load_pem_x509_certificates(crt.read_bytes())
    assert intermediate == ca.intermediate
    assert leaf.public_key() == public  # the key in slot 9a, which never left the card
    assert leaf.subject.rfc4514_string() == f"CN={SERIAL}"
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    (name,) = list(sans)
    assert isinstance(name, x509.OtherName) and name.type_id == OID_PERMANENT_IDENTIFIER
    assert name.value == b"\x30\x0a\x0c\x08" + str(SERIAL).encode()
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    proc = subprocess.run(
        [OPENSSL, "verify", "-CAfile", str(ca.root_path), "-untrusted", str(crt), str(crt)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # Another serial than the card's: the CA refuses the attestation.
    done = step("99999999", "other.crt", "--provisioner", "acme-da")
    assert _failure_line(done) == (
        'Unable to validate challenge: challenge identifier "99999999" doesn\'t match the '
        f'attested hardware identifier "{SERIAL}"'
    )
    assert 'validate "99999999" . Error!' in done.stderr
    # Without attestationRoots only Yubico's roots count.
    done = step(str(SERIAL), "yubico.crt", "--provisioner", "acme-yubico")
    assert _failure_line(done) == (
        "Unable to validate challenge: Attestation statement cannot be verified: x5c is not "
        "valid: x509: certificate signed by unknown authority"
    )
    # An empty slot: nothing to attest, one line before any order.
    empty = uri.replace("slot-id=9a", "slot-id=9d")
    done = run_step(["ca", "certificate", str(SERIAL), "empty.crt", "--provisioner", "acme-da",
                     "--attestation-uri", empty], ca.steppath, cwd=work, check=False)  # fmt: skip
    line = _failure_line(done)
    assert line.startswith(f"error opening yubikey:serial={SERIAL};slot-id=9d;"), line
    assert line.endswith(f": no key in YubiKey {SERIAL} slot 9d"), line
    assert [p.name for p in work.iterdir()] == ["yk.crt"]
    assert "Traceback" not in ca.log_path.read_text()
