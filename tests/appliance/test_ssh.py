"""The SSH CA's appliance parts: `init --ssh` (files and PKCS#11), the `ssh` block and SSH
claims in the typed config, the SSH store's single transaction, the migration 0005, and a
certificate signed by an HSM-held key through SSHCertificateBuilder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
)
from sqlalchemy import inspect, select

from appliance.assembly import AuthorityError, assemble
from appliance.ceremony_record import CeremonyError
from appliance.config import CAConfig, ConfigError
from appliance.db.audit import AuditEvent
from appliance.db.engine import migrate, open_engine
from appliance.db.issuance import UsedToken
from appliance.db.models import used_tokens
from appliance.pki import InitRequest, init_pki
from appliance.ssh_keys import SSHKeys, ssh_public_text
from appliance.ssh_store import SSHStore
from pki.errors import CAError
from provisioners.claims import Claims, ClaimsError
from provisioners.schema import ClaimsSchema
from tests.postgres import postgres_server
from tests.softhsm import MODULE, SoftHSM, softhsm_session

PASSWORD, PROV_PASSWORD = b"ca-pw", b"prov-pw"


def _request(base: Path, **kw: object) -> InitRequest:
    return InitRequest(
        base,
        "SSH",
        ["ca.test"],
        "127.0.0.1:9",
        "admin",
        PASSWORD,
        PROV_PASSWORD,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def steppath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(base))
    return base


# --- init --ssh -----------------------------------------------------------------------------


def test_init_ssh_files_and_config(steppath: Path) -> None:
    res = init_pki(_request(steppath, ssh=True))
    cfg = json.loads(res.ca_config.read_text())
    assert cfg["ssh"] == {
        "hostKey": str(steppath / "secrets" / "ssh_host_ca_key"),
        "userKey": str(steppath / "secrets" / "ssh_user_ca_key"),
    }
    assert [p["type"] for p in cfg["authority"]["provisioners"]] == ["JWK", "SSHPOP"]
    assert all(p["claims"]["enableSSHCA"] for p in cfg["authority"]["provisioners"])
    config = CAConfig.load(res.ca_config)
    keys = SSHKeys.load(config, PASSWORD)
    for kind, signer in (("user", keys.user), ("host", keys.host)):
        assert signer is not None
        pub = (steppath / "certs" / f"ssh_{kind}_ca_key.pub").read_text()
        assert pub == ssh_public_text(signer.public_key()) + "\n"
    assert (
        (steppath / "secrets" / "ssh_user_ca_key")
        .read_bytes()
        .startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    )
    assert keys.user is not None and keys.host is not None
    assert ssh_public_text(keys.user.public_key()) != ssh_public_text(keys.host.public_key())


def test_init_without_ssh_has_no_ssh_block(steppath: Path) -> None:
    res = init_pki(_request(steppath))
    cfg = json.loads(res.ca_config.read_text())
    assert "ssh" not in cfg
    assert not (steppath / "secrets" / "ssh_user_ca_key").exists()
    assert not SSHKeys.load(CAConfig.load(res.ca_config), PASSWORD).enabled


def test_wrong_password_for_ssh_key(steppath: Path) -> None:
    res = init_pki(_request(steppath, ssh=True))
    from keystores import KeyStoreError

    with pytest.raises(KeyStoreError):
        SSHKeys.load(CAConfig.load(res.ca_config), b"wrong")


def test_a_ssh_key_that_cannot_be_opened_stops_the_ca(steppath: Path) -> None:
    """At start, not at the first SSH request: the CA refuses to assemble, naming the key."""
    res = init_pki(_request(steppath, ssh=True))
    (steppath / "secrets" / "ssh_host_ca_key").write_text("not a key\n")
    with pytest.raises(AuthorityError, match=r"^ssh keys: "):
        assemble(CAConfig.load(res.ca_config), PASSWORD, migrate_schema=True)


def test_ssh_with_unsupported_kms_is_one_line(steppath: Path) -> None:
    with pytest.raises(CeremonyError, match="'--ssh' with '--kms file:' is not supported"):
        init_pki(_request(steppath, ssh=True, kms=f"file:{steppath}/elsewhere/key"))
    assert not (steppath / "config" / "ca.json").exists()


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


def test_init_ssh_with_pkcs11(hsm: SoftHSM, steppath: Path, tmp_path: Path) -> None:
    token = hsm.init_token()
    pin = tmp_path / "pin"
    pin.write_text(token.pin)
    uri = (
        f"pkcs11:module-path={MODULE};token={token.label};id=7331;object=intermediate-key"
        f"?pin-source={pin}"
    )
    res = init_pki(_request(steppath, kms=uri, ssh=True))
    cfg = json.loads(res.ca_config.read_text())
    assert cfg["ssh"] == {
        "hostKey": "pkcs11:id=73736802;object=ssh-host-ca-key",
        "userKey": "pkcs11:id=73736801;object=ssh-user-ca-key",
    }
    assert sorted(p.name for p in (steppath / "secrets").iterdir()) == ["root_ca_key"]
    keys = SSHKeys.load(CAConfig.load(res.ca_config), PASSWORD)
    assert keys.user is not None and keys.user.hardware
    public = keys.user.public_key()
    assert (steppath / "certs" / "ssh_user_ca_key.pub").read_text().strip() == (
        ssh_public_text(public)
    )
    # The HSM key signs an SSH certificate through cryptography's builder.
    subject = ec.generate_private_key(ec.SECP256R1()).public_key()
    now = int(datetime.now(UTC).timestamp())
    cert = (
        SSHCertificateBuilder()
        .public_key(subject)
        .serial(7)
        .type(SSHCertificateType.USER)
        .key_id(b"alice")
        .valid_principals([b"alice"])
        .valid_after(now)
        .valid_before(now + 600)
        .sign(keys.signer("user"))
    )
    cert.verify_cert_signature()
    assert ssh_public_text(cert.signature_key()) == ssh_public_text(public)


# --- config and claims -----------------------------------------------------------------------


def test_ssh_block_types_are_checked(steppath: Path) -> None:
    res = init_pki(_request(steppath, ssh=True))
    raw = json.loads(res.ca_config.read_text())
    raw["ssh"]["hostKey"] = 7
    raw["ssh"]["keys"] = [{"type": "user"}]
    with pytest.raises(ConfigError) as info:
        CAConfig.from_raw(raw, res.ca_config)
    assert "ssh.hostKey" in str(info.value) and "ssh.keys[0].key" in str(info.value)


def test_ssh_claims_merge_and_bounds() -> None:
    claims = Claims().merged(
        ClaimsSchema.model_validate(
            {
                "enableSSHCA": True,
                "maxUserSSHCertDuration": "48h",
                "defaultHostSSHCertDuration": "1h",
            }
        )
    )
    assert claims.enable_ssh_ca
    assert claims.max_user_ssh == timedelta(hours=48)
    assert claims.default_user_ssh == timedelta(hours=16)
    assert claims.default_host_ssh == timedelta(hours=1)
    with pytest.raises(ClaimsError, match="minUserSSHCertDuration <= defaultUserSSHCertDuration"):
        Claims().merged(ClaimsSchema.model_validate({"defaultUserSSHCertDuration": "48h"}))


# --- the store and the migration ----------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SSHStore]:
    """The store on SQLite and on a real PostgreSQL (a fresh schema each time)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = open_engine(url)
    if request.param == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    migrate(engine)
    yield SSHStore(engine)
    engine.dispose()


