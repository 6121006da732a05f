"""appliance.ceremony_record (the hash-chained record, URI redaction) and appliance.ceremony
(root and intermediate signing)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from appliance import ceremony, ceremony_record
from appliance.ceremony_record import CeremonyError, RecordError
from keystores import KeySpec, KeyStoreError, open_keystore, redact_uri

# A wrong password is "failed to decrypt ..."; about 1 in 250 times CBC padding happens to
# check out and the garbage is reported as "cannot load ...": both are a refusal.
WRONG_PASSWORD = r"failed to decrypt|cannot load"
PASSWORD = b"ceremony-password"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _record(tmp_path: Path, entries: int = 3) -> Path:
    path = tmp_path / "usb" / "record.jsonl"
    for i in range(entries):
        ceremony_record.append_entry(
            path,
            f"step test {i}",
            key_uris=[f"pkcs11:token=t;object=k{i}?pin-value=1234"],
            public_keys=[_key().public_key()],
            details={"i": i},
        )
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


# --- the record -----------------------------------------------------------------------------


def test_entries_chain(tmp_path: Path) -> None:
    path = _record(tmp_path)
    lines = _lines(path)
    entries = [json.loads(line) for line in lines]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert list(entries[0]) == list(ceremony_record.FIELDS)
    assert entries[0]["prev_sha256"] is None
    for prev, entry in zip(lines, entries[1:], strict=False):
        assert entry["prev_sha256"] == hashlib.sha256(prev.encode()).hexdigest()
    for entry in entries:
        datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%SZ")
        assert "@" in entry["who"]
        assert entry["key_uris"][0].endswith("pin-value=REDACTED")
        assert "1234" not in json.dumps(entry)
    summary = ceremony_record.verify_record(path)
    assert summary.entries == 3
    assert summary.head_sha256 == hashlib.sha256(lines[-1].encode()).hexdigest()


def test_fingerprints_recorded(tmp_path: Path) -> None:
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "r.jsonl"
    entry = ceremony_record.append_entry(path, "c", ["/k"], [key.public_key()], [cert])
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert entry["public_key_sha256"] == [hashlib.sha256(spki).hexdigest()]
    assert entry["certificate_sha256"] == [
        hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    ]


@pytest.mark.parametrize("line", [0, 1, 2])
def test_edited_line_is_caught(tmp_path: Path, line: int) -> None:
    path = _record(tmp_path)
    lines = _lines(path)
    entry = json.loads(lines[line])
    entry["command"] = "something else"
    lines[line] = json.dumps(entry, separators=(",", ":"))
    _write(path, lines)
    with pytest.raises(RecordError, match=f"line {line + 1}: entry_sha256") as info:
        ceremony_record.verify_record(path)
    assert info.value.line == line + 1


def test_edit_with_recomputed_hash_breaks_next_link(tmp_path: Path) -> None:
    path = _record(tmp_path)
    lines = _lines(path)
    entry = json.loads(lines[0])
    entry["who"] = "mallory@elsewhere"
    body = {k: v for k, v in entry.items() if k != "entry_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    entry["entry_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    lines[0] = json.dumps(entry, separators=(",", ":"))
    _write(path, lines)
    with pytest.raises(RecordError, match="line 2: prev_sha256 does not match the SHA-256 of "
                                          "line 1"):
        ceremony_record.verify_record(path)


def test_removed_line_is_caught(tmp_path: Path) -> None:
    path = _record(tmp_path)
    lines = _lines(path)
    _write(path, [lines[0], lines[2]])
    with pytest.raises(RecordError, match="line 2: seq is 3, expected 2"):
        ceremony_record.verify_record(path)


def test_whitespace_change_is_caught(tmp_path: Path) -> None:
    path = _record(tmp_path)
    lines = _lines(path)
    lines[1] = lines[1].replace(",", ", ", 1)
    _write(path, lines)
    with pytest.raises(RecordError, match="line 3: prev_sha256"):
        ceremony_record.verify_record(path)


def test_not_json_and_incomplete(tmp_path: Path) -> None:
    path = _record(tmp_path, 2)
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    with pytest.raises(RecordError, match="incomplete"):
        ceremony_record.verify_record(path)
    path.write_bytes(data + b"{oops\n")
    with pytest.raises(RecordError, match="line 3: not JSON"):
        ceremony_record.verify_record(path)


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="no such file"):
        ceremony_record.verify_record(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(RecordError, match="no entries"):
        ceremony_record.verify_record(tmp_path / "empty.jsonl")


def test_append_refuses_broken_record(tmp_path: Path) -> None:
    path = _record(tmp_path, 2)
    lines = _lines(path)
    _write(path, [lines[1]])
    with pytest.raises(RecordError, match="line 1: seq"):
        ceremony_record.append_entry(path, "more")
    assert _lines(path) == [lines[1]]


def test_check_appendable(tmp_path: Path) -> None:
    ceremony_record.check_appendable(tmp_path / "none.jsonl")
    path = _record(tmp_path, 2)
    ceremony_record.check_appendable(path)
    _write(path, _lines(path)[1:])
    with pytest.raises(RecordError, match="line 1: seq"):
        ceremony_record.check_appendable(path)


def test_expect_head(tmp_path: Path) -> None:
    path = _record(tmp_path, 2)
    head = ceremony_record.verify_record(path).head_sha256
    _record(tmp_path, 1)  # appended later: the old head is still in the record
    assert ceremony_record.verify_record(path, expect_head=head.upper()).entries == 3
    with pytest.raises(RecordError, match="expected head"):
        ceremony_record.verify_record(path, expect_head="0" * 64)


def test_record_mode_and_crash_safety(tmp_path: Path) -> None:
    path = _record(tmp_path, 1)
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["record.jsonl"]


# --- URIs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("pkcs11:token=a;object=b?pin-value=1234", "pkcs11:token=a;object=b?pin-value=REDACTED"),
        ("pkcs11:token=a;pin-value=1234;object=b", "pkcs11:token=a;pin-value=REDACTED;object=b"),
        (
            "pkcs11:object=b?module-path=/m.so&pin-value=1%3B2&x=y",
            "pkcs11:object=b?module-path=/m.so&pin-value=REDACTED&x=y",
        ),
        ("pkcs11:object=b?pin-source=/run/pin", "pkcs11:object=b?pin-source=/run/pin"),
        (
            "yubikey:management-key=0102;slot-id=9c?pin-value=123456",
            "yubikey:management-key=REDACTED;slot-id=9c?pin-value=REDACTED",
        ),
        ("/keys/pin-value=1", "/keys/pin-value=1"),
        ("file:/keys/a.key", "file:/keys/a.key"),
    ],
)
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


# --- root and intermediate ------------------------------------------------------------------


def _csr(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, org: str | None
         ) -> x509.CertificateSigningRequest:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, "whatever")]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(
        key, algorithm
    )


@pytest.fixture
def root(tmp_path: Path) -> tuple[str, x509.Certificate]:
    uri = f"file:{tmp_path / 'offline' / 'root.key'}"
    result = ceremony.create_root(uri, "Acme", KeySpec("EC", "P-384"), PASSWORD)
    assert result.key_created
    return uri, result.certificate


def test_create_root_profile(root: tuple[str, x509.Certificate]) -> None:
    uri, cert = root
    assert cert.subject.rfc4514_string() == "CN=Acme Root CA,O=Acme"
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 1
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    with open_keystore(uri, password=PASSWORD) as store:
        assert ceremony.same_key(store.public_key(uri), cert)


def test_create_root_takes_existing_key(root: tuple[str, x509.Certificate]) -> None:
    uri, first = root
    again = ceremony.create_root(uri, "Acme", KeySpec("EC", "P-256"), PASSWORD)
    assert not again.key_created
    assert ceremony.same_key(again.certificate, first)


def test_create_root_wrong_password(root: tuple[str, x509.Certificate]) -> None:
    with pytest.raises(KeyStoreError, match=WRONG_PASSWORD):
        ceremony.create_root(root[0], "Acme", KeySpec(), b"wrong")


def test_sign_intermediate(root: tuple[str, x509.Certificate]) -> None:
    uri, root_cert = root
    key = _key()
    cert, root_public = ceremony.sign_intermediate(_csr(key, "Acme"), uri, root_cert, PASSWORD)
    assert ceremony.same_key(root_public, root_cert)
    assert cert.subject.rfc4514_string() == "CN=Acme Intermediate CA,O=Acme"
    cert.verify_directly_issued_by(root_cert)
    assert ceremony.same_key(cert, key.public_key())
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 3650
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)


def test_sign_intermediate_name_flag_and_ed25519(root: tuple[str, x509.Certificate]) -> None:
    uri, root_cert = root
    cert, _ = ceremony.sign_intermediate(
        _csr(ed25519.Ed25519PrivateKey.generate(), None), uri, root_cert, PASSWORD, name="Lab"
    )
    assert cert.subject.rfc4514_string() == "CN=Lab Intermediate CA,O=Lab"


def test_sign_intermediate_refusals(root: tuple[str, x509.Certificate], tmp_path: Path) -> None:
    uri, root_cert = root
    with pytest.raises(CeremonyError, match="give the PKI name with --name"):
        ceremony.sign_intermediate(_csr(_key(), None), uri, root_cert, PASSWORD)
    other = ceremony.create_root(f"file:{tmp_path / 'other.key'}", "X", KeySpec(), PASSWORD)
    with pytest.raises(CeremonyError, match="does not match the root certificate"):
        ceremony.sign_intermediate(_csr(_key(), "Acme"), uri, other.certificate, PASSWORD)
    der = bytearray(_csr(_key(), "Acme").public_bytes(Encoding.DER))
    der[-1] ^= 1
    bad = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(CeremonyError, match="signature does not verify"):
        ceremony.sign_intermediate(bad, uri, root_cert, PASSWORD)
