"""Key ceremonies end to end: `step ca init --root-kms/--kms`, the offline root (CSR on the
appliance, signed on another machine, init completed), then the real `step-ca` issuing
through `step ca certificate`, checked with `openssl verify -x509_strict`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from appliance import ceremony
from tests.e2e.harness import (
    CA,
    CA_PASSWORD,
    OPENSSL,
    PROVISIONER_PASSWORD,
    free_port,
    run_step,
)
from tests.softhsm import MODULE, SoftHSM, Token, softhsm_session

ROOT_PASSWORD = "root-password-for-tests"


def _one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], proc.stderr
    return lines[0]


def new_ca(base: Path, name: str = "Ceremony") -> CA:
    """A CA object (STEPPATH base/step, password files) that `step ca init` has not run for."""
    base.mkdir(parents=True, exist_ok=True)
    ca = CA(base=base, port=free_port(), name=name)
    ca.password_file.write_text(CA_PASSWORD + "\n")
    ca.provisioner_password_file.write_text(PROVISIONER_PASSWORD + "\n")
    return ca


def config_text(ca: CA) -> str:
    return "".join(p.read_text() for p in sorted((ca.steppath / "config").iterdir()))


def issue_and_verify(ca: CA, workdir: Path) -> x509.Certificate:
    """Bootstrap a client, `step ca certificate`, and `openssl verify -x509_strict` the leaf."""
    client = workdir / "client"
    run_step(["ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint], client)
    crt, key = workdir / "leaf.crt", workdir / "leaf.key"
    run_step(["ca", "certificate", "svc.example", crt, key, "--san", "svc.example",
              "--password-file", ca.provisioner_password_file], client)
    chain = x509.load_pem_x509_certificates(crt.read_bytes())
    assert chain[1] == ca.intermediate
    leaf = chain[0]
    leaf.verify_directly_issued_by(ca.intermediate)
    (workdir / "leaf-only.crt").write_bytes(crt.read_bytes().split(b"-----END CERTIFICATE-----")[0]
                                            + b"-----END CERTIFICATE-----\n")
    proc = subprocess.run(
        [OPENSSL, "verify", "-x509_strict", "-CAfile", str(ca.root_path),
         "-untrusted", str(ca.intermediate_path), str(workdir / "leaf-only.crt")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{workdir / 'leaf-only.crt'}: OK"
    return leaf


def verify_record(steppath: Path, record: Path | None = None,
                  check: bool = True) -> subprocess.CompletedProcess[str]:
    flags: Sequence[str | Path] = ["--record", record] if record is not None else []
    return run_step(["ca", "ceremony", "verify", *flags], steppath, check=check)


@pytest.fixture
def running() -> Iterator[list[CA]]:
    """CAs appended here are stopped at the end of the test."""
    cas: list[CA] = []
    try:
        yield cas
    finally:
        for ca in cas:
            ca.stop()


# --- init with the root and the intermediate in two (file) stores ---------------------------


def test_init_with_two_stores(tmp_path: Path, running: list[CA]) -> None:
    ca = new_ca(tmp_path / "appliance")
    root_pw = tmp_path / "root-pw"
    root_pw.write_text(ROOT_PASSWORD + "\n")
    root_key = tmp_path / "usb" / "root_ca_key"
    inter_key = tmp_path / "store-b" / "intermediate.key"
    proc = run_step(["ca", "init", *ca.init_flags(), "--root-kms", f"file:{root_key}",
                     "--root-password-file", root_pw, "--kms", inter_key], ca.steppath)
    assert "not kept in ca.json" in proc.stderr
    assert root_key.is_file() and inter_key.is_file()
    cfg = ca.config()
    assert cfg["key"] == str(inter_key)
    assert "kms" not in cfg
    assert str(root_key) not in config_text(ca)
    assert not (ca.steppath / "secrets" / "root_ca_key").exists()

    running.append(ca)
    ca.start()
    issue_and_verify(ca, tmp_path)

    out = verify_record(ca.steppath).stdout
    assert out.startswith("OK: 1 entry, head ")
    (entry,) = [json.loads(x) for x in (ca.steppath / "ceremony" / "record.jsonl")
                .read_text().splitlines()]
    assert entry["key_uris"] == [str(root_key), str(inter_key)]
    assert entry["certificate_sha256"] == [ca.fingerprint,
                                           ceremony.certificate_sha256(ca.intermediate)]


# --- the offline root -----------------------------------------------------------------------


def test_offline_root_ceremony(tmp_path: Path, running: list[CA]) -> None:
    appliance = new_ca(tmp_path / "appliance")
    offline = tmp_path / "offline-machine" / "step"  # the root's machine has its own STEPPATH
    usb = tmp_path / "usb"  # what is carried between the two
    record = usb / "record.jsonl"
    root_pw = tmp_path / "offline-machine" / "root-pw"
    root_pw.parent.mkdir(parents=True)
    root_pw.write_text(ROOT_PASSWORD + "\n")
    root_key = f"file:{tmp_path / 'offline-machine' / 'root_ca_key'}"

    # 1. The root is born on the offline machine.
    run_step(["ca", "ceremony", "create-root", "--root-kms", root_key, "--name", "Ceremony",
              "--out", usb / "root_ca.crt", "--password-file", root_pw, "--record", record],
             offline)
    # 2. The appliance makes its intermediate key and CSR.
    proc = run_step(["ca", "init", *appliance.init_flags(), "--intermediate-csr",
                     usb / "intermediate.csr", "--record", record], appliance.steppath)
    assert not appliance.ca_json.exists()
    pending = appliance.steppath / "config" / "init-pending.json"
    assert pending.is_file()
    csr = x509.load_pem_x509_csr((usb / "intermediate.csr").read_bytes())
    csr_key_sha = ceremony.public_key_sha256(csr.public_key())
    assert csr_key_sha in proc.stderr
    # Completing before the certificate exists fails cleanly.
    _one_line_error(run_step(["ca", "init", "--intermediate-crt", usb / "intermediate.crt",
                              "--root", usb / "root_ca.crt", "--password-file",
                              appliance.password_file], appliance.steppath, check=False),
                    "cannot read intermediate certificate")
    # 3. The offline machine signs it.
    proc = run_step(["ca", "ceremony", "sign-intermediate", usb / "intermediate.csr",
                     "--root-kms", root_key, "--root", usb / "root_ca.crt",
                     "--out", usb / "intermediate.crt", "--password-file", root_pw,
                     "--record", record], offline)
    assert csr_key_sha in proc.stderr
    # 4. The appliance completes its init with the signed certificate.
    run_step(["ca", "init", "--intermediate-crt", usb / "intermediate.crt",
              "--root", usb / "root_ca.crt", "--password-file", appliance.password_file,
              "--record", record], appliance.steppath)
    assert not pending.exists()

    cfg = appliance.config()
    assert cfg["key"] == str(appliance.steppath / "secrets" / "intermediate_ca_key")
    assert "kms" not in cfg
    assert "root_ca_key" not in config_text(appliance)
    assert str(usb) not in config_text(appliance)
    assert sorted(p.name for p in (appliance.steppath / "secrets").iterdir()) == [
        "intermediate_ca_key"
    ]
    assert appliance.root == x509.load_pem_x509_certificate((usb / "root_ca.crt").read_bytes())
    bc = appliance.intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0

    running.append(appliance)
    appliance.start()
    issue_and_verify(appliance, tmp_path)

    # The record: four steps from two machines, one chain.
    entries = [json.loads(x) for x in record.read_text().splitlines()]
    assert [e["command"] for e in entries] == [
        "step ca ceremony create-root",
        "step ca init --intermediate-csr",
        "step ca ceremony sign-intermediate",
        "step ca init --intermediate-crt",
    ]
    assert entries[0]["certificate_sha256"] == [appliance.fingerprint]
    assert entries[1]["public_key_sha256"] == [csr_key_sha]
    assert entries[2]["certificate_sha256"] == [
        ceremony.certificate_sha256(appliance.intermediate), appliance.fingerprint
    ]
    assert entries[2]["details"]["intermediate_public_key_sha256"] == csr_key_sha
    out = verify_record(appliance.steppath, record).stdout
    assert out.startswith("OK: 4 entries, head ")
    head = out.split()[-1]
    assert run_step(["ca", "ceremony", "verify", "--record", record, "--expect-head", head],
                    offline).returncode == 0

    # Tampering with one line breaks the chain at that line.
    lines = record.read_text().splitlines()
    tampered = tmp_path / "tampered.jsonl"
    lines[2] = lines[2].replace("step ca ceremony sign-intermediate", "step ca ceremony nothing")
    tampered.write_text("\n".join(lines) + "\n")
    error = _one_line_error(verify_record(offline, tampered, check=False),
                            "step ca ceremony verify: ")
    assert f"{tampered}: line 3: entry_sha256 does not match" in error
    # ... and dropping one breaks the link after it.
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_text("\n".join(record.read_text().splitlines()[:1] +
                                 record.read_text().splitlines()[2:]) + "\n")
    _one_line_error(verify_record(offline, dropped, check=False), "line 2: seq is 3, expected 2")
    # The record on the appliance's default path was never written: --record was used.
    _one_line_error(verify_record(appliance.steppath, check=False), "no such file")


def test_offline_flag_rules(tmp_path: Path) -> None:
    ca = new_ca(tmp_path / "appliance")
    crt = tmp_path / "x.crt"
    _one_line_error(run_step(["ca", "init", "--intermediate-crt", crt], ca.steppath,
                             check=False), "'--intermediate-crt' requires '--root ROOT.crt'")
    _one_line_error(run_step(["ca", "init", "--intermediate-crt", crt, "--root", crt,
                              "--name", "X"], ca.steppath, check=False),
                    "'--name' cannot be used with '--intermediate-crt'")
    _one_line_error(run_step(["ca", "init", "--intermediate-crt", crt, "--root", crt],
                             ca.steppath, check=False), "no pending initialisation")
    _one_line_error(run_step(["ca", "init", *ca.init_flags(), "--intermediate-csr",
                              tmp_path / "i.csr", "--root-kms", tmp_path / "r.key"],
                             ca.steppath, check=False),
                    "'--root-kms' cannot be used with '--intermediate-csr'")
    _one_line_error(run_step(["ca", "init", *ca.init_flags(), "--root", crt], ca.steppath,
                             check=False), "'--root' needs '--root-kms'")
    run_step(["ca", "init", *ca.init_flags(), "--intermediate-csr", tmp_path / "i.csr"],
             ca.steppath)
    _one_line_error(run_step(["ca", "init", *ca.init_flags(), "--intermediate-csr",
                              tmp_path / "i.csr"], ca.steppath, check=False),
                    "init-pending.json exists")


def test_sign_intermediate_refuses(tmp_path: Path) -> None:
    steppath = tmp_path / "offline"
    pw = tmp_path / "pw"
    pw.write_text(ROOT_PASSWORD)
    for name in ("a", "b"):
        run_step(["ca", "ceremony", "create-root", "--root-kms", tmp_path / f"{name}.key",
                  "--name", name, "--out", tmp_path / f"{name}.crt", "--password-file", pw],
                 steppath)
    _one_line_error(run_step(["ca", "ceremony", "create-root", "--root-kms",
                              tmp_path / "a.key", "--name", "a", "--out", tmp_path / "a.crt",
                              "--password-file", pw], steppath, check=False),
                    "a.crt exists: use '--force'")
    (tmp_path / "junk.csr").write_text("not a csr")
    _one_line_error(run_step(["ca", "ceremony", "sign-intermediate", tmp_path / "junk.csr",
                              "--root-kms", tmp_path / "a.key", "--root", tmp_path / "a.crt",
                              "--out", tmp_path / "i.crt", "--password-file", pw], steppath,
                             check=False), "is not a CSR")
    appliance = new_ca(tmp_path / "appliance")
    run_step(["ca", "init", *appliance.init_flags(), "--intermediate-csr", tmp_path / "i.csr"],
             appliance.steppath)
    _one_line_error(run_step(["ca", "ceremony", "sign-intermediate", tmp_path / "i.csr",
                              "--root-kms", tmp_path / "a.key", "--root", tmp_path / "b.crt",
                              "--out", tmp_path / "i.crt", "--password-file", pw], steppath,
                             check=False), "the root key does not match the root certificate")
    assert not (tmp_path / "i.crt").exists()
    # Signed by root b, completed against root a: refused, nothing written.
    run_step(["ca", "ceremony", "sign-intermediate", tmp_path / "i.csr", "--root-kms",
              tmp_path / "b.key", "--root", tmp_path / "b.crt", "--out", tmp_path / "i.crt",
              "--password-file", pw, "--name", "Ceremony"], steppath)
    _one_line_error(run_step(["ca", "init", "--intermediate-crt", tmp_path / "i.crt", "--root",
                              tmp_path / "a.crt", "--password-file", appliance.password_file],
                             appliance.steppath, check=False), "was not issued by the root")
    assert not appliance.ca_json.exists()
    assert ceremony.verify_record(steppath / "ceremony" / "record.jsonl").entries == 3


# --- the same with SoftHSM2: root in token A, intermediate in token B -----------------------


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    """Private SoftHSM2 tokens; SOFTHSM2_CONF is set for this process and so its children."""
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


def pin_file(directory: Path, token: Token) -> Path:
    path = directory / f"{token.label}.pin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token.pin + "\n")
    return path


def key_uri(token: Token, key_id: str, label: str, pin: Path, pin_value: bool = False) -> str:
    query = f"pin-source={pin}" + (f"&pin-value={token.pin}" if pin_value else "")
    return f"pkcs11:module-path={MODULE};token={token.label};id={key_id};object={label}?{query}"


def test_init_with_two_tokens(hsm: SoftHSM, tmp_path: Path, running: list[CA]) -> None:
    token_a, token_b = hsm.init_token(), hsm.init_token()
    ca = new_ca(tmp_path / "appliance")
    root_uri = key_uri(token_a, "7330", "root-key", pin_file(tmp_path / "usb", token_a))
    pin_b = pin_file(tmp_path / "appliance" / "etc", token_b)
    inter_uri = key_uri(token_b, "7331", "intermediate-key", pin_b, pin_value=True)
    run_step(["ca", "init", *ca.init_flags(), "--root-kms", root_uri, "--kms", inter_uri],
             ca.steppath)

    cfg = ca.config()
    assert cfg["key"] == "pkcs11:id=7331;object=intermediate-key"
    assert cfg["kms"] == {
        "type": "pkcs11",
        "uri": f"pkcs11:module-path={MODULE};token={token_b.label}?pin-source={pin_b}",
    }
    text = config_text(ca)
    for absent in (token_a.label, "7330", "root-key", "pin-value", str(tmp_path / "usb")):
        assert absent not in text, absent
    assert sorted(p.name for p in (ca.steppath / "secrets").iterdir()) == []

    # The keys are in the tokens, not extractable; the certificates match them.
    root_pub = run_step(["kms", "key", root_uri], ca.steppath).stdout
    inter_pub = run_step(["kms", "key", inter_uri], ca.steppath).stdout
    assert ceremony.public_key_sha256(ca.root) == ceremony.public_key_sha256(
        load_pem_public_key(root_pub.encode())
    )
    assert ceremony.public_key_sha256(ca.intermediate) == ceremony.public_key_sha256(
        load_pem_public_key(inter_pub.encode())
    )
    listed = run_step(["kms", "list", f"pkcs11:module-path={MODULE};token={token_b.label}"
                       f"?pin-source={pin_b}"], ca.steppath).stdout.split()
    assert listed == [cfg["key"]]

    # The root token is taken away: the appliance starts and signs from token B alone.
    hsm.remove_token(token_a)
    try:
        running.append(ca)
        ca.start()
        issue_and_verify(ca, tmp_path)
    finally:
        hsm.restore_token(token_a)

    record = ca.steppath / "ceremony" / "record.jsonl"
    (entry,) = [json.loads(x) for x in record.read_text().splitlines()]
    assert entry["key_uris"] == [root_uri, inter_uri.replace(
        f"pin-value={token_b.pin}", "pin-value=REDACTED")]
    assert verify_record(ca.steppath).stdout.startswith("OK: 1 entry, head ")


def test_offline_root_ceremony_with_tokens(
    hsm: SoftHSM, tmp_path: Path, running: list[CA]
) -> None:
    token_a, token_b = hsm.init_token(), hsm.init_token()
    appliance = new_ca(tmp_path / "appliance", name="HSM")
    offline = tmp_path / "offline-machine" / "step"
    usb = tmp_path / "usb"
    record = usb / "record.jsonl"
    root_uri = key_uri(token_a, "7330", "root-key", pin_file(tmp_path / "offline-machine",
                                                              token_a))
    pin_b = pin_file(tmp_path / "appliance" / "etc", token_b)
    inter_uri = key_uri(token_b, "7331", "intermediate-key", pin_b)

    run_step(["ca", "ceremony", "create-root", "--root-kms", root_uri, "--name", "HSM",
              "--kty", "EC", "--crv", "P-384", "--out", usb / "root_ca.crt",
              "--record", record], offline)
    run_step(["ca", "init", *appliance.init_flags(), "--kms", inter_uri,
              "--intermediate-csr", usb / "intermediate.csr", "--record", record],
             appliance.steppath)
    run_step(["ca", "ceremony", "sign-intermediate", usb / "intermediate.csr",
              "--root-kms", root_uri, "--root", usb / "root_ca.crt",
              "--out", usb / "intermediate.crt", "--record", record], offline)
    # No password file: the intermediate key is in token B, its PIN in pin-source.
    run_step(["ca", "init", "--intermediate-crt", usb / "intermediate.crt",
              "--root", usb / "root_ca.crt", "--record", record], appliance.steppath)

    cfg = appliance.config()
    assert cfg["key"] == "pkcs11:id=7331;object=intermediate-key"
    assert cfg["kms"]["uri"] == (
        f"pkcs11:module-path={MODULE};token={token_b.label}?pin-source={pin_b}"
    )
    assert token_a.label not in config_text(appliance)
    assert isinstance(appliance.root.signature_hash_algorithm, hashes.SHA384)

    hsm.remove_token(token_a)
    try:
        running.append(appliance)
        appliance.start()
        issue_and_verify(appliance, tmp_path)
    finally:
        hsm.restore_token(token_a)
    assert verify_record(offline, record).stdout.startswith("OK: 4 entries, head ")