def _cert(kind: SSHCertificateType, principals: list[bytes], life: int = 600) -> SSHCertificate:
    ca = ec.generate_private_key(ec.SECP256R1())
    now = int(datetime.now(UTC).timestamp())
    return (
        SSHCertificateBuilder()
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial(int.from_bytes(__import__("os").urandom(8), "big") or 1)
        .type(kind)
        .key_id(principals[0])
        .valid_principals(principals)
        .valid_after(now - 60)
        .valid_before(now + life)
        .sign(ca)
    )


def _token(jti: str) -> UsedToken:
    return UsedToken(jti, "admin", datetime.now(UTC) + timedelta(minutes=5))


def test_failed_signature_rolls_the_token_back(store: SSHStore) -> None:
    def fail() -> SSHCertificate:
        raise CAError.__new__(CAError)  # any failure while signing

    with pytest.raises(CAError):
        store.issue(_token("t1"), "admin", fail, AuditEvent("ssh.sign", "admin:x"))
    with store.engine.connect() as conn:
        assert conn.execute(select(used_tokens)).all() == []
    cert = _cert(SSHCertificateType.HOST, [b"Web.Example"])
    store.issue(_token("t1"), "admin", lambda: cert, AuditEvent("ssh.sign", "admin:x"))
    with pytest.raises(CAError) as info:
        store.issue(_token("t1"), "admin", lambda: cert, AuditEvent("ssh.sign", "admin:x"))
    assert info.value.kind.name == "UNAUTHORIZED"
    assert store.is_host("web.example")
    assert not store.is_host("other.example")


def test_hosts_lists_unexpired_host_principals(store: SSHStore) -> None:
    event = AuditEvent("ssh.sign", "admin:x")
    for cert in (
        _cert(SSHCertificateType.HOST, [b"b.example", b"a.example"]),
        _cert(SSHCertificateType.HOST, [b"old.example"], life=-30),
        _cert(SSHCertificateType.USER, [b"alice"]),
    ):
        store.issue(None, "admin", lambda c=cert: c, event)  # type: ignore[misc]
    assert store.host_principals() == ["a.example", "b.example"]
    assert store.is_host("old.example")  # step-ca's IsSSHHost ignores expiry


def test_migration_0005_up_and_down(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    try:
        assert migrate(engine, "0004")[1] == "0004"
        assert "ssh_certs" not in inspect(engine).get_table_names()
        assert migrate(engine, "0005") == ("0004", "0005")
        assert {"ssh_certs", "ssh_principals"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
