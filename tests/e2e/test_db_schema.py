"""The schema is an explicit step: `step ca init` makes it, `step-ca` never creates or alters a
table. On a schema behind head (or none, or a newer one) the server refuses to start with one
line naming `step-ca db upgrade`, and a reload onto such a database is refused while the
running workers keep serving."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from appliance.db.engine import migrate, open_engine
from tests.e2e.harness import (
    CA,
    PROVISIONER_PASSWORD,
    STEP_CA,
    CAFactory,
    clean_env,
    csr_pem,
    ec_key,
    make_csr,
)
from tests.e2e.tokens import TokenMaker

TIMEOUT = 120


def _step_ca(ca: CA, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STEP_CA), *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=clean_env(ca.steppath),
        timeout=TIMEOUT,
    )


def _serve_fails(ca: CA) -> subprocess.CompletedProcess[str]:
    return _step_ca(ca, ca.ca_json, "--password-file", ca.password_file)


def _status(ca: CA) -> dict[str, object]:
    done = _step_ca(ca, "db", "status", ca.ca_json, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _set_revision(db: Path, revision: str) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    con.close()


def _sign_works(ca: CA, name: str) -> None:
    with ca.http() as http:
        tokens = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)
        body = {"csr": csr_pem(make_csr(name, [name], ec_key())), "ott": tokens.token(name)}
        resp = http.post("/1.0/sign", json=body)
    assert resp.status_code == 201, resp.text


def test_init_makes_the_schema_and_the_server_never_migrates(
    ca_factory: CAFactory, tmp_path: Path
) -> None:
    ca = ca_factory("schema-start", start=False)
    status = _status(ca)
    assert status["state"] == "current" and status["upgradeNeeded"] is False
    head = str(status["head"])
    upgrade = f"run 'step-ca db upgrade {ca.ca_json}'"

    # The first release's schema, as an appliance that ran it left it.
    ca.db_path.unlink()
    engine = open_engine(f"sqlite:///{ca.db_path}")
    migrate(engine, "0001")
    engine.dispose()
    done = _serve_fails(ca)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"step-ca: the database schema is at 0001 but this step-ca needs {head}: {upgrade}\n"
    )
    assert _status(ca)["revision"] == "0001"  # refused, not migrated

    done = _step_ca(ca, "db", "upgrade", ca.ca_json)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"database schema upgraded from 0001 to {head} ({ca.db_path})\n"
    ca.start()
    try:
        _sign_works(ca, "after-upgrade.test")
    finally:
        ca.stop()

    _set_revision(ca.db_path, "9999")  # a newer Stepstone upgraded it
    done = _serve_fails(ca)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("step-ca: the database schema is at 9999, newer than this ")

    ca.db_path.unlink()  # no database at all: refused, and none is made
    for leftover in ca.db_path.parent.glob("stepstone.db-*"):
        leftover.unlink()
    done = _serve_fails(ca)
    assert done.returncode == 1
    assert done.stderr == (
        f"step-ca: the database {ca.db_path} has no schema yet (this step-ca needs {head}): "
        f"{upgrade}\n"
    )
    assert not ca.db_path.exists()


def _reload_refused(ca: CA, count: int) -> str:
    """SIGHUP, then the log line of the `count`-th refused reload."""
    os.kill(ca.pid, signal.SIGHUP)
    marker = "keeping the running configuration: "
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        lines = [line for line in ca.log_path.read_text().splitlines() if marker in line]
        if len(lines) >= count:
            return str(json.loads(lines[count - 1])["msg"])  # the JSON log format
        assert "configuration reloaded" not in ca.log_path.read_text(), ca.log_tail()
        time.sleep(0.2)
    raise AssertionError(f"no refused reload in the log:\n{ca.log_tail()}")


def test_a_reload_onto_a_schema_behind_is_refused_and_serving_goes_on(
    ca_factory: CAFactory, tmp_path: Path
) -> None:
    ca = ca_factory("schema-reload")
    head = str(_status(ca)["head"])
    upgrade = f"run 'step-ca db upgrade {ca.ca_json}'"

    _set_revision(ca.db_path, "0001")  # put behind under the running server
    line = _reload_refused(ca, 1)
    assert line == (
        f"reloading {ca.ca_json} failed, keeping the running configuration: "
        f"the database schema is at 0001 but this step-ca needs {head}: {upgrade}"
    )
    _set_revision(ca.db_path, head)
    _sign_works(ca, "still-serving.test")

    # ca.json moved to a database nobody has upgraded: refused, and the file is not made.
    fresh = tmp_path / "fresh" / "ca.db"
    ca.edit_config(lambda cfg: cfg["db"].update(dataSource=str(fresh)))
    line = _reload_refused(ca, 2)
    assert f"the database {fresh} has no schema yet (this step-ca needs {head})" in line
    assert not fresh.exists()
    _sign_works(ca, "serving-on.test")
    with ca.http() as http:
        assert http.get("/health").json() == {"status": "ok"}
