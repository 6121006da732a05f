"""The `step` CLI as a subprocess against the running CA, each client with its own STEPPATH."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import NameOID

from tests.e2e.harness import (
    CA,
    DEFAULT_401,
    cert_fingerprint,
    csr_pem,
    load_chain,
    make_csr,
    run_step,
    sha256_hex,
)
from tests.e2e.tokens import claims_of

STEPDEBUG_HINT = "Re-run with STEPDEBUG=1 for more info."


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_cli_error(proc: subprocess.CompletedProcess[str], fragment: str) -> str:
    """Non-zero exit, no traceback, and the error is one line containing `fragment`."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [
        line for line in proc.stderr.splitlines()
        if line.strip() and not line.startswith("✔") and line != STEPDEBUG_HINT
    ]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], proc.stderr
    return lines[0]


def _pw(ca: CA) -> list[str]:
    return ["--password-file", str(ca.provisioner_password_file)]


# --- trust ----------------------------------------------------------------------------------


def test_bootstrap_wrote_client_config(client_steppath: Path, main_ca: CA) -> None:
    root = client_steppath / "certs" / "root_ca.crt"
    assert load_chain(root.read_bytes()) == [main_ca.root]
    defaults = json.loads((client_steppath / "config" / "defaults.json").read_text())
    assert defaults["ca-url"] == main_ca.url
    assert defaults["fingerprint"] == main_ca.fingerprint
    assert Path(defaults["root"]) == root
    assert not (client_steppath / "secrets").exists()


def test_health(client_steppath: Path) -> None:
    proc = run_step(["ca", "health"], client_steppath)
    assert proc.stdout == "ok\n"


def test_root_to_file(client_steppath: Path, main_ca: CA, tmp_path: Path) -> None:
    out = tmp_path / "out.crt"
    run_step(["ca", "root", out], client_steppath)
    (cert,) = load_chain(out.read_bytes())
    assert cert_fingerprint(cert) == main_ca.fingerprint


def test_root_to_stdout(client_steppath: Path, main_ca: CA) -> None:
    proc = run_step(["ca", "root"], client_steppath)
    assert load_chain(proc.stdout) == [main_ca.root]


def test_roots(client_steppath: Path, main_ca: CA) -> None:
    proc = run_step(["ca", "roots"], client_steppath)
    assert load_chain(proc.stdout) == [main_ca.root]


def test_provisioner_list(client_steppath: Path, main_ca: CA) -> None:
    proc = run_step(["ca", "provisioner", "list"], client_steppath)
    items = json.loads(proc.stdout)
    assert isinstance(items, list)
    assert items == main_ca.config()["authority"]["provisioners"]
    assert items[0]["name"] == "admin" and items[0]["type"] == "JWK"


# --- tokens ---------------------------------------------------------------------------------


def test_token_claims(client_steppath: Path, main_ca: CA) -> None:
    proc = run_step(["ca", "token", "tok.example", "--san", "tok.example", "--san",
                     "127.0.0.1", *_pw(main_ca)], client_steppath)
    token = proc.stdout.strip()
    assert token.count(".") == 2
    inspected = run_step(["crypto", "jwt", "inspect", "--insecure"], client_steppath,
                         stdin=token)
    doc = json.loads(inspected.stdout)
    header, payload = doc["header"], doc["payload"]
    kid = main_ca.config()["authority"]["provisioners"][0]["key"]["kid"]
    assert header["alg"] == "ES256"
    assert header["kid"] == kid
    assert header["typ"] == "JWT"
    assert payload["iss"] == "admin"
    assert payload["aud"] == f"{main_ca.url}/1.0/sign"
    assert payload["sub"] == "tok.example"
    assert payload["sans"] == ["tok.example", "127.0.0.1"]
    assert payload["sha"] == main_ca.fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", payload["jti"])
    assert payload["exp"] - payload["nbf"] == 300
    assert payload["iat"] >= payload["nbf"] - 1
    assert payload == claims_of(token)


# --- certificates ---------------------------------------------------------------------------


