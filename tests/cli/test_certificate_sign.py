"""`step certificate sign` (cli.certificate_sign) of CSRs made by openssl, checked with openssl
and pkilint."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.cli.certificate_cli import (
    DevPKI,
    cert_at,
    fails,
    make_pki,
    ok,
    openssl,
    pkilint_clean,
    verify_strict,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _openssl_csr(tmp: Path, name: str, *newkey: str, subj: str, san: str | None) -> Path:
    args = ["req", "-new", "-nodes", *newkey, "-keyout", f"{name}.key", "-subj", subj,
            "-out", f"{name}.csr"]  # fmt: skip
    if san:
        args += ["-addext", f"subjectAltName={san}"]
    proc = openssl(tmp, *args)
    assert proc.returncode == 0, proc.stderr
    return tmp / f"{name}.csr"


def test_sign_openssl_csr(tmp_path: Path, pki: DevPKI) -> None:
    csr = _openssl_csr(tmp_path, "web", "-newkey", "rsa:2048", subj="/O=Example/CN=web.example",
                       san="DNS:web.example,DNS:www.example,IP:192.0.2.7")  # fmt: skip
    out = ok(tmp_path, "certificate", "sign", csr, pki.inter, pki.inter_key, "--password-file",
             pki.password, "--bundle").stdout  # fmt: skip
    (tmp_path / "web.crt").write_text(out)
    verify_strict(tmp_path, pki, tmp_path / "web.crt")
    leaf = cert_at(tmp_path / "web.crt")
    (tmp_path / "leaf.der").write_bytes(leaf.public_bytes(Encoding.DER))  # pkilint reads one
    pkilint_clean(tmp_path / "leaf.der")
    assert cert_at(tmp_path / "web.crt", 1) == cert_at(pki.inter)
    assert leaf.subject.rfc4514_string() == "CN=web.example,O=Example"
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["web.example", "www.example"]
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=24)

    # A CSR without SANs gets its common name as SAN, unless --omit-cn-san.
    bare = _openssl_csr(tmp_path, "bare", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", subj="/CN=bare.example", san=None)  # fmt: skip
    signed = ok(tmp_path, "certificate", "sign", bare, pki.inter, pki.inter_key,
                "--password-file", pki.password).stdout  # fmt: skip
    cert = x509.load_pem_x509_certificate(signed.encode())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["bare.example"]
    omitted = ok(tmp_path, "certificate", "sign", bare, pki.inter, pki.inter_key,
                 "--password-file", pki.password, "--omit-cn-san").stdout  # fmt: skip
    with pytest.raises(x509.ExtensionNotFound):
        x509.load_pem_x509_certificate(omitted.encode()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )

    # An intermediate from the root (pathLenConstraint 1) is allowed, not from the intermediate.
    sub = _openssl_csr(tmp_path, "sub", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                       subj="/CN=Sub CA", san=None)  # fmt: skip
    ca = ok(tmp_path, "certificate", "sign", sub, pki.root, pki.root_key, "--profile",
            "intermediate-ca", "--password-file", pki.password).stdout  # fmt: skip
    bc = x509.load_pem_x509_certificate(ca.encode()).extensions.get_extension_for_class(
        x509.BasicConstraints
    )
    assert bc.value.ca and bc.value.path_length == 0
    fails(tmp_path, "cannot sign an intermediate-ca: pathLenConstraint is 0", "certificate",
          "sign", sub, pki.inter, pki.inter_key, "--profile", "intermediate-ca",
          "--password-file", pki.password)  # fmt: skip


def test_sign_refusals(tmp_path: Path, pki: DevPKI) -> None:
    csr = _openssl_csr(tmp_path, "t", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                       subj="/CN=t.example", san="DNS:t.example")  # fmt: skip
    der = bytearray(x509.load_pem_x509_csr(csr.read_bytes()).public_bytes(Encoding.DER))
    der[-3] ^= 0x01  # flip a bit of the signature
    (tmp_path / "bad.csr").write_bytes(bytes(der))
    fails(tmp_path, "certificate request has invalid signature", "certificate", "sign",
          "bad.csr", pki.inter, pki.inter_key, "--password-file", pki.password)  # fmt: skip
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope\n")
    fails(tmp_path, "error decrypting", "certificate", "sign", csr, pki.inter, pki.inter_key,
          "--password-file", wrong)  # fmt: skip
    fails(tmp_path, "is encrypted: use '--password-file'", "certificate", "sign", csr,
          pki.inter, pki.inter_key)  # fmt: skip
    fails(tmp_path, "issuer certificate is not a certificate authority", "certificate", "sign",
          csr, _leaf(tmp_path, pki), "leaf.key")  # fmt: skip
    fails(tmp_path, "invalid value 'csr' for flag '--profile'", "certificate", "sign", csr,
          pki.inter, pki.inter_key, "--profile", "csr")  # fmt: skip


def _leaf(tmp: Path, pki: DevPKI) -> Path:
    ok(tmp, "certificate", "create", "leaf", "leaf.crt", "leaf.key", "--ca", pki.inter,
       "--ca-key", pki.inter_key, "--ca-password-file", pki.password, "--no-password",
       "--insecure")  # fmt: skip
    return tmp / "leaf.crt"
