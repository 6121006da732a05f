"""appliance.pki (`step ca init` with keys in other stores) and appliance.offline_root."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from appliance import ceremony, ceremony_record
from appliance.authority import Authority
from appliance.ceremony_record import CeremonyError
from appliance.config import CAConfig
from appliance.offline_root import complete_init, init_csr, load_pending
from appliance.pki import InitRequest, init_pki, pending_path
from keystores import KeySpec, KeyStoreError, open_keystore
from pki.fingerprint import certificate_fingerprint
from tests.softhsm import MODULE, SoftHSM, Token, softhsm_session

# A wrong password is "failed to decrypt ..."; about 1 in 250 times CBC padding happens to
# check out and the garbage is reported as "cannot load ...": both are a refusal.
WRONG_PASSWORD = r"failed to decrypt|cannot load"
PASSWORD = b"ca-password"
ROOT_PASSWORD = b"root-password"
PROV_PASSWORD = b"provisioner-password"


def _request(steppath: Path, **kwargs: object) -> InitRequest:
    return InitRequest(
        steppath,
        "Acme",
        ["127.0.0.1", "localhost"],
        "127.0.0.1:9000",
        "admin",
        PASSWORD,
        PROV_PASSWORD,
        **kwargs,  # type: ignore[arg-type]
    )


def _config_text(steppath: Path) -> str:
    return "".join(p.read_text() for p in sorted((steppath / "config").iterdir()))


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def steppath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "appliance" / "step"
    monkeypatch.setenv("STEPPATH", str(path))
    return path


# --- everything at once, keys elsewhere -----------------------------------------------------


def test_init_with_file_stores(steppath: Path, tmp_path: Path) -> None:
    root_uri = f"file:{tmp_path / 'usb' / 'root.key'}"
    inter_path = tmp_path / "hsm-b" / "intermediate.key"
    res = init_pki(
        _request(steppath, root_kms=root_uri, kms=str(inter_path), root_password=ROOT_PASSWORD)
    )
    assert res.root_key is None
    assert res.intermediate_key == str(inter_path)
    assert not (steppath / "secrets" / "root_ca_key").exists()
    assert not (steppath / "secrets" / "intermediate_ca_key").exists()
    assert stat.S_IMODE(inter_path.stat().st_mode) == 0o600

    cfg = json.loads(res.ca_config.read_text())
    assert cfg["key"] == str(inter_path)
    assert "kms" not in cfg
    assert "root.key" not in _config_text(steppath)
    assert "usb" not in _config_text(steppath)

    root, inter = _load(res.root_cert), _load(res.intermediate_cert)
    inter.verify_directly_issued_by(root)
    with open_keystore(root_uri, password=ROOT_PASSWORD) as store:
        assert ceremony.same_key(store.public_key(root_uri), root)
    with open_keystore(str(inter_path), password=PASSWORD) as store:
        assert ceremony.same_key(store.public_key(str(inter_path)), inter)

    (entry,) = [json.loads(line) for line in res.record.read_text().splitlines()]
    assert res.record == steppath / "ceremony" / "record.jsonl"
    assert entry["command"] == "step ca init"
    assert entry["key_uris"] == [str(tmp_path / "usb" / "root.key"), str(inter_path)]
    assert entry["public_key_sha256"] == [
        ceremony_record.public_key_sha256(root), ceremony_record.public_key_sha256(inter)
    ]
    assert entry["certificate_sha256"] == [
        certificate_fingerprint(root), certificate_fingerprint(inter)
    ]
    assert entry["details"]["root_key"] == "created"
    assert entry["details"]["intermediate_key"] == "created"

    auth = Authority.open(CAConfig.load(res.ca_config), password=PASSWORD)
    try:
        assert ceremony.same_key(auth.signer.public_key(), inter)
    finally:
        auth.repository.engine.dispose()


def test_init_takes_existing_keys_and_root(steppath: Path, tmp_path: Path) -> None:
    root_uri = str(tmp_path / "root.key")
    made = ceremony.create_root(root_uri, "Acme", KeySpec(), PASSWORD)
    (tmp_path / "root.crt").write_bytes(made.certificate.public_bytes(Encoding.PEM))
    inter_uri = str(tmp_path / "inter.key")
    with open_keystore(inter_uri, password=PASSWORD) as store:
        inter_public = store.create_key(inter_uri, KeySpec("EC", "P-384"))
    res = init_pki(
        _request(steppath, root_kms=root_uri, kms=inter_uri, root_cert=tmp_path / "root.crt")
    )
    assert _load(res.root_cert) == made.certificate
    inter = _load(res.intermediate_cert)
    assert ceremony.same_key(inter, inter_public)
    details = json.loads(res.record.read_text())["details"]
    assert details["root_key"] == "existing"
    assert details["root_certificate"] == "existing"
    assert details["intermediate_key"] == "existing"


def test_init_root_cert_mismatch_rolls_back(steppath: Path, tmp_path: Path) -> None:
    other = ceremony.create_root(str(tmp_path / "other.key"), "X", KeySpec(), PASSWORD)
    (tmp_path / "other.crt").write_bytes(other.certificate.public_bytes(Encoding.PEM))
    with pytest.raises(CeremonyError, match="does not match the root certificate"):
        init_pki(
            _request(
                steppath, root_kms=str(tmp_path / "root.key"), root_cert=tmp_path / "other.crt"
            )
        )
    assert not (steppath / "config" / "ca.json").exists()
    assert not (steppath / "certs" / "root_ca.crt").exists()
    assert not (steppath / "ceremony" / "record.jsonl").exists()


def test_broken_record_stops_init_before_any_key(steppath: Path, tmp_path: Path) -> None:
    record = steppath / "ceremony" / "record.jsonl"
    record.parent.mkdir(parents=True)
    record.write_text('{"seq": 2}\n')
    root_key = tmp_path / "root.key"
    with pytest.raises(ceremony_record.RecordError, match="line 1: missing"):
        init_pki(_request(steppath, root_kms=str(root_key)))
    with pytest.raises(ceremony_record.RecordError, match="line 1: missing"):
        init_csr(_request(steppath), tmp_path / "i.csr")
    assert not root_key.exists()
    assert not (tmp_path / "i.csr").exists()
    assert not (steppath / "secrets" / "intermediate_ca_key").exists()
    assert not (steppath / "config" / "ca.json").exists()


def test_full_init_supersedes_pending(steppath: Path, tmp_path: Path) -> None:
    init_csr(_request(steppath), tmp_path / "i.csr")
    assert pending_path(steppath).exists()
    init_pki(_request(steppath))
    assert not pending_path(steppath).exists()
    assert ceremony_record.verify_record(steppath / "ceremony" / "record.jsonl").entries == 2


def test_root_and_intermediate_cannot_share_a_key(steppath: Path, tmp_path: Path) -> None:
    key = str(tmp_path / "one.key")
    with pytest.raises(CeremonyError, match="cannot share one key"):
        init_pki(_request(steppath, root_kms=key, kms=f"file:{key}"))
    assert not (steppath / "config" / "ca.json").exists()


def test_init_wrong_root_password(steppath: Path, tmp_path: Path) -> None:
    root_uri = str(tmp_path / "root.key")
    ceremony.create_root(root_uri, "Acme", KeySpec(), ROOT_PASSWORD)
    with pytest.raises(KeyStoreError, match=WRONG_PASSWORD):
        init_pki(_request(steppath, root_kms=root_uri))
    assert not (steppath / "config" / "ca.json").exists()


# --- the offline root -----------------------------------------------------------------------


@pytest.fixture
def offline_root(tmp_path: Path) -> tuple[str, Path]:
    """A root made on 'another machine': key and certificate in tmp/offline."""
    uri = f"file:{tmp_path / 'offline' / 'root.key'}"
    made = ceremony.create_root(uri, "Acme", KeySpec(), ROOT_PASSWORD)
    crt = tmp_path / "offline" / "root_ca.crt"
    crt.write_bytes(made.certificate.public_bytes(Encoding.PEM))
    return uri, crt


def _sign(csr_path: Path, root: tuple[str, Path], out: Path) -> x509.Certificate:
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    cert, _ = ceremony.sign_intermediate(csr, root[0], _load(root[1]), ROOT_PASSWORD)
    out.write_bytes(cert.public_bytes(Encoding.PEM))
    return cert


def test_offline_path(steppath: Path, tmp_path: Path, offline_root: tuple[str, Path]) -> None:
    csr_path = tmp_path / "transfer" / "intermediate.csr"
    csr_res = init_csr(_request(steppath), csr_path)
    assert not (steppath / "config" / "ca.json").exists()
    assert stat.S_IMODE(csr_res.pending.stat().st_mode) == 0o600
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=Acme Intermediate CA,O=Acme"
    assert ceremony_record.public_key_sha256(csr.public_key()) == csr_res.public_key_sha256
    state = load_pending(steppath)
    assert state["key"] == str(steppath / "secrets" / "intermediate_ca_key")
    assert "encryptedKey" in state["provisioner"]

    cert = _sign(csr_path, offline_root, tmp_path / "transfer" / "intermediate.crt")
    res = complete_init(
        steppath, tmp_path / "transfer" / "intermediate.crt", offline_root[1], PASSWORD
    )
    assert not pending_path(steppath).exists()
    assert _load(res.intermediate_cert) == cert
    assert _load(res.root_cert) == _load(offline_root[1])
    cfg = json.loads(res.ca_config.read_text())
    assert cfg["key"] == str(steppath / "secrets" / "intermediate_ca_key")
    assert cfg["authority"]["provisioners"] == [state["provisioner"]]
    assert cfg["address"] == "127.0.0.1:9000"
    assert "root.key" not in _config_text(steppath)
    assert str(tmp_path / "offline") not in _config_text(steppath)
    assert sorted(p.name for p in (steppath / "secrets").iterdir()) == ["intermediate_ca_key"]
    defaults = json.loads(res.defaults.read_text())
    assert defaults["fingerprint"] == certificate_fingerprint(_load(offline_root[1]))

    commands = [json.loads(x)["command"] for x in res.record.read_text().splitlines()]
    assert commands == ["step ca init --intermediate-csr", "step ca init --intermediate-crt"]
    assert ceremony_record.verify_record(res.record).entries == 2

    auth = Authority.open(CAConfig.load(res.ca_config), password=PASSWORD)
    try:
        assert ceremony.same_key(auth.signer.public_key(), cert)
    finally:
        auth.repository.engine.dispose()


def test_init_csr_with_kms_key(steppath: Path, tmp_path: Path,
                               offline_root: tuple[str, Path]) -> None:
    inter_uri = f"file:{tmp_path / 'store-b' / 'inter.key'}"
    csr_res = init_csr(_request(steppath, kms=inter_uri), tmp_path / "i.csr")
    assert csr_res.intermediate_key == str(tmp_path / "store-b" / "inter.key")
    assert not (steppath / "secrets" / "intermediate_ca_key").exists()
    _sign(tmp_path / "i.csr", offline_root, tmp_path / "i.crt")
    res = complete_init(steppath, tmp_path / "i.crt", offline_root[1], PASSWORD)
    assert json.loads(res.ca_config.read_text())["key"] == str(tmp_path / "store-b" / "inter.key")


def test_init_csr_refuses_root(steppath: Path, tmp_path: Path) -> None:
    with pytest.raises(CeremonyError, match="no place on the appliance"):
        init_csr(_request(steppath, root_kms=str(tmp_path / "r.key")), tmp_path / "i.csr")


def test_complete_without_pending(steppath: Path, tmp_path: Path,
                                  offline_root: tuple[str, Path]) -> None:
    with pytest.raises(CeremonyError, match="no pending initialisation"):
        complete_init(steppath, offline_root[1], offline_root[1], PASSWORD)


def test_complete_refuses_wrong_certificates(
    steppath: Path, tmp_path: Path, offline_root: tuple[str, Path]
) -> None:
    init_csr(_request(steppath), tmp_path / "i.csr")
    # A certificate for another key (another appliance's CSR).
    other_steppath = tmp_path / "other"
    init_csr(_request(other_steppath), tmp_path / "other.csr")
    _sign(tmp_path / "other.csr", offline_root, tmp_path / "other.crt")
    with pytest.raises(CeremonyError, match="not for the pending key"):
        complete_init(steppath, tmp_path / "other.crt", offline_root[1], PASSWORD)
    # The right key, signed by a different root.
    rogue_uri = str(tmp_path / "rogue.key")
    rogue = ceremony.create_root(rogue_uri, "Acme", KeySpec(), ROOT_PASSWORD)
    (tmp_path / "rogue.crt").write_bytes(rogue.certificate.public_bytes(Encoding.PEM))
    _sign(tmp_path / "i.csr", (rogue_uri, tmp_path / "rogue.crt"), tmp_path / "i-rogue.crt")
    with pytest.raises(CeremonyError, match="was not signed by the root"):
        complete_init(steppath, tmp_path / "i-rogue.crt", offline_root[1], PASSWORD)
    # The root given as the intermediate.
    with pytest.raises(CeremonyError, match="not for the pending key"):
        complete_init(steppath, offline_root[1], offline_root[1], PASSWORD)
    # Right certificate, wrong password for the pending file key.
    _sign(tmp_path / "i.csr", offline_root, tmp_path / "i.crt")
    with pytest.raises(KeyStoreError, match=WRONG_PASSWORD):
        complete_init(steppath, tmp_path / "i.crt", offline_root[1], b"wrong")
    assert pending_path(steppath).exists()
    assert not (steppath / "config" / "ca.json").exists()
    assert not (steppath / "certs" / "intermediate_ca.crt").exists()
    complete_init(steppath, tmp_path / "i.crt", offline_root[1], PASSWORD)
    assert (steppath / "config" / "ca.json").exists()


# --- PKCS#11 (SoftHSM2): root in token A, intermediate in token B ---------------------------


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


def _token_uri(token: Token, attrs: str, pin: Path) -> str:
    return f"pkcs11:module-path={MODULE};token={token.label};{attrs}?pin-source={pin}"


def _pin(tmp_path: Path, token: Token) -> Path:
    path = tmp_path / f"{token.label}.pin"
    path.write_text(token.pin)
    return path


def _kms_signer_matches(res_config: Path, cert: x509.Certificate) -> None:
    """What the appliance does: open the store from `kms.uri`, the signer from `key`."""
    cfg = json.loads(res_config.read_text())
    with open_keystore(cfg["kms"]["uri"], password=None) as store:
        signer = store.signer(cfg["key"])
        assert ceremony.same_key(signer.public_key(), cert)
        assert isinstance(signer, ec.EllipticCurvePrivateKey)
        signature = signer.sign(b"appliance signs", ec.ECDSA(hashes.SHA256()))
        public = cert.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, b"appliance signs", ec.ECDSA(hashes.SHA256()))


def test_init_with_two_tokens(hsm: SoftHSM, steppath: Path, tmp_path: Path) -> None:
    token_a, token_b = hsm.init_token(), hsm.init_token()
    root_uri = _token_uri(token_a, "id=7330;object=root-key", _pin(tmp_path, token_a))
    inter_uri = _token_uri(token_b, "id=7331;object=intermediate-key", _pin(tmp_path, token_b))
    res = init_pki(_request(steppath, root_kms=root_uri, kms=inter_uri))
    cfg = json.loads(res.ca_config.read_text())
    assert cfg["key"] == "pkcs11:id=7331;object=intermediate-key"
    assert cfg["kms"] == {
        "type": "pkcs11",
        "uri": f"pkcs11:module-path={MODULE};token={token_b.label}"
        f"?pin-source={tmp_path / (token_b.label + '.pin')}",
    }
    assert token_a.label not in _config_text(steppath)
    assert list((steppath / "secrets").iterdir()) == []
    root, inter = _load(res.root_cert), _load(res.intermediate_cert)
    inter.verify_directly_issued_by(root)
    _kms_signer_matches(res.ca_config, inter)
    with open_keystore(root_uri) as store:
        assert ceremony.same_key(store.public_key(root_uri), root)

    # A second init takes both keys from the tokens: nothing is replaced.
    again = init_pki(_request(steppath, root_kms=root_uri, kms=inter_uri))
    assert ceremony.same_key(_load(again.root_cert), root)
    assert ceremony.same_key(_load(again.intermediate_cert), inter)
    details = [json.loads(x)["details"] for x in again.record.read_text().splitlines()]
    assert [(d["root_key"], d["intermediate_key"]) for d in details] == [
        ("created", "created"), ("existing", "existing")
    ]
    assert ceremony_record.verify_record(again.record).entries == 2


def test_offline_path_with_tokens(hsm: SoftHSM, steppath: Path, tmp_path: Path) -> None:
    token_a, token_b = hsm.init_token(), hsm.init_token()
    root_uri = _token_uri(token_a, "id=7330;object=root-key", _pin(tmp_path, token_a))
    made = ceremony.create_root(root_uri, "Acme", KeySpec("EC", "P-384"), None)
    (tmp_path / "root.crt").write_bytes(made.certificate.public_bytes(Encoding.PEM))
    inter_uri = _token_uri(token_b, "id=7331;object=intermediate-key", _pin(tmp_path, token_b))
    init_csr(_request(steppath, kms=inter_uri), tmp_path / "i.csr")
    csr = x509.load_pem_x509_csr((tmp_path / "i.csr").read_bytes())
    cert, _ = ceremony.sign_intermediate(csr, root_uri, made.certificate, None)
    (tmp_path / "i.crt").write_bytes(cert.public_bytes(Encoding.PEM))
    res = complete_init(steppath, tmp_path / "i.crt", tmp_path / "root.crt", None)
    assert json.loads(res.ca_config.read_text())["key"] == "pkcs11:id=7331;object=intermediate-key"
    _kms_signer_matches(res.ca_config, cert)