def _check_issued(crt: Path, key: Path, main_ca: CA, sub: str, sans: list[str]) -> x509.Certificate:
    chain = load_chain(crt.read_bytes())
    assert len(chain) == 2
    leaf, inter = chain
    assert inter == main_ca.intermediate
    assert [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [sub]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    got = [*san.get_values_for_type(x509.DNSName),
           *map(str, san.get_values_for_type(x509.IPAddress))]
    assert sorted(got) == sorted(sans)
    assert _mode(crt) == 0o600
    assert _mode(key) == 0o600
    private = load_pem_private_key(key.read_bytes(), password=None)
    assert private.public_key() == leaf.public_key()
    return leaf


def test_certificate(client_steppath: Path, main_ca: CA, tmp_path: Path) -> None:
    crt, key = tmp_path / "svc.crt", tmp_path / "svc.key"
    run_step(["ca", "certificate", "svc.example", crt, key, "--san", "svc.example",
              "--san", "127.0.0.1", *_pw(main_ca)], client_steppath)
    leaf = _check_issued(crt, key, main_ca, "svc.example", ["svc.example", "127.0.0.1"])
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]


def test_certificate_with_token(client_steppath: Path, main_ca: CA, tmp_path: Path) -> None:
    token = run_step(["ca", "token", "tk.example", "--san", "tk.example", "--san", "10.9.8.7",
                      *_pw(main_ca)], client_steppath).stdout.strip()
    crt, key = tmp_path / "tk.crt", tmp_path / "tk.key"
    run_step(["ca", "certificate", "tk.example", crt, key, "--token", token], client_steppath)
    _check_issued(crt, key, main_ca, "tk.example", ["tk.example", "10.9.8.7"])


def test_certificate_rsa(client_steppath: Path, main_ca: CA, tmp_path: Path) -> None:
    crt, key = tmp_path / "rsa.crt", tmp_path / "rsa.key"
    run_step(["ca", "certificate", "rsa.example", crt, key, "--kty", "RSA", "--size", "2048",
              *_pw(main_ca)], client_steppath)
    leaf = _check_issued(crt, key, main_ca, "rsa.example", ["rsa.example"])
    pub = leaf.public_key()
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 2048


def test_certificate_okp(client_steppath: Path, main_ca: CA, tmp_path: Path) -> None:
    crt, key = tmp_path / "okp.crt", tmp_path / "okp.key"
    run_step(["ca", "certificate", "okp.example", crt, key, "--kty", "OKP", *_pw(main_ca)],
             client_steppath)
    leaf = _check_issued(crt, key, main_ca, "okp.example", ["okp.example"])
    assert isinstance(leaf.public_key(), ed25519.Ed25519PublicKey)


def test_certificate_not_after(client_steppath: Path, main_ca: CA, tmp_path: Path) -> None:
    crt, key = tmp_path / "short.crt", tmp_path / "short.key"
    run_step(["ca", "certificate", "short.example", crt, key, "--not-after", "2h",
              *_pw(main_ca)], client_steppath)
    leaf = load_chain(crt.read_bytes())[0]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=2, minutes=1)


