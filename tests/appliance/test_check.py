"""appliance.check: a good ca.json gives a summary; each kind of problem is found, all at once;
nothing is written (no database created, none migrated)."""

from __future__ import annotations

import base64
import os
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from appliance.check import CheckReport, check_config
from appliance.config import CAConfig
from appliance.db.schema import upgrade
from appliance.db.state import SchemaState
from appliance.pki import InitRequest, init_pki
from tests.appliance.conftest import PASSWORD, PROV_PASSWORD, edit_config, now_utc
from tests.postgres import free_port


def _ca_json(ca_dir: Path) -> Path:
    return ca_dir / "config" / "ca.json"


def _check(ca_dir: Path, password: bytes | None = PASSWORD, **kwargs: Any) -> CheckReport:
    return check_config(_ca_json(ca_dir), password, environ={}, **kwargs)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root` with its size and mtime."""
    out = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        out[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return out


@pytest.fixture
def ca_dir(ca_dir: Path) -> Path:
    """conftest's CA, with the schema `step ca init` makes."""
    upgrade(CAConfig.load(_ca_json(ca_dir)))
    return ca_dir


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """A second CA, made with the same password: its root and key belong to no one here."""
    base = tmp_path / "other"
    init_pki(InitRequest(base, "Other", ["o.test"], "127.0.0.1:9001", "o", PASSWORD, PROV_PASSWORD))
    return base


def test_good_config_gives_the_summary_and_writes_nothing(ca_dir: Path) -> None:
    before = _snapshot(ca_dir)
    report = _check(ca_dir)
    assert report.problems == [] and report.ok
    assert report.warnings == []
    assert report.name == "Test Intermediate CA"
    assert [c.subject for c in report.roots] == ["Test Root CA"]
    assert [c.subject for c in report.intermediates] == ["Test Intermediate CA"]
    intermediate = x509.load_pem_x509_certificate(
        (ca_dir / "certs" / "intermediate_ca.crt").read_bytes()
    )
    assert report.intermediates[0].not_after == intermediate.not_valid_after_utc
    assert report.key_store == "file"
    assert report.key == str(ca_dir / "secrets" / "intermediate_ca_key")
    assert report.secrets == ["password from --password-file"]
    assert [(p.name, p.type) for p in report.provisioners] == [("admin", "JWK")]
    assert report.database is not None
    assert report.database.state is SchemaState.CURRENT
    assert report.database.driver == "sqlite+pysqlite"
    assert _snapshot(ca_dir) == before  # nothing touched: no -wal, no -shm
    as_json = report.to_json()
    assert as_json["ok"] is True and as_json["database"]["state"] == "current"
    assert as_json["keyStore"]["type"] == "file"


def test_database_schema_new_behind_and_unknown(ca_dir: Path) -> None:
    """The server starts on this build's head only: anything else is a problem, naming the
    command to run; nothing is migrated or created."""
    db = ca_dir / "db" / "stepstone.db"
    current = _check(ca_dir).database
    assert current is not None and current.state is SchemaState.CURRENT
    head = current.head
    upgrade_line = f"run 'step-ca db upgrade {_ca_json(ca_dir)}'"

    def set_revision(revision: str) -> None:
        con = sqlite3.connect(db)
        with con:
            con.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        con.close()

    set_revision("0001")
    before = _snapshot(ca_dir)
    report = _check(ca_dir)
    assert report.database is not None and report.database.state is SchemaState.BEHIND
    assert report.problems == [
        f"database: the database schema is at 0001 but this step-ca needs {head}: "
        + upgrade_line
    ]
    assert _snapshot(ca_dir) == before  # not migrated, not touched: no -wal, no -shm

    set_revision("9999")  # made by a newer Stepstone
    assert _check(ca_dir).problems == [
        f"database: the database schema is at 9999, newer than this step-ca knows (its newest "
        f"is {head}): a newer Stepstone upgraded it; run that version"
    ]

    db.unlink()
    report = _check(ca_dir)
    assert report.database is not None and report.database.state is SchemaState.NEW
    assert report.problems == [
        f"database: the database {db} has no schema yet (this step-ca needs {head}): "
        + upgrade_line
    ]
    assert not db.exists()


def test_unreachable_database(ca_dir: Path) -> None:
    url = f"postgresql://ca:secret@127.0.0.1:{free_port()}/ca"
    edit_config(ca_dir, lambda raw: raw["db"].update(type="postgresql", dataSource=url))
    report = _check(ca_dir)
    (problem,) = report.problems
    assert problem.startswith(
        f"database: cannot read postgresql+psycopg://ca:***@127.0.0.1:{url.split(':')[3]}"
    )
    assert "secret" not in problem


def test_schema_problems_are_listed_one_by_one(ca_dir: Path) -> None:
    def break_it(raw: dict[str, Any]) -> None:
        raw["tls"] = {"minVersion": "abc"}
        raw["db"]["dataSource"] = 5

    edit_config(ca_dir, break_it)
    report = _check(ca_dir)
    path = _ca_json(ca_dir)
    assert report.problems == [
        f"{path}: db.dataSource: expected a string, got 5",
        f'{path}: tls.minVersion: expected a TLS version such as 1.2 or 1.3, got "abc"',
    ]
    assert not report.ok


def test_unreadable_config(tmp_path: Path) -> None:
    missing = tmp_path / "ca.json"
    assert check_config(missing, environ={}).problems == [
        f"open {missing}: no such file or directory"
    ]
    missing.write_text("{ not json")
    (problem,) = check_config(missing, environ={}).problems
    assert problem.startswith(f"error parsing {missing}: ")


def test_missing_files(ca_dir: Path) -> None:
    (ca_dir / "certs" / "root_ca.crt").unlink()
    (ca_dir / "certs" / "intermediate_ca.crt").write_text("not a certificate")
    report = _check(ca_dir)
    assert report.problems == [
        f"root: error reading {ca_dir / 'certs' / 'root_ca.crt'}: No such file or directory",
        f"intermediate: error parsing {ca_dir / 'certs' / 'intermediate_ca.crt'}: "
        "not a certificate",
    ]


def test_wrong_password_and_missing_password(ca_dir: Path) -> None:
    key = ca_dir / "secrets" / "intermediate_ca_key"
    (problem,) = _check(ca_dir, b"wrong").problems
    assert problem.startswith(f"key {key}: ")
    assert "password" in problem
    (problem,) = _check(ca_dir, None).problems
    assert problem.startswith(f"key {key}: ") and "no password" in problem


def test_key_not_matching_the_certificate(ca_dir: Path, other_ca: Path) -> None:
    edit_config(
        ca_dir, lambda raw: raw.update(key=str(other_ca / "secrets" / "intermediate_ca_key"))
    )
    (problem,) = _check(ca_dir).problems
    assert problem.endswith("does not match the intermediate certificate")


def test_intermediate_not_issued_by_the_root(ca_dir: Path, other_ca: Path) -> None:
    edit_config(ca_dir, lambda raw: raw.update(root=str(other_ca / "certs" / "root_ca.crt")))
    (problem,) = _check(ca_dir).problems
    assert problem == (
        f"intermediate 'Test Intermediate CA' ({ca_dir / 'certs' / 'intermediate_ca.crt'}) "
        f"is not issued by any root ({other_ca / 'certs' / 'root_ca.crt'})"
    )


def test_dates(ca_dir: Path) -> None:
    inter = x509.load_pem_x509_certificate((ca_dir / "certs" / "intermediate_ca.crt").read_bytes())
    after = inter.not_valid_after_utc
    crt = ca_dir / "certs" / "intermediate_ca.crt"
    root = ca_dir / "certs" / "root_ca.crt"
    report = _check(ca_dir, now=after + timedelta(days=1))
    stamp = f"{after:%Y-%m-%d %H:%M:%S} UTC"
    assert f"root 'Test Root CA' ({root}) expired on {stamp}" in report.problems
    assert f"intermediate 'Test Intermediate CA' ({crt}) expired on {stamp}" in report.problems
    report = _check(ca_dir, now=inter.not_valid_before_utc - timedelta(days=1))
    assert any("is not valid before" in p for p in report.problems)
    report = _check(ca_dir, now=after - timedelta(days=10))  # soon: still good, but said
    assert report.ok
    assert f"intermediate 'Test Intermediate CA' ({crt}) expires on {stamp}" in report.warnings
    assert now_utc() < after


def test_provisioner_problems(ca_dir: Path, tmp_path: Path) -> None:
    def add(raw: dict[str, Any]) -> None:
        provs = raw["authority"]["provisioners"]
        provs.append({"type": "AWS", "name": "aws", "iidRoots": str(tmp_path / "none.pem")})
        provs.append({"type": "X5C", "name": "x5c", "roots": base64.b64encode(b"").decode()})
        provs.append(dict(provs[0]))  # the same JWK again: a name clash
        provs.append({"type": "SCEP", "name": "scep"})  # skipped: not built here

    edit_config(ca_dir, add)
    report = _check(ca_dir)
    assert report.problems == [
        "provisioner 'x5c': root(s) cannot be empty",
        "provisioner name 'admin' is not unique",
        f"provisioner 'aws' failed to initialise: error reading {tmp_path / 'none.pem'}: "
        "No such file or directory",
    ]
    assert report.warnings == [
        "provisioner 'scep': type 'SCEP' is not supported by this build and is skipped"
    ]
    assert [p.name for p in report.provisioners] == ["admin", "aws", "admin"]


def test_ocsp_signer_problem(ca_dir: Path) -> None:
    def delegate(raw: dict[str, Any]) -> None:
        raw["crl"] = {
            "enabled": True,
            "ocspCrt": str(ca_dir / "certs" / "root_ca.crt"),
            "ocspKey": str(ca_dir / "secrets" / "root_ca_key"),
        }

    edit_config(ca_dir, delegate)
    (problem,) = _check(ca_dir).problems
    assert problem.startswith("OCSP signer: ") and "must be issued by the intermediate" in problem


def test_several_problems_at_once(ca_dir: Path, tmp_path: Path) -> None:
    (ca_dir / "certs" / "root_ca.crt").unlink()

    def break_it(raw: dict[str, Any]) -> None:
        raw["authority"]["provisioners"].append(
            {"type": "AWS", "name": "aws", "iidRoots": str(tmp_path / "none.pem")}
        )
        raw["db"] = {"type": "postgresql", "dataSource": f"postgresql://127.0.0.1:{free_port()}/x"}

    edit_config(ca_dir, break_it)
    report = _check(ca_dir, b"wrong")
    assert [p.split(":")[0].split(" ")[0] for p in report.problems] == [
        "root",
        "key",
        "provisioner",
        "database",
    ], report.problems
    assert all("\n" not in p for p in report.problems)


def test_password_credential_and_ca_json_password(ca_dir: Path, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ca-password").write_bytes(PASSWORD + b"\n")
    os.chmod(creds / "ca-password", 0o400)
    report = check_config(_ca_json(ca_dir), environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert report.ok, report.problems
    assert report.secrets == ["password from credential ca-password"]
    edit_config(ca_dir, lambda raw: raw.update(password=PASSWORD.decode()))
    report = check_config(_ca_json(ca_dir), environ={})
    assert report.ok and report.secrets == ["password from ca.json"]
