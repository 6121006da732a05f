"""What `step ca init` (all flags, stdin closed) wrote for the shared CA."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pki.jose import JOSEError, b64url_decode, key_from_jwk, thumbprint
from pki.jwe import decrypt_jwk
from tests.e2e.harness import (
    CA,
    CA_PASSWORD,
    PROVISIONER_PASSWORD,
    CAFactory,
    cert_fingerprint,
    free_port,
    run_step,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_layout(main_ca: CA) -> None:
    sp = main_ca.steppath
    for rel in ("certs/root_ca.crt", "certs/intermediate_ca.crt", "secrets/root_ca_key",
                "secrets/intermediate_ca_key", "config/ca.json", "config/defaults.json"):
        assert (sp / rel).is_file(), rel
    assert (sp / "db").is_dir()
    assert main_ca.db_path.is_file()


@pytest.mark.parametrize("name", ["root_ca_key", "intermediate_ca_key"])
def test_keys_encrypted_0600(main_ca: CA, name: str) -> None:
    path = main_ca.steppath / "secrets" / name
    assert _mode(path) == 0o600
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises((TypeError, ValueError)):
        load_pem_private_key(data, password=None)
    with pytest.raises(ValueError):
        load_pem_private_key(data, password=PROVISIONER_PASSWORD.encode())
    key = load_pem_private_key(data, password=CA_PASSWORD.encode())
    cert_file = "root_ca.crt" if name == "root_ca_key" else "intermediate_ca.crt"
    cert = x509.load_pem_x509_certificate((main_ca.steppath / "certs" / cert_file).read_bytes())
    assert cert.public_key() == key.public_key()


def test_certificates(main_ca: CA) -> None:
    root, inter = main_ca.root, main_ca.intermediate
    assert root.subject.rfc4514_string() == "CN=Test Root CA,O=Test"
    assert inter.subject.rfc4514_string() == "CN=Test Intermediate CA,O=Test"
    assert inter.issuer == root.subject
    inter.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 1
    bc = inter.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0


def test_defaults_json(main_ca: CA) -> None:
    defaults = json.loads(main_ca.defaults_json.read_text())
    assert defaults["ca-url"] == main_ca.url
    assert defaults["fingerprint"] == cert_fingerprint(main_ca.root)
    assert defaults["root"] == str(main_ca.root_path)
    assert defaults["ca-config"] == str(main_ca.ca_json)


def test_ca_json(main_ca: CA) -> None:
    cfg = main_ca.config()
    assert cfg["address"] == f"127.0.0.1:{main_ca.port}"
    assert cfg["dnsNames"] == ["127.0.0.1", "localhost"]
    (prov,) = cfg["authority"]["provisioners"]
    assert prov["type"] == "JWK" and prov["name"] == "admin"


def test_provisioner_encrypted_key(main_ca: CA) -> None:
    (prov,) = main_ca.config()["authority"]["provisioners"]
    jwe = prov["encryptedKey"]
    header = json.loads(b64url_decode(jwe.split(".")[0]))
    assert header["alg"] == "PBES2-HS256+A128KW"
    assert header["enc"] == "A256GCM"
    assert header["p2c"] == 600000
    assert len(b64url_decode(header["p2s"])) == 16
    assert header.get("cty") == "jwk+json"

    with pytest.raises(JOSEError):
        decrypt_jwk(jwe, CA_PASSWORD)
    jwk = decrypt_jwk(jwe, PROVISIONER_PASSWORD)
    assert "d" in jwk
    public = prov["key"]
    assert public["kid"] == thumbprint(public)
    assert jwk.get("kid", public["kid"]) == public["kid"]
    assert thumbprint(jwk) == public["kid"]
    private = key_from_jwk(jwk)
    assert private.public_key() == key_from_jwk(public)  # type: ignore[union-attr]
    assert "d" not in public


def test_directories_private(main_ca: CA) -> None:
    for sub in ("certs", "secrets", "config", "db"):
        assert _mode(main_ca.steppath / sub) == 0o700, sub


def test_init_again_refuses_without_prompting(ca_factory: CAFactory) -> None:
    """stdin closed: an existing configuration is not overwritten and nothing is asked."""
    ca = ca_factory("reinit", start=False)
    before = ca.ca_json.read_bytes()
    proc = run_step(
        ["ca", "init", "--name", "Other", "--dns", "127.0.0.1", "--address", "127.0.0.1:1",
         "--provisioner", "x", "--password-file", ca.password_file],
        ca.steppath, check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "--force" in proc.stderr
    assert ca.ca_json.read_bytes() == before


def test_init_missing_flag_does_not_prompt(tmp_path: Path) -> None:
    proc = run_step(["ca", "init", "--name", "X", "--dns", "127.0.0.1", "--address",
                     "127.0.0.1:1", "--password-file", "/nonexistent-pw"], tmp_path / "step",
                    check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "step" / "config" / "ca.json").exists()


def test_init_acme_adds_a_served_acme_provisioner(tmp_path: Path) -> None:
    """`--acme` appends step's `{"type": "ACME", "name": "acme"}` after the JWK provisioner,
    and the appliance serves its directory."""
    ca = CA(base=tmp_path, port=free_port(), name="ACME init")
    ca.steppath.mkdir(parents=True)
    ca.password_file.write_text(CA_PASSWORD + "\n")
    ca.provisioner_password_file.write_text(PROVISIONER_PASSWORD + "\n")
    run_step(["ca", "init", "--acme", *ca.init_flags()], ca.steppath)
    provisioners = json.loads(ca.ca_json.read_text())["authority"]["provisioners"]
    assert [p["type"] for p in provisioners] == ["JWK", "ACME"]
    assert provisioners[1] == {"type": "ACME", "name": "acme"}
    ca.start()
    try:
        with ca.http() as client:
            directory = client.get("/acme/acme/directory").json()
        assert directory["newOrder"] == f"{ca.url}/acme/acme/new-order"
    finally:
        ca.stop()


def test_init_acme_refused_with_the_offline_root_path(tmp_path: Path) -> None:
    proc = run_step(
        ["ca", "init", "--acme", "--intermediate-csr", str(tmp_path / "i.csr"), "--name", "X",
         "--dns", "127.0.0.1", "--address", "127.0.0.1:1", "--provisioner", "p",
         "--password-file", "/nonexistent-pw"],
        tmp_path / "step", check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "'--acme' cannot be used with '--intermediate-csr' or '--intermediate-crt'"
    ]
