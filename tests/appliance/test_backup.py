"""Backups and restores of a CA made by `init_pki`: the manifest and its sums, what is never
copied (device keys, PINs, a PostgreSQL database), the refusals, and a restored CA that signs
and still knows its old serials."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.authority import Authority
from appliance.backup import MANIFEST, BackupError, BackupResult, backup
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki
from appliance.restore import restore
from pki.jose import key_from_jwk
from pki.jwe import decrypt_jwk
from tests.appliance.conftest import PASSWORD, PROV_PASSWORD, edit_config, make_csr
from tests.softhsm import MODULE, SoftHSM, Token, softhsm_session


def _config(ca_dir: Path) -> CAConfig:
    return CAConfig.load(ca_dir / "config" / "ca.json")


def _token(authority: Authority, sub: str) -> str:
    """A sign token of ca.json's JWK provisioner, read from the file as a client would."""
    prov = json.loads(authority.config.path.read_text())["authority"]["provisioners"][0]
    now = int(time.time())
    claims = {
        "iss": prov["name"], "aud": "https://ca.test:9000/1.0/sign", "sub": sub, "sans": [sub],
        "iat": now, "nbf": now, "exp": now + 300, "jti": secrets.token_hex(16),
    }
    key = key_from_jwk(decrypt_jwk(prov["encryptedKey"], PROV_PASSWORD))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": prov["key"]["kid"]})


