"""Who and what the audit log records (appliance/audit.py, and the authority's events): a
sign, renew, rekey and revoke with their actors and request ids, and a reload's provisioner
diff, all in one chain."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from appliance.audit import (
    local_actor,
    provisioner_changes,
    record_ceremony,
    record_init,
    record_reload,
)
from appliance.authority import Authority, RevokeRequest
from appliance.config import CAConfig
from appliance.db.audit import entries, verify
from appliance.db.engine import database_url, open_engine
from appliance.db.schema import upgrade
from appliance.logs import REQUEST_ID
from appliance.pki import InitRequest, init_pki
from pki.jose import public_jwk
from tests.appliance.conftest import TokenMaker, edit_config, make_csr


def _config(ca_dir: Path) -> CAConfig:
    return CAConfig.load(ca_dir / "config" / "ca.json")


def test_authority_records_actor_kind_and_request_id(
    authority: Authority, token: TokenMaker
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    rid = REQUEST_ID.set("req-sign")
    try:
        cert = authority.sign(make_csr("foo.test", [], key), token("foo.test")).certificate
    finally:
        REQUEST_ID.reset(rid)
    renewed = authority.renew(cert).certificate
    rekeyed = authority.rekey(renewed, make_csr("x", [], ec.generate_private_key(ec.SECP256R1())))
    ott = token(str(rekeyed.certificate.serial_number), aud="https://ca.test/1.0/revoke", sans=None)
    authority.revoke(RevokeRequest(rekeyed.certificate.serial_number, 1, "lost", ott), None)
    authority.revoke(RevokeRequest(cert.serial_number, 4, "", None), cert)

    engine = authority.repository.engine
    got = [(e.kind, e.actor, e.serial) for e in entries(engine)]
    assert got == [
        ("certificate.sign", "admin:foo.test", str(cert.serial_number)),
        ("certificate.renew", "admin:CN=foo.test", str(renewed.serial_number)),
        ("certificate.rekey", "admin:CN=foo.test", str(rekeyed.certificate.serial_number)),
        (
            "certificate.revoke",
            f"admin:{rekeyed.certificate.serial_number}",
            str(rekeyed.certificate.serial_number),
        ),
        ("certificate.revoke", "admin:CN=foo.test", str(cert.serial_number)),
    ]
    chain = list(entries(engine))
    assert chain[0].request_id == "req-sign" and chain[1].request_id == ""
    assert chain[1].to_json()["details"] == {
        "by": "mTLS",
        "from_serial": str(cert.serial_number),
        "provisioner": "admin",
    }
    revoked = chain[3].to_json()["details"]
    assert (revoked["reason"], revoked["reason_code"], revoked["mtls"]) == ("lost", 1, False)
    assert chain[4].to_json()["details"]["mtls"] is True
    assert verify(engine).problem is None


def _jwk(name: str) -> dict[str, Any]:
    return {"type": "JWK", "name": name, "key": public_jwk(ec.generate_private_key(ec.SECP256R1()))}


def test_reload_records_each_provisioner_change(authority: Authority, ca_dir: Path) -> None:
    old = authority.config

    def change(raw: dict[str, Any]) -> None:
        provs = raw["authority"]["provisioners"]
        provs[0]["claims"] = {"maxTLSCertDuration": "48h"}  # admin: updated
        provs.append(_jwk("second"))

    edit_config(ca_dir, change)
    mid = _config(ca_dir)
    edit_config(ca_dir, lambda raw: raw["authority"]["provisioners"].pop(0))  # admin removed
    new = _config(ca_dir)

    assert [(e.kind, e.subject) for e in provisioner_changes(old, old, "me")] == []
    added = provisioner_changes(old, mid, "me")
    assert [(e.kind, e.subject) for e in added] == [
        ("provisioner.update", "admin"),
        ("provisioner.add", "second"),
    ]
    assert added[0].details["fields"] == ["claims"]
    assert added[0].details["sha256_before"] != added[0].details["sha256_after"]
    assert "key" not in json.dumps(dict(added[1].details)).replace('"sha256_after"', "")

    engine = authority.repository.engine
    record_reload(engine, old, mid)
    record_reload(engine, mid, new)
    chain = list(entries(engine))
    assert [(e.kind, e.subject) for e in chain] == [
        ("config.reload", ""),
        ("provisioner.update", "admin"),
        ("provisioner.add", "second"),
        ("config.reload", ""),
        ("provisioner.remove", "admin"),
    ]
    assert all(e.actor == local_actor() for e in chain)
    reload = chain[3].to_json()["details"]
    assert reload["config"] == str(ca_dir / "config" / "ca.json")
    assert reload["provisioners_changed"] == 1
    assert len(reload["sha256"]) == 64
    assert verify(engine).problem is None


def test_local_actor_is_the_user_of_the_uid() -> None:
    assert local_actor() == f"local:{pwd.getpwuid(os.getuid()).pw_name}"


def test_ceremony_step_is_recorded_in_the_cas_database(authority: Authority, ca_dir: Path) -> None:
    entry = record_ceremony(_config(ca_dir), "init", {"root_sha256": "ab" * 32})
    (stored,) = list(entries(authority.repository.engine, kinds=["ceremony"]))
    assert stored.hash == entry.hash and stored.kind == "ceremony.init"
    assert stored.actor == local_actor()


def test_init_is_recorded_with_both_fingerprints_and_the_ceremony_head(steppath: Path) -> None:
    res = init_pki(
        InitRequest(steppath, "T", ["ca.test"], "127.0.0.1:9000", "admin", b"pw", b"ppw")
    )
    config = _config(steppath)
    upgrade(config)  # as `step ca init` does for the SQLite default
    entry = record_init(res)
    details = entry.to_json()["details"]
    assert details["root_sha256"] == res.root_fingerprint
    assert len(details["intermediate_sha256"]) == 64
    assert len(details["ceremony_record_head"]) == 64
    engine = open_engine(database_url(None, steppath))
    try:
        assert [e.kind for e in entries(engine)] == ["ceremony.init"]
        assert verify(engine).problem is None
    finally:
        engine.dispose()
