"""`step-ca backup` and `step-ca restore` as people and programs see them: the summary lines,
`--json`, one-line refusals, and help with examples."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from appliance.pki import InitRequest, init_pki
from cli.stepca import command_names, main


@pytest.fixture
def steppath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(path))
    init_pki(
        InitRequest(path, "T", ["ca.test"], "127.0.0.1:9000", "admin", b"pw", b"ppw")
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_backup_and_restore_are_operator_commands() -> None:
    assert {"backup", "restore"} <= command_names()


def test_backup_for_people(
    steppath: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "backup", tmp_path / "b")
    assert code == 0 and out == ""
    sha = hashlib.sha256((tmp_path / "b" / "manifest.json").read_bytes()).hexdigest()
    lines = err.splitlines()
    assert f"✔ Backup: {tmp_path / 'b'}" in lines
    assert "✔ Files: 7 (SHA-256 sums in manifest.json)" in lines
    assert "✔ Intermediate key: secrets/intermediate_ca_key (file, encrypted)" in lines
    assert "✔ Root key: secrets/root_ca_key (file, encrypted)" in lines
    assert f"✔ Manifest SHA-256: {sha} (write it down)" in lines
    assert lines[-1].startswith("Not in the backup: passwords and PINs")


def test_postgresql_is_said_not_included_in_one_line(
    steppath: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_json = steppath / "config" / "ca.json"
    raw = json.loads(ca_json.read_text())
    raw["db"] = {"type": "postgresql", "dataSource": "postgresql://ca@127.0.0.1:5/ca"}
    ca_json.write_text(json.dumps(raw))
    code, _, err = _run(capsys, "backup", tmp_path / "b", ca_json)
    assert code == 0
    assert [line for line in err.splitlines() if "Database" in line] == [
        "⚠️  Database: postgresql: not included: back it up with its own tools "
        "(pg_dump for PostgreSQL)"
    ]


def test_json_for_programs(
    steppath: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "backup", tmp_path / "b", "--json")
    assert code == 0 and err == ""
    made = json.loads(out)
    assert made["backup"] == str(tmp_path / "b")
    assert made["manifest"] == json.loads((tmp_path / "b" / "manifest.json").read_text())
    code, out, err = _run(
        capsys, "restore", tmp_path / "b", "--steppath", tmp_path / "new", "--json"
    )
    assert code == 0 and err == ""
    done = json.loads(out)
    assert done["steppath"] == str(tmp_path / "new")
    assert done["config"] == str(tmp_path / "new" / "config" / "ca.json")
    assert done["from_steppath"] == str(steppath) and done["keys_not_restored"] == []
    assert sorted(done["moved"]) == [
        str(tmp_path / "new" / "config" / n) for n in ("ca.json", "defaults.json")
    ]


def test_refusals_are_one_line(
    steppath: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    assert _run(capsys, "backup", tmp_path / "busy") == (
        1, "", f"step-ca backup: {tmp_path / 'busy'} is not empty: use '--force' to write "
        "the backup there\n",
    )
    assert _run(capsys, "restore", tmp_path / "busy", "--json") == (
        1, "", f"step-ca restore: {tmp_path / 'busy'}: not a backup (no manifest.json), "
        "or an incomplete one\n",
    )
    assert _run(capsys, "restore", tmp_path / "busy", "--steppath", steppath)[2].endswith(
        "an incomplete one\n"
    )
    _run(capsys, "backup", tmp_path / "b", "--json")
    code, _, err = _run(capsys, "restore", tmp_path / "b")
    assert code == 1 and err.splitlines()[-1] == (
        f"step-ca restore: {steppath} is not empty: restore onto an empty STEPPATH, "
        "or use '--force'"
    )


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_help_has_a_description_and_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, command, "--help")
    assert code == 0
    assert out.startswith("Usage: ") and f" {command} <" in out.splitlines()[0]
    assert "\nExamples:\n" in out and f"$ step-ca {command} " in out
