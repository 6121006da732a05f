"""Single-use tokens: what the database holds, and replays across a server restart."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.e2e.harness import (
    CA,
    DEFAULT_401,
    PROVISIONER_PASSWORD,
    CAFactory,
    csr_pem,
    error_body,
    load_chain,
    make_csr,
)
from tests.e2e.tokens import TokenMaker, claims_of


def _body(sub: str, ott: str) -> dict[str, Any]:
    return {"csr": csr_pem(make_csr(sub, [sub])), "ott": ott}


def test_replay_rejected_and_one_row(
    main_ca: CA, http: httpx.Client, tokens: TokenMaker
) -> None:
    ott = tokens.token("db.example")
    jti = claims_of(ott)["jti"]
    first = http.post("/1.0/sign", json=_body("db.example", ott))
    assert first.status_code == 201, first.text
    (leaf,) = load_chain(first.json()["crt"])
    serial = str(leaf.serial_number)
    certs_before = main_ca.db_rows("x509_certs")

    again = http.post("/1.0/sign", json=_body("db.example", ott))
    assert again.status_code == 401
    assert again.json() == error_body(401, DEFAULT_401)

    assert main_ca.db_rows("used_tokens", "id = ?", (jti,)) == 1
    assert main_ca.db_rows("x509_certs", "serial = ?", (serial,)) == 1
    assert main_ca.db_rows("x509_certs", "subject = ?", ("CN=db.example",)) == 1
    assert main_ca.db_rows("x509_certs") == certs_before


def test_rejected_request_writes_nothing(
    main_ca: CA, http: httpx.Client, tokens: TokenMaker
) -> None:
    certs, used = main_ca.db_rows("x509_certs"), main_ca.db_rows("used_tokens")
    ott = tokens.token("a.example", ["a.example"])
    jti = claims_of(ott)["jti"]
    resp = http.post("/1.0/sign", json={"csr": csr_pem(make_csr("a.example", ["b.example"])),
                                        "ott": ott})
    assert resp.status_code == 403
    assert main_ca.db_rows("used_tokens", "id = ?", (jti,)) == 0
    assert main_ca.db_rows("x509_certs") == certs
    assert main_ca.db_rows("used_tokens") == used
    # The token was not burnt by the refusal: it still buys the certificate it names.
    ok = http.post("/1.0/sign", json=_body("a.example", ott))
    assert ok.status_code == 201, ok.text
    assert main_ca.db_rows("used_tokens", "id = ?", (jti,)) == 1
    assert main_ca.db_rows("x509_certs") == certs + 1


def test_replay_refused_after_restart(ca_factory: CAFactory) -> None:
    """disableIssuedAtCheck: only the database stops a replay across a restart."""

    def edit(cfg: dict[str, Any]) -> None:
        cfg["authority"]["disableIssuedAtCheck"] = True

    ca = ca_factory("no-iat-check", edit)
    with ca.http() as http:
        maker = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)
        used = maker.token("restart.example")
        unused = maker.token("restart.example")
        first = http.post("/1.0/sign", json=_body("restart.example", used))
        assert first.status_code == 201, first.text
    pid = ca.pid
    ca.restart()
    assert ca.pid != pid
    with ca.http() as http:
        replay = http.post("/1.0/sign", json=_body("restart.example", used))
        assert replay.status_code == 401
        assert replay.json() == error_body(401, DEFAULT_401)
        # A token minted before the restart but never used is fine here: the 401 above is
        # the replay check, not the issued-at check.
        fresh = http.post("/1.0/sign", json=_body("restart.example", unused))
        assert fresh.status_code == 201, fresh.text
    assert ca.db_rows("x509_certs") == 2
    assert ca.db_rows("used_tokens") == 2


def test_token_issued_before_restart_refused_by_default(ca_factory: CAFactory) -> None:
    """Default config: a restart invalidates every token issued before it (iat check)."""
    ca = ca_factory("iat-check")
    with ca.http() as http:
        maker = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)
    # Issued (one second in the past, so the second of the restart cannot tie) and not used.
    before = maker.token("old.example", iat=int(time.time()) - 1)
    ca.restart()
    with ca.http() as http:
        resp = http.post("/1.0/sign", json=_body("old.example", before))
        assert resp.status_code == 401
        assert resp.json() == error_body(401, DEFAULT_401)
        after = maker.token("old.example")
        ok = http.post("/1.0/sign", json=_body("old.example", after))
        assert ok.status_code == 201, ok.text
    assert ca.db_rows("used_tokens", "id = ?", (claims_of(before)["jti"],)) == 0
