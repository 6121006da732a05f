"""`step-ca certificates list|show|export` on a CA's database filled by real signing: the three
formats, paging by cursor, filters, show's forms, PEM export to a folder or stdout, and every
refusal as one line with a non-zero exit. The CA is not running: only its database is read."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.db.engine import open_engine
from appliance.db.repository import Repository, Revocation
from appliance.db.schema import upgrade
from appliance.pki import InitRequest, init_pki
from cli.stepca import command_names, main
from tests.appliance.conftest import (  # noqa: F401 (fixtures)
    TokenMaker,
    authority,
    ca_dir,
    edit_config,
    make_csr,
    steppath,
    token,
)
from tests.appliance.db.conftest import (
    fresh_pg_database,
    make_cert,
    make_token,
    pg_server,  # noqa: F401 (fixture)
)


def _run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


class Issued:
    """Three certificates signed with tokens, the last one revoked."""

    def __init__(self, authority: Authority, token: TokenMaker) -> None:  # noqa: F811
        self.certs: dict[str, x509.Certificate] = {}
        self.jti: dict[str, str] = {}
        for sub in ("a.test", "b.test", "web.example.com"):
            ott = token(sub)
            self.certs[sub] = authority.sign(make_csr(sub, [sub]), ott).certificate
            self.jti[sub] = jwt.decode(ott, options={"verify_signature": False})["jti"]
        revoked = self.certs["web.example.com"].serial_number
        authority.repository.revoke(
            Revocation(revoked, 1, "key lost", "admin", "rev-jti", False, datetime.now(UTC)), None
        )

    def serial(self, sub: str) -> str:
        return str(self.certs[sub].serial_number)


@pytest.fixture
def issued(authority: Authority, token: TokenMaker) -> Issued:  # noqa: F811
    return Issued(authority, token)


@pytest.fixture
def config(ca_dir: Path) -> Path:  # noqa: F811
    return ca_dir / "config" / "ca.json"


def test_certificates_is_an_operator_command() -> None:
    assert "certificates" in command_names()


def test_list_json_newest_first_with_everything_recorded(
    issued: Issued, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "certificates", "list", config, "--format", "json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["next"] is None
    items = doc["certificates"]
    assert [i["serial"] for i in items] == [
        issued.serial(s) for s in ("web.example.com", "b.test", "a.test")
    ]
    web, b = items[0], items[1]
    assert b["subject"] == "CN=b.test"
    assert b["sans"] == ["b.test"]
    assert b["provisioner"] == "admin"
    assert b["tokenId"] == issued.jti["b.test"]
    assert b["state"] == "valid"
    assert b["revocation"] is None
    assert b["notAfter"] == issued.certs["b.test"].not_valid_after_utc.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert web["state"] == "revoked"
    assert web["revocation"]["reasonCode"] == 1
    assert web["revocation"]["reason"] == "key lost"


def test_table_and_csv(issued: Issued, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "certificates", "list", config)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "SERIAL",
        "SUBJECT",
        "PROVISIONER",
        "ISSUED",
        "NOT",
        "AFTER",
        "STATE",
    ]
    assert [line.split()[0] for line in lines[1:]] == [
        issued.serial(s) for s in ("web.example.com", "b.test", "a.test")
    ]
    assert lines[1].split()[-1] == "revoked"

    code, out, err = _run(capsys, "certificates", "list", config, "--format", "csv")
    assert (code, err) == (0, "")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["serial"] for r in rows] == [
        issued.serial(s) for s in ("web.example.com", "b.test", "a.test")
    ]
    assert rows[2]["tokenId"] == issued.jti["a.test"]
    assert rows[0]["reasonCode"] == "1"
    assert rows[1]["sans"] == "b.test"


def test_pages_by_cursor(issued: Issued, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "certificates", "list", config, "--limit", "2")
    assert code == 0
    assert err.startswith("next page: --cursor ")
    cursor = err.split()[-1]
    first = [line.split()[0] for line in out.splitlines()[1:]]
    code, out, err = _run(
        capsys, "certificates", "list", config, "--limit", "2", "--cursor", cursor
    )
    assert (code, err) == (0, "")
    second = [line.split()[0] for line in out.splitlines()[1:]]
    assert first + second == [issued.serial(s) for s in ("web.example.com", "b.test", "a.test")]

    code, out, _ = _run(capsys, "certificates", "list", config, "--limit", "1", "--format", "json")
    doc = json.loads(out)
    assert len(doc["certificates"]) == 1 and doc["next"]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--subject", "*.TEST"], ["b.test", "a.test"]),
        (["--san", "web.*"], ["web.example.com"]),
        (["--state", "revoked"], ["web.example.com"]),
        (["--state", "valid"], ["b.test", "a.test"]),
        (["--state", "expired"], []),
        (
            ["--provisioner", "admin", "--issued-after", "-1h"],
            ["web.example.com", "b.test", "a.test"],
        ),
        (["--issued-before", "2020-01-01T00:00:00Z"], []),
        (["--expires-before", "1h"], []),
        (["--expires-after", "1h", "--subject", "a.*"], ["a.test"]),
        (["--provisioner", "other"], []),
    ],
)
def test_filters(
    issued: Issued,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    expected: list[str],
) -> None:
    code, out, err = _run(capsys, "certificates", "list", config, "--format", "json", *flags)
    assert (code, err) == (0, "")
    assert [i["serial"] for i in json.loads(out)["certificates"]] == [
        issued.serial(s) for s in expected
    ]


def test_filter_by_serial_in_decimal_or_hex(
    issued: Issued, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serial = issued.certs["a.test"].serial_number
    for given in (str(serial), hex(serial)):
        _, out, _ = _run(
            capsys, "certificates", "list", config, "--serial", given, "--format", "json"
        )
        assert [i["serial"] for i in json.loads(out)["certificates"]] == [str(serial)]


def test_show_text_json_pem(
    issued: Issued, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    serial = issued.serial("web.example.com")
    code, out, err = _run(capsys, "certificates", "show", serial)  # CONFIG from STEPPATH
    assert (code, err) == (0, "")
    assert out.startswith("X.509v3 TLS Certificate (ECDSA P-256) [Serial: ")
    assert "  Subject:     web.example.com\n" in out
    assert "  Provisioner: admin [ID: " in out  # the certificate's own extension
    assert f"Serial:      {serial}\n" in out
    assert "Provisioner: admin\n" in out
    assert f"Token ID:    {issued.jti['web.example.com']}\n" in out
    assert "State:       revoked\n" in out
    assert "(keyCompromise: key lost) by admin, token rev-jti\n" in out

    code, out, err = _run(capsys, "certificates", "show", config, serial, "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["tokenId"] == issued.jti["web.example.com"]

    code, out, _ = _run(capsys, "certificates", "show", serial, "--format", "pem")
    cert = x509.load_pem_x509_certificate(out.encode())
    assert cert == issued.certs["web.example.com"]

    code, out, _ = _run(capsys, "certificates", "show", config, issued.serial("a.test"))
    assert "State:       valid\n" in out and "Revoked:" not in out


def test_export_to_a_folder_and_to_stdout(
    issued: Issued, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "certs"
    code, out, err = _run(
        capsys, "certificates", "export", config, "--state", "valid", "--out-dir", out_dir
    )
    assert (code, out) == (0, "")
    assert err == f"exported 2 certificates to {out_dir}\n"
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == sorted(f"{issued.serial(s)}.crt" for s in ("a.test", "b.test"))
    pem = (out_dir / f"{issued.serial('a.test')}.crt").read_bytes()
    assert pem == issued.certs["a.test"].public_bytes(Encoding.PEM)

    code, _, err = _run(capsys, "certificates", "export", config, "--out-dir", out_dir)
    assert code == 1
    assert err.count("\n") == 1 and "already exists: use '--force' to overwrite it" in err
    code, _, err = _run(capsys, "certificates", "export", config, "--out-dir", out_dir, "--force")
    assert (code, err) == (0, f"exported 3 certificates to {out_dir}\n")

    code, out, err = _run(capsys, "certificates", "export", "--subject", "*.test")
    assert (code, err) == (0, "")
    certs = x509.load_pem_x509_certificates(out.encode())
    assert certs == [issued.certs["b.test"], issued.certs["a.test"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "{config}", "--issued-after", "yesterday"],
         "step-ca certificates list: --issued-after: 'yesterday' is not a time (an RFC 3339 "
         "time or a duration from now such as -24h or 720h)"),
        (["list", "{config}", "--serial", "12ab"],
         "step-ca certificates list: '12ab' is not a serial number (decimal, or hex with 0x)"),
        (["list", "{config}", "--cursor", "bogus"],
         "step-ca certificates list: invalid cursor 'bogus'"),
        (["list", "{config}", "--limit", "0"],
         "step-ca certificates list: the limit must be between 1 and 10000"),
        (["show", "{config}", "12345"],
         "step-ca certificates show: no certificate with serial 12345"),
        (["show", "{config}", "x"],
         "step-ca certificates show: 'x' is not a serial number (decimal, or hex with 0x)"),
        (["show", "{config}", "1", "2"],
         "step-ca certificates show: too many arguments: want [CONFIG] SERIAL"),
        (["list", "/nonexistent/ca.json"],
         "step-ca certificates list: open /nonexistent/ca.json: no such file or directory"),
        (["export", "{config}", "--out-dir", "{config}"],
         "step-ca certificates export: {config} is not a directory"),
    ],
)  # fmt: skip
def test_errors_are_one_line(
    issued: Issued,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code, out, err = _run(capsys, "certificates", *[a.format(config=config) for a in args])
    assert (code, out) == (1, "")
    assert err == message.format(config=config) + "\n"


def test_a_database_without_the_schema_names_the_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = tmp_path / "fresh"
    init_pki(InitRequest(fresh, "T", ["ca.test"], "127.0.0.1:9000", "admin", b"pw", b"ppw"))
    config = fresh / "config" / "ca.json"
    db = fresh / "db" / "stepstone.db"
    db.unlink(missing_ok=True)
    code, out, err = _run(capsys, "certificates", "list", config)
    assert (code, out) == (1, "")
    assert err.startswith("step-ca certificates list: the database ")
    assert err.rstrip().endswith(f"run 'step-ca db upgrade {config}'")
    assert not db.exists()  # reading created nothing


def test_help_documents_config_and_times(capsys: pytest.CaptureFixture[str]) -> None:
    for sub, words in (
        ("list", ["[<config>]", "$(step path)/config/ca.json", "-24h", "--cursor", "Examples"]),
        ("show", ["<[config] serial>", "CONFIG comes first", "Examples"]),
        ("export", ["--out-dir", "Examples"]),
    ):
        code, out, _ = _run(capsys, "certificates", sub, "--help")
        assert code == 0
        flat = " ".join(out.split())
        for word in words:
            assert word in flat, (sub, word)


def test_list_and_show_on_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    """ca.json naming PostgreSQL: the same commands read it (the CA is not running)."""
    url = fresh_pg_database(request.getfixturevalue("pg_server"))
    base = tmp_path / "pg"
    init_pki(InitRequest(base, "T", ["ca.test"], "127.0.0.1:9000", "admin", b"pw", b"ppw"))
    edit_config(base, lambda raw: raw.update(db={"type": "postgresql", "dataSource": url}))
    config = base / "config" / "ca.json"
    upgrade(CAConfig.load(config))
    engine = open_engine(url)
    try:
        for serial in (11, 12):
            Repository(engine).issue(
                make_token(f"jti-{serial}"), "admin", lambda s=serial: make_cert(s)
            )
    finally:
        engine.dispose()
    code, out, err = _run(
        capsys, "certificates", "list", config, "--format", "json", "--subject", "s1?.test"
    )
    assert (code, err) == (0, "")
    assert {i["serial"] for i in json.loads(out)["certificates"]} == {"11", "12"}
    code, out, err = _run(capsys, "certificates", "show", config, "12")
    assert (code, err) == (0, "")
    assert "Token ID:    jti-12\n" in out