def _issue(authority: Authority, count: int) -> list[int]:
    return [
        authority.sign(make_csr(f"n{i}.test", [f"n{i}.test"]), _token(authority, f"n{i}.test"))
        .certificate.serial_number
        for i in range(count)
    ]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tree(root: Path) -> Iterator[Path]:
    yield from sorted(root.rglob("*"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _at(path: Path, text: str) -> str:
    """A `match=` pattern for a one-line error that starts with `path`."""
    return f"^{re.escape(str(path))}{re.escape(text)}"


def _entry(res: BackupResult, path: str) -> dict[str, Any]:
    return next(e for e in res.manifest["files"] if e["path"] == path)


# --- backup ---------------------------------------------------------------------------------


def test_backup_holds_everything_with_its_sum(
    authority: Authority, ca_dir: Path, tmp_path: Path
) -> None:
    serials = _issue(authority, 3)
    dest = tmp_path / "backups" / "one"
    res = backup(authority.config, dest)

    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest == res.manifest and manifest["format"] == "stepstone-backup/1"
    assert manifest["steppath"] == str(ca_dir) and manifest["config"] == "config/ca.json"
    assert res.manifest_sha256 == _sha(dest / MANIFEST)
    paths = {e["path"] for e in manifest["files"]}
    assert paths == {
        "config/ca.json", "config/defaults.json", "certs/root_ca.crt",
        "certs/intermediate_ca.crt", "secrets/intermediate_ca_key", "secrets/root_ca_key",
        "ceremony/record.jsonl", "db/stepstone.db",
    }
    for entry in manifest["files"]:
        copy = dest / entry["path"]
        assert _sha(copy) == entry["sha256"] and copy.stat().st_size == entry["size"]
        if entry["kind"] != "database":
            assert copy.read_bytes() == (ca_dir / entry["path"]).read_bytes()
    assert _mode(dest) == 0o700
    for path in _tree(dest):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path

    assert manifest["keys"] == [
        {
            "role": role,
            "key": str(ca_dir / "secrets" / name),
            "store": "file",
            "path": f"secrets/{name}",
            "source": str(ca_dir / "secrets" / name),
            "encrypted": True,
            "copied": True,
        }
        for role, name in (("intermediate", "intermediate_ca_key"), ("root", "root_ca_key"))
    ]

    db = manifest["database"]
    assert db == {"type": "sqlite", "included": True, "path": "db/stepstone.db",
                  "certificates": 3, "revoked": 0}
    assert not list(dest.glob("db/stepstone.db-*"))  # one self-contained file, no WAL
    with sqlite3.connect(dest / "db" / "stepstone.db") as conn:
        stored = {int(s) for (s,) in conn.execute("SELECT serial FROM x509_certs")}
    assert set(serials) <= stored
    record = manifest["ceremony_record"]
    assert record["path"] == "ceremony/record.jsonl" and record["entries"] == 1


def test_backup_of_a_stopped_ca_leaves_its_database_folder_as_it_was(
    authority: Authority, ca_dir: Path, tmp_path: Path
) -> None:
    _issue(authority, 1)
    authority.repository.engine.dispose()  # the CA stops: SQLite folds its WAL back in
    before = sorted(p.name for p in (ca_dir / "db").iterdir())
    assert before == ["stepstone.db"]
    res = backup(_config(ca_dir), tmp_path / "b")
    assert res.manifest["database"]["certificates"] == 1
    assert sorted(p.name for p in (ca_dir / "db").iterdir()) == before


def test_backup_leaves_pins_out_and_takes_files_from_outside(
    ca_dir: Path, tmp_path: Path
) -> None:
    (ca_dir / "secrets" / "hsm.pin").write_text("1234\n")
    outside = tmp_path / "elsewhere" / "root.crt"
    outside.parent.mkdir()
    shutil.copy(ca_dir / "certs" / "root_ca.crt", outside)
    edit_config(ca_dir, lambda raw: raw.update(root=[str(outside)]))
    res = backup(_config(ca_dir), tmp_path / "b")

    assert res.manifest["not_copied"] == [
        {"source": str(ca_dir / "secrets" / "hsm.pin"), "reason": "not a key file"}
    ]
    assert not (tmp_path / "b" / "secrets" / "hsm.pin").exists()
    external = "external" + str(outside)
    assert _entry(res, external)["source"] == str(outside)
    assert (tmp_path / "b" / external).read_bytes() == outside.read_bytes()
    assert res.manifest["database"]["note"].startswith("no database file yet")


def test_the_ocsp_signers_key_is_named_with_its_role(ca_dir: Path, tmp_path: Path) -> None:
    shutil.copy(ca_dir / "secrets" / "intermediate_ca_key", ca_dir / "secrets" / "ocsp_key")
    shutil.copy(ca_dir / "certs" / "intermediate_ca.crt", ca_dir / "certs" / "ocsp.crt")
    edit_config(ca_dir, lambda raw: raw.update(
        crl={"enabled": True, "ocspCrt": "certs/ocsp.crt", "ocspKey": "secrets/ocsp_key"}
    ))
    res = backup(_config(ca_dir), tmp_path / "b")
    roles = {k["role"]: k["path"] for k in res.manifest["keys"]}
    assert roles == {
        "intermediate": "secrets/intermediate_ca_key",
        "ocsp": "secrets/ocsp_key",
        "root": "secrets/root_ca_key",
    }
    assert _entry(res, "certs/ocsp.crt")["kind"] == "cert"


def test_postgresql_database_is_recorded_as_not_included(ca_dir: Path, tmp_path: Path) -> None:
    dsn = "postgresql://ca:s3cret@127.0.0.1:5/ca"
    edit_config(ca_dir, lambda raw: raw.update(db={"type": "postgresql", "dataSource": dsn}))
    res = backup(_config(ca_dir), tmp_path / "b")
    assert res.manifest["database"] == {
        "type": "postgresql",
        "included": False,
        "note": "not included: back it up with its own tools (pg_dump for PostgreSQL)",
    }
    assert "s3cret" not in (tmp_path / "b" / MANIFEST).read_text()
    assert not [e for e in res.manifest["files"] if e["kind"] == "database"]


def test_refusals_leave_nothing_behind(ca_dir: Path, tmp_path: Path) -> None:
    config = _config(ca_dir)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(BackupError, match=_at(busy, " is not empty: use '--force'")):
        backup(config, busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    backup(config, busy, force=True)
    assert (busy / MANIFEST).exists() and (busy / "keep.txt").read_text() == "mine"

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(BackupError, match="exists and is not a directory"):
        backup(config, a_file)

    (ca_dir / "certs" / "intermediate_ca.crt").unlink()
    with pytest.raises(BackupError, match=r"intermediate_ca\.crt: no such file"):
        backup(config, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_backup_inside_steppath_does_not_copy_itself(ca_dir: Path) -> None:
    first = backup(_config(ca_dir), ca_dir / "config" / "backups" / "1")
    assert not [e for e in first.manifest["files"] if "backups" in e["path"]]


# --- keys in a SoftHSM2 token -----------------------------------------------------------------


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


def _token_uri(token: Token, attrs: str, pin: Path) -> str:
    pin.write_text(token.pin)
    return f"pkcs11:module-path={MODULE};token={token.label};{attrs}?pin-source={pin}"


def test_hsm_keys_are_named_never_copied(
    hsm: SoftHSM, steppath: Path, tmp_path: Path
) -> None:
    root_token, ca_token = hsm.init_token(), hsm.init_token()
    init_pki(
        InitRequest(
            steppath, "HSM", ["ca.test"], "127.0.0.1:9000", "admin", PASSWORD, PROV_PASSWORD,
            root_kms=_token_uri(root_token, "id=7330;object=root", tmp_path / "a.pin"),
            kms=_token_uri(ca_token, "id=7331;object=ca", tmp_path / "b.pin"),
        )
    )
    dest = tmp_path / "b"
    res = backup(_config(steppath), dest)
    assert res.manifest["keys"] == [
        {
            "role": "intermediate",
            "key": "pkcs11:id=7331;object=ca",
            "store": "pkcs11",
            "store_uri": f"pkcs11:module-path={MODULE};token={ca_token.label}"
            f"?pin-source={tmp_path / 'b.pin'}",
            "copied": False,
        }
    ]
    assert not [e for e in res.manifest["files"] if e["kind"] == "key"]
    for path in _tree(dest):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path
            assert ca_token.pin.encode() + b"\n" not in path.read_bytes()
    assert not (dest / "external" / str(tmp_path / "b.pin").lstrip("/")).exists()


# --- restore --------------------------------------------------------------------------------


def test_restore_elsewhere_serves_and_knows_the_old_serials(
    authority: Authority, ca_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _issue(authority, 2)
    src = tmp_path / "b"
    backup(authority.config, src)
    authority.repository.engine.dispose()
    shutil.rmtree(ca_dir)

    target = tmp_path / "new" / "step"
    res = restore(src, target)
    assert res.config == target / "config" / "ca.json"
    assert {p.relative_to(target).as_posix() for p in res.moved} == {
        "config/ca.json", "config/defaults.json"
    }
    raw = json.loads(res.config.read_text())
    assert raw["crt"] == str(target / "certs" / "intermediate_ca.crt")
    assert raw["db"]["dataSource"] == str(target / "db")
    assert str(ca_dir) not in res.config.read_text()
    assert res.config.read_text().startswith("{\n\t")  # step's tab indentation kept
    for path in _tree(target):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path

    monkeypatch.setenv("STEPPATH", str(target))
    restored = Authority.open(CAConfig.load(res.config), password=PASSWORD)
    try:
        assert all(restored.repository.is_issued(s) for s in old)
        new = _issue(restored, 1)
        assert new[0] not in old
    finally:
        restored.repository.engine.dispose()


def test_restore_puts_outside_files_back_at_their_path(ca_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "etc" / "root.crt"
    outside.parent.mkdir()
    shutil.copy(ca_dir / "certs" / "root_ca.crt", outside)
    edit_config(ca_dir, lambda raw: raw.update(root=str(outside)))
    backup(_config(ca_dir), tmp_path / "b")
    with pytest.raises(BackupError, match=_at(outside, " exists: use '--force'")):
        restore(tmp_path / "b", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    outside.unlink()
    res = restore(tmp_path / "b", tmp_path / "new")
    assert outside in res.files and _mode(outside) == 0o600
    assert outside.read_bytes() == (ca_dir / "certs" / "root_ca.crt").read_bytes()


@pytest.fixture
def made(authority: Authority, tmp_path: Path) -> Path:
    """A backup with a database in it."""
    src = tmp_path / "b"
    backup(authority.config, src)
    return src


def test_a_tampered_backup_is_refused_naming_the_file(made: Path, tmp_path: Path) -> None:
    key = made / "secrets" / "intermediate_ca_key"
    data = bytearray(key.read_bytes())
    data[100] ^= 0x01
    key.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=_at(key, ": SHA-256 differs from the manifest")):
        restore(made, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_truncated_or_incomplete_backup_is_refused(made: Path, tmp_path: Path) -> None:
    crt = made / "certs" / "root_ca.crt"
    crt.write_bytes(crt.read_bytes()[:100])
    with pytest.raises(BackupError, match=_at(crt, ": 100 bytes where the manifest says")):
        restore(made, tmp_path / "new")
    crt.unlink()
    with pytest.raises(BackupError, match=_at(crt, ": missing from the backup")):
        restore(made, tmp_path / "new")
    (made / MANIFEST).unlink()
    with pytest.raises(BackupError, match=r"not a backup \(no manifest\.json\)"):
        restore(made, tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "config/../../x", "external"])
def test_a_manifest_cannot_write_outside_its_places(
    made: Path, tmp_path: Path, path: str
) -> None:
    manifest = json.loads((made / MANIFEST).read_text())
    manifest["files"][0]["path"] = path
    (made / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="unsafe file path"):
        restore(made, tmp_path / "new")


def test_restore_refuses_a_busy_target_unless_forced(made: Path, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "old").write_text("x")
    with pytest.raises(BackupError, match=_at(target, " is not empty: restore onto an empty")):
        restore(made, target)
    assert sorted(p.name for p in target.iterdir()) == ["old"]
    db = target / "db" / "stepstone.db"
    db.parent.mkdir()
    Path(f"{db}-wal").write_text("stale")
    restore(made, target, force=True)
    assert (target / "config" / "ca.json").exists() and not Path(f"{db}-wal").exists()
    assert _mode(target) == 0o700 and os.access(target / "old", os.R_OK)