def test_sign_csr(client_steppath: Path, main_ca: CA, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = tmp_path / "in.csr"
    csr.write_text(csr_pem(make_csr("signme.example", ["signme.example", "10.0.0.9"], key)))
    crt = tmp_path / "signed.crt"
    run_step(["ca", "sign", csr, crt, *_pw(main_ca)], client_steppath)
    chain = load_chain(crt.read_bytes())
    assert len(chain) == 2 and chain[1] == main_ca.intermediate
    leaf = chain[0]
    assert leaf.public_key() == key.public_key()
    assert [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
        "signme.example"
    ]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["signme.example"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.9"]


@pytest.fixture(scope="module")
def issued_crt(client_steppath: Path, main_ca: CA, tmp_path_factory: pytest.TempPathFactory
               ) -> Path:
    out = tmp_path_factory.mktemp("inspect")
    crt, key = out / "i.crt", out / "i.key"
    run_step(["ca", "certificate", "inspect.example", crt, key, "--san", "inspect.example",
              "--san", "127.0.0.1", *_pw(main_ca)], client_steppath)
    return crt


def test_inspect_short(issued_crt: Path, client_steppath: Path, main_ca: CA) -> None:
    proc = run_step(["certificate", "inspect", "--short", issued_crt], client_steppath)
    leaf = load_chain(issued_crt.read_bytes())[0]
    lines = proc.stdout.splitlines()
    serial = str(leaf.serial_number)
    short_serial = f"{serial[:4]}...{serial[-4:]}"
    assert lines[0] == f"X.509v3 TLS Certificate (ECDSA P-256) [Serial: {short_serial}]"
    kid = main_ca.config()["authority"]["provisioners"][0]["key"]["kid"]
    assert any(re.fullmatch(r"\s+Subject:\s+inspect\.example", line) for line in lines), lines
    assert any(re.fullmatch(r"\s+127\.0\.0\.1", line) for line in lines), lines
    assert any(re.fullmatch(r"\s+Issuer:\s+Test Intermediate CA", line) for line in lines), lines
    short_id = re.escape(f"{kid[:4]}...{kid[-4:]}")
    provisioner = rf"\s+Provisioner:\s+admin \[ID: {short_id}\]"
    assert any(re.fullmatch(provisioner, line) for line in lines), lines


def test_fingerprint(issued_crt: Path, client_steppath: Path) -> None:
    proc = run_step(["certificate", "fingerprint", issued_crt], client_steppath)
    leaf = load_chain(issued_crt.read_bytes())[0]
    assert proc.stdout.strip() == cert_fingerprint(leaf)
    assert proc.stdout.strip() == sha256_hex(leaf.public_bytes(Encoding.DER))


# --- refusals -------------------------------------------------------------------------------


def test_wrong_provisioner_password(client_steppath: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    crt, key = tmp_path / "w.crt", tmp_path / "w.key"
    proc = run_step(["ca", "certificate", "w.example", crt, key, "--password-file", wrong],
                    client_steppath, check=False)
    assert_cli_error(proc, "failed to decrypt JWE: invalid password")
    assert not crt.exists() and not key.exists()
    proc = run_step(["ca", "token", "w.example", "--password-file", wrong], client_steppath,
                    check=False)
    assert_cli_error(proc, "failed to decrypt JWE: invalid password")
    assert proc.stdout == ""


def test_bootstrap_wrong_fingerprint(main_ca: CA, tmp_path: Path) -> None:
    steppath = tmp_path / "step"
    proc = run_step(["ca", "bootstrap", "--ca-url", main_ca.url, "--fingerprint", "0" * 64],
                    steppath, check=False)
    assert_cli_error(proc, f'root certificate with fingerprint "{"0" * 64}" was not found')
    written = [p for p in steppath.rglob("*") if p.is_file()] if steppath.exists() else []
    assert written == []


def test_missing_client_config(main_ca: CA, tmp_path: Path) -> None:
    steppath = tmp_path / "empty-step"
    steppath.mkdir()
    proc = run_step(["ca", "health"], steppath, check=False)
    assert_cli_error(proc, "--ca-url")
    crt, key = tmp_path / "m.crt", tmp_path / "m.key"
    proc = run_step(["ca", "certificate", "m.example", crt, key, *_pw(main_ca)], steppath,
                    check=False)
    assert_cli_error(proc, "--ca-url")
    assert not crt.exists() and not key.exists()


def test_replayed_token_flag(client_steppath: Path, main_ca: CA, tmp_path: Path) -> None:
    token = run_step(["ca", "token", "rp.example", *_pw(main_ca)], client_steppath).stdout.strip()
    run_step(["ca", "certificate", "rp.example", tmp_path / "1.crt", tmp_path / "1.key",
              "--token", token], client_steppath)
    crt, key = tmp_path / "2.crt", tmp_path / "2.key"
    proc = run_step(["ca", "certificate", "rp.example", crt, key, "--token", token],
                    client_steppath, check=False)
    assert assert_cli_error(proc, DEFAULT_401) == DEFAULT_401
    assert not crt.exists() and not key.exists()


def test_existing_files_not_overwritten(client_steppath: Path, main_ca: CA, tmp_path: Path
                                        ) -> None:
    crt, key = tmp_path / "e.crt", tmp_path / "e.key"
    crt.write_text("keep me")
    proc = run_step(["ca", "certificate", "e.example", crt, key, *_pw(main_ca)],
                    client_steppath, check=False)
    assert_cli_error(proc, "already exists")
    assert crt.read_text() == "keep me"
    assert not key.exists()
