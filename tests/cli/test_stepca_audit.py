"""`step-ca audit verify|list` as operators see them: the intact chain and its head, the first
bad entry named in one line, anchors, filters, JSON, and one-line refusals."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.config import CAConfig
from appliance.db.audit import AuditEvent, record
from appliance.db.engine import database_url, open_engine
from appliance.db.schema import upgrade
from appliance.pki import InitRequest, init_pki
from cli.stepca import command_names, main


@pytest.fixture
def ca_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CA made by init_pki, its schema at head, three entries in its audit log."""
    steppath = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(steppath))
    init_pki(InitRequest(steppath, "T", ["ca.test"], "127.0.0.1:9000", "admin", b"pw", b"ppw"))
    path = steppath / "config" / "ca.json"
    config = CAConfig.load(path)
    upgrade(config)
    engine = open_engine(database_url(None, config.base_dir))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    record(engine, [AuditEvent("certificate.sign", "admin:a.test", "CN=a.test", "10")], t0)
    record(engine, [AuditEvent("certificate.revoke", "admin:10", "CN=a.test", "10")], t0)
    record(engine, [AuditEvent("config.reload", "local:ops")], t0 + timedelta(days=1))
    engine.dispose()
    return path


def _db(ca_json: Path) -> Path:
    return ca_json.parent.parent / "db" / "stepstone.db"


def _sql(ca_json: Path, statement: str) -> None:
    with sqlite3.connect(_db(ca_json)) as conn:
        conn.execute(statement)


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_audit_is_an_operator_command() -> None:
    assert "audit" in command_names()


def test_verify_reports_the_intact_chain_and_its_head(
    ca_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "audit", "verify", ca_json)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "3 entries, chain intact"
    assert lines[1].startswith("Head: 3:") and len(lines[1]) == len("Head: 3:") + 64
    # CONFIG defaults to $(step path)/config/ca.json; the head works as an anchor.
    anchor = lines[1].removeprefix("Head: ")
    assert _run(capsys, "audit", "verify", "--anchor", anchor)[:2] == (0, out)


def test_verify_names_the_first_bad_entry_in_one_line(
    ca_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _sql(ca_json, "UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    code, out, err = _run(capsys, "audit", "verify", ca_json)
    assert code == 1 and out == ""
    assert err == (
        "step-ca audit verify: entry 2: hash does not match the entry's content: edited or "
        "inserted (1 entries before it are intact)\n"
    )


def test_verify_catches_a_deleted_entry(ca_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _sql(ca_json, "DELETE FROM audit WHERE seq = 2")
    code, _, err = _run(capsys, "audit", "verify", ca_json)
    assert code == 1
    assert err.startswith("step-ca audit verify: entry 2: entry 2 missing: deleted")


def test_a_truncated_log_fails_only_against_its_anchor(
    ca_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _run(capsys, "audit", "verify", ca_json)[1].splitlines()[1].removeprefix("Head: ")
    _sql(ca_json, "DELETE FROM audit WHERE seq = 3")
    code, out, _ = _run(capsys, "audit", "verify", ca_json)
    assert (code, out.splitlines()[0]) == (0, "2 entries, chain intact")
    code, _, err = _run(capsys, "audit", "verify", ca_json, "--anchor", head)
    assert code == 1
    assert err.startswith("step-ca audit verify: entry 3: anchored entry missing")
    assert "truncated" in err and len(err.splitlines()) == 1


def test_bad_anchor_is_one_line(ca_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "audit", "verify", ca_json, "--anchor", "3:abc")
    assert code == 1
    assert err == "--anchor: '3:abc' is not SEQ:SHA256 (an entry number, 64 hex)\n"


def test_list_as_a_table_filtered_by_kind_and_time(
    ca_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "audit", "list", ca_json)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "SEQ",
        "TIME",
        "KIND",
        "ACTOR",
        "SERIAL",
        "SUBJECT",
        "REQUEST",
        "ID",
    ]
    assert lines[1].split() == [
        "1", "2026-01-01T00:00:00Z", "certificate.sign", "admin:a.test", "10", "CN=a.test",
    ]  # fmt: skip
    assert len(lines) == 4
    out = _run(capsys, "audit", "list", ca_json, "--kind", "certificate")[1]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["1", "2"]
    out = _run(capsys, "audit", "list", ca_json, "--kind", "config.reload", "--kind", "x")[1]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["3"]
    out = _run(capsys, "audit", "list", ca_json, "--since", "2026-01-01T12:00:00Z")[1]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["3"]
    out = _run(capsys, "audit", "list", ca_json, "--until", "2026-01-01T12:00:00Z")[1]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["1", "2"]


def test_list_as_json_carries_the_hashes(ca_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "audit", "list", ca_json, "--format", "json")
    assert code == 0
    items = json.loads(out)
    assert [i["seq"] for i in items] == [1, 2, 3]
    assert items[0]["prev_hash"] == "0" * 64
    assert items[1]["prev_hash"] == items[0]["hash"]
    assert items[2]["at"] == "2026-01-02T00:00:00.000000Z"
    assert items[2]["kind"] == "config.reload" and items[2]["details"] == {}
    head = _run(capsys, "audit", "verify", ca_json)[1].splitlines()[1]
    assert head == f"Head: 3:{items[2]['hash']}"


def test_refusals_are_one_line(
    ca_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "audit", "list", ca_json, "--since", "yesterday")
    assert code == 1 and len(err.splitlines()) == 1 and "--since: 'yesterday'" in err
    code, _, err = _run(capsys, "audit", "verify", tmp_path / "nope.json")
    assert (
        code == 1 and err.startswith("step-ca audit verify: open ") and len(err.splitlines()) == 1
    )
    _db(ca_json).unlink()
    code, _, err = _run(capsys, "audit", "list", ca_json)
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("step-ca audit list: ") and "step-ca db upgrade" in err
