"""`step certificate lint` (cli.certificate_lint): pkilint's RFC 5280 and CA/B Forum checks
for the certificate's kind, a human report or JSON, exit 1 on errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.cli.certificate_cli import DevPKI, fails, make_pki, ok, step


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    ok(pki.dir, "certificate", "create", "svc.example.com", "leaf.crt", "leaf.key", "--ca",
       pki.inter, "--ca-key", pki.inter_key, "--ca-password-file", pki.password,
       "--no-password", "--insecure")  # fmt: skip
    return pki


@pytest.mark.parametrize(
    ("name", "kind"),
    [("root.crt", "root"), ("inter.crt", "intermediate"), ("leaf.crt", "subscriber")],
)
def test_rfc5280_clean_for_each_kind(tmp_path: Path, pki: DevPKI, name: str, kind: str) -> None:
    proc = ok(tmp_path, "certificate", "lint", pki.dir / name, "--rfc5280")
    assert f"{kind} certificate, checked against RFC 5280" in proc.stdout
    assert "no findings (0 errors, 0 warnings, 0 notices)" in proc.stdout
    report = json.loads(ok(tmp_path, "certificate", "lint", pki.dir / name, "--rfc5280",
                           "--json").stdout)  # fmt: skip
    assert report["kind"] == kind and report["errors"] == 0 and report["standards"] == ["RFC 5280"]


def test_cabf_checks_by_kind_exit_one_on_errors(tmp_path: Path, pki: DevPKI) -> None:
    """An internal PKI breaks the Baseline Requirements: each kind gets its own checks."""
    expected = {
        "root.crt": ("ROOT-CA", "cabf.serverauth.ca.country_attribute_absent"),
        "inter.crt": ("INTERNAL-UNCONSTRAINED-TLS-CA",
                      "cabf.serverauth.ca.certificate_policies_extension_absent"),
        "leaf.crt": ("DV-FINAL-CERTIFICATE",
                     "cabf.serverauth.subscriber.certificate_policies_extension_absent"),
    }  # fmt: skip
    for name, (kind, code) in expected.items():
        proc = step(tmp_path, "certificate", "lint", pki.dir / name)
        assert proc.returncode == 1, proc.stderr
        assert f"({kind}) certificate, checked against RFC 5280 and CA/B Forum" in proc.stdout
        assert f"ERROR   {code}" in proc.stdout
        report = json.loads(step(tmp_path, "certificate", "lint", pki.dir / name, "--json").stdout)
        assert report["type"] == kind and report["errors"] > 0
        assert {"severity": "error", "code": code} in [
            {k: f[k] for k in ("severity", "code")} for f in report["findings"]
        ]


def _broken(tmp: Path) -> Path:
    """A CA certificate with no key usage, no key identifiers and non-critical basic
    constraints: RFC 5280 errors."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Broken CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(5)
        .not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path = tmp / "broken.der"
    path.write_bytes(cert.public_bytes(Encoding.DER))
    return path


def test_errors_exit_non_zero(tmp_path: Path) -> None:
    path = _broken(tmp_path)
    proc = step(tmp_path, "certificate", "lint", path, "--rfc5280")
    assert proc.returncode == 1 and proc.stderr == ""
    assert "ERROR" in proc.stdout and "errors" in proc.stdout.splitlines()[-1]
    report = json.loads(step(tmp_path, "certificate", "lint", path, "--rfc5280", "--json").stdout)
    assert report["errors"] >= 1


def test_bad_inputs(tmp_path: Path) -> None:
    fails(tmp_path, "error reading file", "certificate", "lint", tmp_path / "missing.crt")
    (tmp_path / "junk.crt").write_text("not a certificate\n")
    fails(tmp_path, "does not contain any valid CERTIFICATE", "certificate", "lint", "junk.crt")
    ok(tmp_path, "certificate", "create", "r", "r.csr", "r.key", "--csr", "--no-password",
       "--insecure")  # fmt: skip
    fails(tmp_path, "lint works on certificates", "certificate", "lint", "r.csr")
