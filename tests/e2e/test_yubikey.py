"""The root-on-YubiKey ceremony and a CA whose intermediate key is on a YubiKey, end to end.

Two emulated YubiKeys (tests/piv_emulator.py, state in JSON files shared between processes)
are "plugged in" to the `step` and `step-ca` subprocesses, which run through the tests-only
launcher `python -m tests.yubikey_launcher` (it registers the emulator's provider, then calls
the real entry point). Each has its owner's PIN and management key (AES-192), kept
in files. `step ca init --root-kms ... --kms ...` makes the root in one and the intermediate
(PIN policy "once") in the other; the root YubiKey is then unplugged, `step-ca` serves with
the intermediate on the other, and `step ca certificate` gets certificates that OpenSSL
verifies. A wrong PIN stops the CA at start after a single try.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from yubikit.piv import DEFAULT_MANAGEMENT_KEY, MANAGEMENT_KEY_TYPE, PivSession

from keystores.yubikey import ENV_LOCK_DIR
from tests.e2e import harness
from tests.e2e.harness import CA, HOST, OPENSSL, PROVISIONER, free_port, run_step
from tests.piv_emulator import ENV_STATE, FileBackedPiv, new_card_state

REPO = Path(__file__).resolve().parents[2]
ROOT_SERIAL, INTERMEDIATE_SERIAL = 10010010, 20020020


class YubiKeyFiles:
    """An emulated YubiKey's state file and its owner's PIN and management key files."""

    def __init__(self, base: Path, name: str, serial: int, pin: str, mgm: bytes) -> None:
        self.state = base / f"{name}.json"
        self.pin_file = base / f"{name}.pin"
        self.mgm_file = base / f"{name}.mgm"
        card = FileBackedPiv(self.state, new_card_state((5, 7, 2), serial))
        piv = PivSession(card.connect())
        piv.change_pin("123456", pin)
        piv.change_puk("12345678", "87654321")
        piv.authenticate(DEFAULT_MANAGEMENT_KEY)
        piv.set_management_key(MANAGEMENT_KEY_TYPE.AES192, mgm)
        self.pin_file.write_text(pin + "\n")
        self.mgm_file.write_text(mgm.hex() + "\n")
        self.serial = serial
        self.pin = pin

    def card(self) -> FileBackedPiv:
        return FileBackedPiv(self.state)

    def uri(self, slot: str, *extra: str) -> str:
        path = ";".join([f"serial={self.serial}", f"slot-id={slot}", *extra])
        return f"yubikey:{path};management-key-source={self.mgm_file}?pin-source={self.pin_file}"


@pytest.fixture
def plugged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[Path]]:
    """The card files visible to `step`/`step-ca` children; a test edits the list."""
    cards: list[Path] = []
    locks = tmp_path / "locks"
    locks.mkdir()
    original = harness.clean_env

    def clean_env(steppath: Path, home: Path | None = None) -> dict[str, str]:
        env = original(steppath, home)
        env["PYTHONPATH"] = str(REPO)
        env[ENV_STATE] = os.pathsep.join(map(str, cards))
        env[ENV_LOCK_DIR] = str(locks)
        return env

    monkeypatch.setattr(harness, "clean_env", clean_env)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program, attr in (("step", "STEP"), ("step-ca", "STEP_CA")):
        wrapper = bin_dir / program
        wrapper.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" -m tests.yubikey_launcher {program} "$@"\n'
        )
        wrapper.chmod(0o755)
        monkeypatch.setattr(harness, attr, wrapper)
    yield cards


def _spki(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined, no-any-return]


def _card_public_key(files: YubiKeyFiles, slot: int) -> bytes:
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    der = files.card().state.keys[slot].der
    return _spki(load_der_private_key(der, None).public_key())


def test_root_and_intermediate_on_yubikeys(plugged: list[Path], tmp_path: Path) -> None:
    root_yk = YubiKeyFiles(tmp_path, "root-yk", ROOT_SERIAL, "13572468", bytes(range(24)))
    inter_yk = YubiKeyFiles(tmp_path, "inter-yk", INTERMEDIATE_SERIAL, "24681357", bytes(24))
    plugged += [root_yk.state, inter_yk.state]

    # The ceremony: `step ca init` with the root key in one YubiKey, the intermediate's in
    # the other (PIN policy "once" for the appliance), every flag given, no prompt.
    ca = CA(base=tmp_path / "ca", port=free_port(), name="YubiKey")
    ca.base.mkdir()
    ca.password_file.write_text(harness.CA_PASSWORD + "\n")
    ca.provisioner_password_file.write_text(harness.PROVISIONER_PASSWORD + "\n")
    run_step(
        [
            "ca", "init",
            "--name", ca.name,
            "--dns", f"{HOST},localhost",
            "--address", f"{HOST}:{ca.port}",
            "--provisioner", PROVISIONER,
            "--password-file", ca.password_file,
            "--provisioner-password-file", ca.provisioner_password_file,
            "--root-kms", root_yk.uri("9a"),
            "--kms", inter_yk.uri("9c", "pin-policy=once"),
        ],
        ca.steppath,
    )  # fmt: skip
    config = ca.config()
    assert config["key"] == "yubikey:slot-id=9c"
    assert config["kms"]["type"] == "yubikey"
    assert f"serial={INTERMEDIATE_SERIAL}" in config["kms"]["uri"]
    assert "pin-value" not in json.dumps(config)
    assert not any(p.name.endswith("_key") for p in (ca.steppath / "secrets").glob("*"))
    assert _spki(ca.root.public_key()) == _card_public_key(root_yk, 0x9A)
    assert _spki(ca.intermediate.public_key()) == _card_public_key(inter_yk, 0x9C)
    assert inter_yk.card().state.keys[0x9C].pin_policy == 2  # once
    assert root_yk.card().state.keys[0x9A].pin_policy == 3  # always (step's default)

    # The root YubiKey goes back to the safe: the CA runs with the intermediate's only.
    plugged.remove(root_yk.state)
    ca.start()
    try:
        client = tmp_path / "client" / "step"
        run_step(["ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint], client)
        for i in range(4):  # two gunicorn workers share the YubiKey
            crt, key = tmp_path / f"svc{i}.crt", tmp_path / f"svc{i}.key"
            run_step(
                ["ca", "certificate", f"svc{i}.internal", crt, key,
                 "--password-file", ca.provisioner_password_file],
                client,
            )  # fmt: skip
            chain = x509.load_pem_x509_certificates(crt.read_bytes())
            assert chain[1] == ca.intermediate
            (tmp_path / "inter.pem").write_bytes(chain[1].public_bytes(Encoding.PEM))
            result = subprocess.run(
                [OPENSSL, "verify", "-x509_strict", "-CAfile", str(ca.root_path),
                 "-untrusted", str(tmp_path / "inter.pem"), str(crt)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stdout + result.stderr
    finally:
        ca.stop()
    assert inter_yk.card().state.pin_left == 3

    # A wrong PIN stops the CA at start after one try, and says how many are left.
    inter_yk.pin_file.write_text("11112222\n")
    with pytest.raises(AssertionError, match="wrong PIN for YubiKey 20020020: 2 tries left"):
        ca.start()
    assert inter_yk.card().state.pin_left == 2
    with pytest.raises(AssertionError, match="1 try left"):
        ca.start()
    # With one try left Stepstone sends no PIN at all, even the right one.
    inter_yk.pin_file.write_text(inter_yk.pin + "\n")
    with pytest.raises(AssertionError, match="will not risk blocking it"):
        ca.start()
    assert inter_yk.card().state.pin_left == 1
    # The operator enters the PIN once with ykman (here: yubikit), and the CA starts again.
    PivSession(inter_yk.card().connect()).verify_pin(inter_yk.pin)
    ca.start()
    try:
        crt, key = tmp_path / "again.crt", tmp_path / "again.key"
        run_step(
            ["ca", "certificate", "again.internal", crt, key,
             "--password-file", ca.provisioner_password_file],
            client,
        )  # fmt: skip
        leaf = x509.load_pem_x509_certificates(crt.read_bytes())[0]
        leaf.verify_directly_issued_by(ca.intermediate)
    finally:
        ca.stop()
    assert inter_yk.card().state.pin_left == 3


def test_kms_create_and_attest(plugged: list[Path], tmp_path: Path) -> None:
    """`step kms create` makes a key in the YubiKey; the attest command, in another process,
    prints the YubiKey's attestation chain for it, verified up to the (emulated) Yubico root.
    """
    yk = YubiKeyFiles(tmp_path, "yk", INTERMEDIATE_SERIAL + 1, "24681357", bytes(24))
    plugged.append(yk.state)
    steppath = tmp_path / "step"
    created = run_step(["kms", "create", yk.uri("9d", "pin-policy=once")], steppath).stdout
    assert run_step(["kms", "key", yk.uri("9d")], steppath).stdout == created
    roots = tmp_path / "yubico-root.pem"
    roots.write_bytes(yk.card().state.attestation_root.public_bytes(Encoding.PEM))
    # `step kms attest` once cli/kms.py registers cli.kms_attest.attest_command; the same
    # function run as a program meanwhile.
    program = (
        "import typer; from cli.kms_attest import attest_command; "
        "from keystores.yubikey import register_connection_provider; "
        "from tests.piv_emulator import provider_from_env; "
        "register_connection_provider(provider_from_env); typer.run(attest_command)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", program, "--format", "json", "--roots", str(roots),
         f"yubikey:serial={yk.serial};slot-id=9d"],
        capture_output=True, text=True, env=harness.clean_env(steppath), timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["verified"] is True
    assert facts["serial"] == yk.serial and facts["pinPolicy"] == "once"
    assert facts["publicKey"] == created
    attestation = x509.load_pem_x509_certificate(facts["certificate"].encode())
    assert (
        attestation.public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
        == created
    )
