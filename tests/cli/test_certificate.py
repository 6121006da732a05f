"""`step certificate inspect` and `step certificate fingerprint` (cli.certificate)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from cli.certificate import app
from cli.certinfo import abbreviated, certificate_text, parse_certificate
from provisioners.extension import ProvisionerExtension

NOW = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
KID = "Aw8XWcrQVpUz4f1kdcPuqAjA6omXiJHaVYhTiOh-Zho"

runner = CliRunner()


def _name(cn: str, org: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(False, False, False, False, False, True, True, False, False)


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(True, False, False, False, False, False, False, False, False)


@dataclass
class PKI:
    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    inter_key: ec.EllipticCurvePrivateKey
    directory: Path

    def write(self, name: str, *certs: x509.Certificate) -> Path:
        path = self.directory / name
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
        return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("Test Root CA", "Test")
    inter_name = _name("Test Intermediate CA", "Test")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(0x0123456789ABCDEF0123456789ABCDEF)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    intermediate = (
        x509.CertificateBuilder()
        .subject_name(inter_name)
        .issuer_name(root_name)
        .public_key(inter_key.public_key())
        .serial_number(12345678901234567890)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    provisioner = ProvisionerExtension(1, "admin@example.com", KID)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("leaf.example.com"))
        .issuer_name(inter_name)
        .public_key(leaf_key.public_key())
        .serial_number(987654321987654321987654321)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(hours=24))
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("leaf.example.com"),
                    x509.DNSName("www.example.com"),
                    x509.RFC822Name("admin@example.com"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    x509.UniformResourceIdentifier("spiffe://example.com/leaf"),
                ]
            ),
            critical=False,
        )
        .add_extension(provisioner.to_x509_extension(), critical=False)
        .sign(inter_key, hashes.SHA256())
    )
    return PKI(root, intermediate, leaf, leaf_key, inter_key, tmp_path_factory.mktemp("pki"))


def _self_signed(
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, serial: int
) -> x509.Certificate:
    name = _name("self.example.com")
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .sign(key, algorithm)
    )


def _invoke(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


# --short ------------------------------------------------------------------------------------


def test_short_leaf_exact(pki: PKI) -> None:
    code, out, _ = _invoke("inspect", "--short", str(pki.write("leaf.crt", pki.leaf)))
    assert code == 0
    assert out.splitlines() == [
        "X.509v3 TLS Certificate (ECDSA P-256) [Serial: 9876...4321]",
        "  Subject:     leaf.example.com",
        "               www.example.com",
        "               127.0.0.1",
        "               ::1",
        "               admin@example.com",
        "               spiffe://example.com/leaf",
        "  Issuer:      Test Intermediate CA",
        "  Provisioner: admin@example.com [ID: Aw8X...-Zho]",
        "  Valid from:  2024-01-02T03:04:05Z",
        "          to:  2024-01-03T03:04:05Z",
    ]


def test_short_root_and_intermediate(pki: PKI) -> None:
    _, out, _ = _invoke("inspect", "--short", str(pki.write("root.crt", pki.root)))
    assert out.splitlines() == [
        "X.509v3 Root CA Certificate (ECDSA P-256) [Serial: 1512...9215]",
        "  Subject:     Test Root CA",
        "  Issuer:      Test Root CA",
        "  Valid from:  2024-01-02T03:04:05Z",
        "          to:  2033-12-30T03:04:05Z",
    ]
    _, out, _ = _invoke("inspect", "--short", str(pki.write("int.crt", pki.intermediate)))
    assert out.splitlines()[0] == (
        "X.509v3 Intermediate CA Certificate (ECDSA P-256) [Serial: 1234...7890]"
    )
    assert "Provisioner" not in out


def test_short_key_labels_and_short_serial(pki: PKI) -> None:
    rsa_cert = _self_signed(rsa.generate_private_key(65537, 2048), 12345678)
    ed_cert = _self_signed(ed25519.Ed25519PrivateKey.generate(), 7)
    _, out, _ = _invoke("inspect", "--short", str(pki.write("rsa.crt", rsa_cert)))
    assert out.splitlines()[0] == "X.509v3 TLS Certificate (RSA 2048) [Serial: 12345678]"
    assert out.splitlines()[1:3] == [
        "  Subject:     self.example.com",
        "  Issuer:      self.example.com",
    ]
    _, out, _ = _invoke("inspect", "--short", str(pki.write("ed.crt", ed_cert)))
    assert out.splitlines()[0] == "X.509v3 TLS Certificate (Ed25519 256) [Serial: 7]"


def test_short_provisioner_without_credential(pki: PKI, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("acme.example.com"))
        .issuer_name(pki.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(99)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(hours=1))
        .add_extension(ProvisionerExtension(6, "acme", "").to_x509_extension(), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "acme.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _, out, _ = _invoke("inspect", "--short", str(path))
    assert "  Provisioner: acme\n" in out
    assert "[ID:" not in out


def test_abbreviation_rule() -> None:
    assert abbreviated("12345678") == "12345678"
    assert abbreviated("123456789") == "1234...6789"


# default text ---------------------------------------------------------------------------------


def test_text_layout(pki: PKI) -> None:
    code, out, _ = _invoke("inspect", str(pki.write("leaf.crt", pki.leaf)))
    assert code == 0
    lines = out.splitlines()
    assert lines[:5] == [
        "Certificate:",
        "    Data:",
        "        Version: 3 (0x2)",
        "        Serial Number: 987654321987654321987654321 (0x0330f7f01403f94edb1812b1)",
        "        Signature Algorithm: ECDSA-SHA256",
    ]
    assert lines[5:10] == [
        "        Issuer: O=Test,CN=Test Intermediate CA",
        "        Validity",
        "            Not Before: Jan 2 03:04:05 2024 UTC",
        "            Not After : Jan 3 03:04:05 2024 UTC",
        "        Subject: CN=leaf.example.com",
    ]
    assert lines[10:13] == [
        "        Subject Public Key Info:",
        "            Public Key Algorithm: ECDSA",
        "                Public-Key: (256 bit)",
    ]
    assert "                Curve: P-256" in lines
    ski = x509.SubjectKeyIdentifier.from_public_key(pki.leaf_key.public_key()).digest
    start = lines.index("        X509v3 extensions:")
    end = next(i for i, line in enumerate(lines) if line.startswith("    Signature Algorithm:"))
    assert lines[start + 1 : end] == [
        "            X509v3 Key Usage: critical",
        "                Digital Signature",
        "            X509v3 Extended Key Usage:",
        "                Server Authentication, Client Authentication",
        "            X509v3 Subject Key Identifier:",
        "                " + ":".join(f"{b:02X}" for b in ski),
        "            X509v3 Authority Key Identifier:",
        "                "
        + ":".join(
            f"{b:02X}"
            for b in pki.intermediate.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier
            ).value.digest
        ),
        "            X509v3 Subject Alternative Name:",
        "                DNS:leaf.example.com, DNS:www.example.com",
        "                email:admin@example.com",
        "                IP Address:127.0.0.1, IP Address:::1",
        "                URI:spiffe://example.com/leaf",
        "            X509v3 Step Provisioner:",
        "                Type: JWK",
        "                Name: admin@example.com",
        f"                CredentialID: {KID}",
    ]
    assert lines[end] == "    Signature Algorithm: ECDSA-SHA256"
    signature_hex = "".join(line.strip() for line in lines[end + 1 :]).replace(":", "")
    assert bytes.fromhex(signature_hex) == pki.leaf.signature


def test_text_root_basic_constraints_and_ed25519() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    name = _name("Ed Root")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, None)
    )
    text = certificate_text(parse_certificate(cert.public_bytes(serialization.Encoding.DER)))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    hexed = [f"{b:02x}" for b in raw]
    assert "        Serial Number: 1 (0x01)\n" in text
    assert "            Public Key Algorithm: Ed25519\n" in text
    assert (
        "                Public-Key: (32 bit)\n"
        "                    " + ":".join(hexed[:15]) + ":\n"
        "                    " + ":".join(hexed[15:30]) + ":\n"
        "                    " + ":".join(hexed[30:]) + "\n"
    ) in text
    assert (
        "            X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0\n"
        in text
    )
    assert "    Signature Algorithm: Ed25519\n" in text


# JSON and PEM ---------------------------------------------------------------------------------


def test_json_fields(pki: PKI) -> None:
    code, out, _ = _invoke("inspect", "--format", "json", str(pki.write("leaf.crt", pki.leaf)))
    assert code == 0
    assert out.startswith('{\n  "version": 3,\n  "serial_number": "987654321987654321987654321",')
    data = json.loads(out)
    der = pki.leaf.public_bytes(serialization.Encoding.DER)
    assert list(data)[:8] == [
        "version",
        "serial_number",
        "signature_algorithm",
        "issuer",
        "issuer_dn",
        "validity",
        "subject",
        "subject_dn",
    ]
    assert data["signature_algorithm"] == {"name": "ECDSA-SHA256", "oid": "1.2.840.10045.4.3.2"}
    assert data["issuer"] == {"common_name": ["Test Intermediate CA"], "organization": ["Test"]}
    assert data["issuer_dn"] == "O=Test, CN=Test Intermediate CA"
    assert data["validity"] == {
        "start": "2024-01-02T03:04:05Z",
        "end": "2024-01-03T03:04:05Z",
        "length": 86400,
    }
    assert data["subject_dn"] == "CN=leaf.example.com"
    assert data["subject_key_info"]["key_algorithm"] == {"name": "ECDSA"}
    assert data["subject_key_info"]["ecdsa_public_key"]["curve"] == "P-256"
    assert data["subject_key_info"]["ecdsa_public_key"]["length"] == 256
    extensions = data["extensions"]
    assert list(extensions) == [
        "key_usage",
        "subject_alt_name",
        "authority_key_id",
        "subject_key_id",
        "extended_key_usage",
        "step_provisioner",
    ]
    assert extensions["key_usage"] == {"digital_signature": True, "value": 1}
    assert extensions["subject_alt_name"] == {
        "dns_names": ["leaf.example.com", "www.example.com"],
        "email_addresses": ["admin@example.com"],
        "ip_addresses": ["127.0.0.1", "::1"],
        "uniform_resource_identifiers": ["spiffe://example.com/leaf"],
    }
    ski = x509.SubjectKeyIdentifier.from_public_key(pki.leaf_key.public_key()).digest
    assert extensions["subject_key_id"] == ski.hex()
    assert extensions["extended_key_usage"] == {"client_auth": True, "server_auth": True}
    assert extensions["step_provisioner"] == {
        "credentialID": KID,
        "name": "admin@example.com",
        "type": "JWK",
    }
    assert data["signature"]["valid"] is False
    assert data["signature"]["self_signed"] is False
    assert base64.b64decode(data["signature"]["value"]) == pki.leaf.signature
    assert data["fingerprint_sha256"] == hashlib.sha256(der).hexdigest()
    assert data["fingerprint_sha1"] == hashlib.sha1(der).hexdigest()
    assert data["tbs_fingerprint"] == hashlib.sha256(pki.leaf.tbs_certificate_bytes).hexdigest()
    assert data["tbs_noct_fingerprint"] == data["tbs_fingerprint"]
    assert data["validation_level"] == "unknown"
    assert data["names"] == ["leaf.example.com", "www.example.com", "127.0.0.1"]
    assert data["redacted"] is False


def test_json_root_and_bundle(pki: PKI) -> None:
    _, out, _ = _invoke("inspect", "--format", "json", str(pki.write("root.crt", pki.root)))
    root = json.loads(out)
    assert root["signature"]["self_signed"] is True
    assert root["extensions"]["basic_constraints"] == {"is_ca": True, "max_path_len": 1}
    assert root["extensions"]["key_usage"] == {
        "certificate_sign": True,
        "crl_sign": True,
        "value": 96,
    }
    bundle = pki.write("bundle.crt", pki.leaf, pki.intermediate)
    _, out, _ = _invoke("inspect", "--format", "json", "--bundle", str(bundle))
    assert [c["subject"]["common_name"] for c in json.loads(out)] == [
        ["leaf.example.com"],
        ["Test Intermediate CA"],
    ]
    # one certificate with --bundle is still a single object, as in step
    _, out, _ = _invoke(
        "inspect", "--format", "json", "--bundle", str(pki.write("r.crt", pki.root))
    )
    assert isinstance(json.loads(out), dict)


def test_pem_output_and_der_input(pki: PKI, tmp_path: Path) -> None:
    bundle = pki.write("bundle.crt", pki.leaf, pki.intermediate)
    _, out, _ = _invoke("inspect", "--format", "pem", str(bundle))
    assert out == pki.leaf.public_bytes(serialization.Encoding.PEM).decode()
    _, out, _ = _invoke("inspect", "--format", "pem", "--bundle", str(bundle))
    assert out == bundle.read_text()
    der = tmp_path / "leaf.der"
    der.write_bytes(pki.leaf.public_bytes(serialization.Encoding.DER))
    _, short_der, _ = _invoke("inspect", "--short", str(der))
    _, short_pem, _ = _invoke("inspect", "--short", str(bundle))
    assert short_der == short_pem


def test_bundle_first_only_unless_flag(pki: PKI) -> None:
    bundle = str(pki.write("bundle.crt", pki.leaf, pki.intermediate))
    _, out, _ = _invoke("inspect", "--short", bundle)
    assert out.count("X.509v3 ") == 1
    _, out, _ = _invoke("inspect", "--short", "--bundle", bundle)
    assert [line for line in out.splitlines() if line.startswith("X.509v3")] == [
        "X.509v3 TLS Certificate (ECDSA P-256) [Serial: 9876...4321]",
        "X.509v3 Intermediate CA Certificate (ECDSA P-256) [Serial: 1234...7890]",
    ]
    _, out, _ = _invoke("inspect", "--bundle", bundle)
    assert out.count("Certificate:\n    Data:\n") == 2


def test_stdin_and_bom(pki: PKI, tmp_path: Path) -> None:
    pem = pki.leaf.public_bytes(serialization.Encoding.PEM)
    code, out, _ = _invoke("inspect", "--short", "-", stdin=pem)
    assert code == 0 and out.startswith("X.509v3 TLS Certificate")
    code, out, _ = _invoke("inspect", "--short", stdin=pem)
    assert code == 0 and "leaf.example.com" in out
    with_bom = tmp_path / "bom.crt"
    with_bom.write_bytes(b"\xef\xbb\xbf" + pem)
    code, out, _ = _invoke("inspect", "--short", str(with_bom))
    assert code == 0 and "leaf.example.com" in out


# CSRs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csr_path(pki: PKI) -> Path:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name("csr.example.com"))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("csr.example.com"),
                    x509.DNSName("alt.example.com"),
                    x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(pki.leaf_key, hashes.SHA256())
    )
    path = pki.directory / "req.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def test_csr_short_text_json_pem(csr_path: Path) -> None:
    _, out, _ = _invoke("inspect", "--short", str(csr_path))
    assert out.splitlines() == [
        "X.509v3 Certificate Signing Request (ECDSA P-256)",
        "  Subject:     csr.example.com",
        "               alt.example.com",
        "               10.0.0.1",
    ]
    _, out, _ = _invoke("inspect", str(csr_path))
    lines = out.splitlines()
    assert lines[:4] == [
        "Certificate Request:",
        "    Data:",
        "        Version: 0 (0x0)",
        "        Subject: CN=csr.example.com",
    ]
    assert "        Requested Extensions:" in lines
    assert "                DNS:csr.example.com, DNS:alt.example.com" in lines
    assert "                IP Address:10.0.0.1" in lines
    _, out, _ = _invoke("inspect", "--format", "json", str(csr_path))
    data = json.loads(out)
    assert data["Version"] == 0
    assert data["Subject"] == {"common_name": ["csr.example.com"]}
    assert data["DNSNames"] == ["csr.example.com", "alt.example.com"]
    assert data["IPAddresses"] == ["10.0.0.1"]
    assert data["SignatureAlgorithm"] == {"name": "ECDSA-SHA256", "oid": "1.2.840.10045.4.3.2"}
    _, out, _ = _invoke("inspect", "--format", "pem", str(csr_path))
    assert out == csr_path.read_text()


# fingerprint -----------------------------------------------------------------------------------


def test_fingerprint_formats(pki: PKI) -> None:
    path = str(pki.write("leaf.crt", pki.leaf))
    digest = hashlib.sha256(pki.leaf.public_bytes(serialization.Encoding.DER)).digest()
    expected = {
        "hex": digest.hex(),
        "base64": base64.b64encode(digest).decode(),
        "base64-url": base64.urlsafe_b64encode(digest).decode(),
        "base64-raw": base64.b64encode(digest).decode().rstrip("="),
        "base64-url-raw": base64.urlsafe_b64encode(digest).decode().rstrip("="),
    }
    _, out, _ = _invoke("fingerprint", path)
    assert out == digest.hex() + "\n"
    for fmt, value in expected.items():
        code, out, _ = _invoke("fingerprint", "--format", fmt, path)
        assert (code, out) == (0, value + "\n"), fmt


def test_fingerprint_sha1_bundle_and_csr(pki: PKI, csr_path: Path) -> None:
    bundle = str(pki.write("bundle.crt", pki.leaf, pki.intermediate))
    code, _, err = _invoke("fingerprint", "--sha1", bundle)
    assert (code, err) == (1, "flag '--sha' requires the '--insecure' flag\n")
    _, out, _ = _invoke("fingerprint", "--sha1", "--insecure", bundle)
    leaf_der = pki.leaf.public_bytes(serialization.Encoding.DER)
    assert out == hashlib.sha1(leaf_der).hexdigest() + "\n"
    _, out, _ = _invoke("fingerprint", "--bundle", bundle)
    inter_der = pki.intermediate.public_bytes(serialization.Encoding.DER)
    assert out.splitlines() == [
        f"0: {hashlib.sha256(leaf_der).hexdigest()}",
        f"1: {hashlib.sha256(inter_der).hexdigest()}",
    ]
    csr_der = x509.load_pem_x509_csr(csr_path.read_bytes()).public_bytes(serialization.Encoding.DER)
    _, out, _ = _invoke("fingerprint", str(csr_path))
    assert out == hashlib.sha256(csr_der).hexdigest() + "\n"
    code, _, err = _invoke("fingerprint", "--format", "hexa", bundle)
    assert code == 1
    assert err == "error parsing fingerprint format: 'hexa' is not a valid fingerprint format\n"


# errors ------------------------------------------------------------------------------------------


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.crt"
    garbage.write_bytes(b"this is not a certificate\n\x00\x01")
    for command in ("inspect", "fingerprint"):
        code, out, err = _invoke(command, str(garbage))
        assert code == 1 and out == ""
        assert err == (
            f"file {garbage} does not contain any valid CERTIFICATE or CERTIFICATE REQUEST blocks\n"
        )
    missing = tmp_path / "missing.crt"
    for command in ("inspect", "fingerprint"):
        code, out, err = _invoke(command, str(missing))
        assert code == 1 and out == ""
        assert err == (
            f"error reading file {missing}: open {missing} failed: no such file or directory\n"
        )


def test_corrupt_pem_and_flag_errors(pki: PKI, tmp_path: Path) -> None:
    broken = tmp_path / "broken.crt"
    broken.write_text(
        "-----BEGIN CERTIFICATE-----\nMIIBkzCCATmgAwIBAgI=\n-----END CERTIFICATE-----\n"
    )
    code, _, err = _invoke("inspect", str(broken))
    assert code == 1 and err.count("\n") == 1 and "does not contain any valid" in err
    path = str(pki.write("leaf.crt", pki.leaf))
    code, _, err = _invoke("inspect", "--format", "xml", path)
    assert (code, err) == (
        1,
        "invalid value 'xml' for flag '--format'; options are text, json, pem\n",
    )
    code, _, err = _invoke("inspect", "--short", "--format", "json", path)
    assert (code, err) == (1, "flag '--short' is incompatible with '--format json'\n")


# remote -----------------------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    leaf: x509.Certificate


@pytest.fixture
def tls_server(pki: PKI, tmp_path: Path) -> Iterator[Server]:
    """A TLS server on 127.0.0.1 presenting a currently valid leaf + the intermediate."""
    now = datetime.datetime.now(datetime.UTC)
    live = (
        x509.CertificateBuilder()
        .subject_name(_name("leaf.example.com"))
        .issuer_name(pki.intermediate.subject)
        .public_key(pki.leaf_key.public_key())
        .serial_number(424242424242)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("leaf.example.com"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(pki.inter_key, hashes.SHA256())
    )
    chain = pki.write("chain.crt", live, pki.intermediate)
    key = tmp_path / "leaf.key"
    key.write_bytes(
        pki.leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(chain), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield Server(port, live)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_inspect_url_verified_with_roots(pki: PKI, tls_server: Server) -> None:
    roots = str(pki.write("root.crt", pki.root))
    url = f"https://127.0.0.1:{tls_server.port}"
    code, out, err = _invoke("inspect", "--short", "--roots", roots, url)
    assert (code, err) == (0, "")
    assert out.splitlines()[:3] == [
        "X.509v3 TLS Certificate (ECDSA P-256) [Serial: 4242...4242]",
        "  Subject:     leaf.example.com",
        "               127.0.0.1",
    ]
    assert out.count("X.509v3") == 1
    code, out, _ = _invoke("inspect", "--short", "--bundle", "--roots", roots, url)
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("X.509v3")] == [
        "X.509v3 TLS Certificate (ECDSA P-256) [Serial: 4242...4242]",
        "X.509v3 Intermediate CA Certificate (ECDSA P-256) [Serial: 1234...7890]",
    ]
    code, out, _ = _invoke(
        "inspect", "--short", "--servername", "leaf.example.com", "--roots", roots, url
    )
    assert code == 0 and "leaf.example.com" in out
    code, out, _ = _invoke("fingerprint", "--roots", roots, url)
    leaf_der = tls_server.leaf.public_bytes(serialization.Encoding.DER)
    assert (code, out) == (0, hashlib.sha256(leaf_der).hexdigest() + "\n")


def test_inspect_url_untrusted_and_insecure(pki: PKI, tls_server: Server) -> None:
    url = f"https://127.0.0.1:{tls_server.port}"
    other_root = _self_signed(ec.generate_private_key(ec.SECP256R1()), 5)
    code, out, err = _invoke("inspect", "--roots", str(pki.write("other.crt", other_root)), url)
    assert code == 1 and out == ""
    assert err.startswith("failed to connect: ") and err.count("\n") == 1
    code, out, _ = _invoke("inspect", "--insecure", "--format", "pem", "--bundle", url)
    assert code == 0
    assert out == pki.write("chain.pem", tls_server.leaf, pki.intermediate).read_text()
    roots = str(pki.write("root.crt", pki.root))
    code, _, err = _invoke("inspect", "--servername", "wrong.example.com", "--roots", roots, url)
    assert code == 1 and err.startswith("failed to connect: ")
    code, _, err = _invoke("inspect", "--insecure", "--servername", "wrong.example.com", url)
    assert code == 0 and err == ""


def test_inspect_url_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    code, out, err = _invoke("inspect", "--insecure", f"https://127.0.0.1:{port}")
    assert code == 1 and out == ""
    assert err.startswith(f"failed to connect: dial tcp 127.0.0.1:{port}: ")
    assert err.count("\n") == 1
