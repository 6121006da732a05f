"""`step-ca db upgrade` and `step-ca db status`: the schema from nothing, from an older
release, already at head, newer than this build; `--json`; one-line refusals; concurrent
upgrades of one PostgreSQL database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.db.engine import migrate, open_engine
from appliance.db.state import inspect_database
from appliance.pki import InitRequest, init_pki
from cli.stepca import command_names, main
from tests.postgres import free_port, postgres_server

STEP_CA = str(Path(sys.executable).parent / "step-ca")


@pytest.fixture
def ca_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CA made by init_pki: ca.json names the SQLite default, which does not exist yet."""
    steppath = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(steppath))
    init_pki(InitRequest(steppath, "T", ["ca.test"], "127.0.0.1:9000", "admin", b"pw", b"ppw"))
    return steppath / "config" / "ca.json"


@pytest.fixture(scope="module")
def head() -> str:
    return inspect_database({"dataSource": "x.db"}, Path("/nonexistent")).head


def _db(ca_json: Path) -> Path:
    return ca_json.parents[1] / "db" / "stepstone.db"


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def _revision(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return str(con.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_db_is_an_operator_command() -> None:
    assert "db" in command_names()


def test_status_then_upgrade_from_nothing(
    ca_json: Path, head: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db(ca_json)
    code, out, err = _run(capsys, "db", "status", ca_json)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"database  sqlite+pysqlite {db}",
        "schema    none",
        f"head      {head}",
        f"upgrade   needed: run 'step-ca db upgrade {ca_json}'",
    ]
    assert not db.exists()  # status writes nothing

    code, out, err = _run(capsys, "db", "upgrade", ca_json)
    assert (code, err) == (0, "")
    assert out == f"database schema created at {head} ({db})\n"
    assert _revision(db) == head
    assert db.stat().st_mode & 0o777 == 0o600

    code, out, _ = _run(capsys, "db", "status", ca_json)
    assert code == 0
    assert out.splitlines()[1:] == [
        f"schema    {head}",
        f"head      {head}",
        "upgrade   not needed",
    ]

    code, out, err = _run(capsys, "db", "upgrade", ca_json)
    assert (code, out, err) == (0, f"database schema already at head {head} ({db})\n", "")


def test_upgrade_from_an_older_release_keeps_the_rows(
    ca_json: Path, head: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db(ca_json)
    db.parent.mkdir(exist_ok=True)
    engine = open_engine(f"sqlite:///{db}")
    migrate(engine, "0001")  # the first release's schema, with a certificate in it
    pem = (ca_json.parents[1] / "certs" / "intermediate_ca.crt").read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO x509_certs (serial, der, provisioner, subject, not_after, issued_at)"
            " VALUES ('01', ?, 'admin', 'T', '2027-01-01 00:00:00', '2026-01-01 00:00:00')",
            (der,),
        )
    engine.dispose()

    code, out, _ = _run(capsys, "db", "status", ca_json, "--json")
    assert code == 0
    assert json.loads(out) == {
        "config": str(ca_json),
        "driver": "sqlite+pysqlite",
        "location": str(db),
        "revision": "0001",
        "head": head,
        "state": "behind",
        "upgradeNeeded": True,
    }

    code, out, err = _run(capsys, "db", "upgrade", ca_json, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "config": str(ca_json),
        "driver": "sqlite+pysqlite",
        "location": str(db),
        "from": "0001",
        "to": head,
        "head": head,
        "upgraded": True,
    }
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT serial FROM x509_certs").fetchall() == [("01",)]
    code, out, _ = _run(capsys, "db", "status", ca_json, "--json")
    assert json.loads(out)["state"] == "current" and json.loads(out)["upgradeNeeded"] is False


def test_config_defaults_to_steppath(ca_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "db", "upgrade")
    assert (code, err) == (0, "") and out.startswith("database schema created at ")
    code, out, _ = _run(capsys, "db", "status", "--json")
    assert code == 0 and json.loads(out)["config"] == str(ca_json)


def test_missing_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "ca.json"
    for command in ("status", "upgrade"):
        code, out, err = _run(capsys, "db", command, missing)
        assert (code, out) == (1, "")
        assert err == f"step-ca db {command}: open {missing}: no such file or directory\n"


def test_unreadable_database_is_one_line(
    ca_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db(ca_json)
    db.parent.mkdir(exist_ok=True)
    db.write_bytes(b"this is not a SQLite database, whatever its name says" * 100)
    for command in ("status", "upgrade"):
        code, out, err = _run(capsys, "db", command, ca_json)
        assert (code, out) == (1, "")
        assert err == f"step-ca db {command}: cannot read {db}: file is not a database\n"


def test_unreachable_postgresql_is_one_line(
    ca_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(ca_json.read_text())
    port = free_port()
    raw["db"] = {"type": "postgresql", "dataSource": f"postgresql://ca:s3cret@127.0.0.1:{port}/ca"}
    ca_json.write_text(json.dumps(raw))
    code, out, err = _run(capsys, "db", "status", ca_json)
    assert (code, out) == (1, "")
    assert err.startswith(
        f"step-ca db status: cannot read postgresql+psycopg://ca:***@127.0.0.1:{port}/ca: "
    )
    assert err.count("\n") == 1 and "s3cret" not in err


def test_a_newer_schema_is_shown_and_not_touched(
    ca_json: Path, head: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db(ca_json)
    assert _run(capsys, "db", "upgrade", ca_json)[0] == 0
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    code, out, err = _run(capsys, "db", "status", ca_json)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == (
        "upgrade   impossible: the database schema is at 9999, newer than this step-ca knows "
        f"(its newest is {head}): a newer Stepstone upgraded it; run that version"
    )
    code, out, err = _run(capsys, "db", "upgrade", ca_json)
    assert (code, out) == (1, "")
    assert err == (
        "step-ca db upgrade: the database schema is at 9999, newer than this step-ca knows "
        f"(its newest is {head}): a newer Stepstone upgraded it; it cannot go back\n"
    )
    assert _revision(db) == "9999"


@pytest.fixture
def postgres_ca(ca_json: Path) -> Iterator[Path]:
    with postgres_server() as url:
        raw = json.loads(ca_json.read_text())
        raw["db"] = {"type": "postgresql", "dataSource": url}
        ca_json.write_text(json.dumps(raw))
        yield ca_json


def test_appliances_upgrading_one_postgresql_at_once_take_turns(
    postgres_ca: Path, head: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the packaged unit does at each start: every appliance runs the upgrade; one
    creates the schema, the others wait for it and find it at head."""
    env = {**os.environ, "STEPPATH": str(postgres_ca.parents[1])}
    procs = [
        subprocess.Popen(
            [STEP_CA, "db", "upgrade", str(postgres_ca), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [(proc.returncode, err) for proc, (_, err) in zip(procs, outputs, strict=True)] == [
        (0, "")
    ] * 3
    results = [json.loads(out) for out, _ in outputs]
    assert [r["to"] for r in results] == [head] * 3
    assert sorted(str(r["from"]) for r in results) == sorted([head, head, "None"])
    code, out, _ = _run(capsys, "db", "status", postgres_ca, "--json")
    assert code == 0 and json.loads(out)["state"] == "current"
