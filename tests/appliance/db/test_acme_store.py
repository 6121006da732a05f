"""ACME records on SQLite and PostgreSQL alike: single-use nonces, one account per key,
the order following its authorizations, certificates linked to their account."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, inspect, update

from appliance.acme.store import Store, now
from appliance.db.engine import migrate, open_engine
from appliance.db.models import acme_nonces


def test_a_nonce_is_used_once_and_only_if_issued(engine: Engine) -> None:
    store = Store(engine)
    nonce = store.new_nonce()
    assert store.use_nonce(nonce)
    assert not store.use_nonce(nonce)
    assert not store.use_nonce("never-issued")


def test_a_stale_nonce_is_refused(engine: Engine) -> None:
    store = Store(engine)
    nonce = store.new_nonce()
    with engine.begin() as conn:
        conn.execute(
            update(acme_nonces)
            .where(acme_nonces.c.nonce == nonce)
            .values(issued_at=now() - timedelta(hours=2))
        )
    assert not store.use_nonce(nonce)


def test_one_account_per_key(engine: Engine) -> None:
    store = Store(engine)
    first, created = store.create_account("acme", "thumb", {"kty": "OKP"}, ["mailto:a@b.test"])
    assert created
    again, created_again = store.create_account("acme", "thumb", {"kty": "OKP"}, [])
    assert not created_again
    assert again["id"] == first["id"]
    assert json.loads(again["contact"]) == ["mailto:a@b.test"]
    assert store.account_by_thumbprint("thumb") is not None
    assert store.account_by_thumbprint("other") is None


def test_the_order_follows_its_authorizations(engine: Engine) -> None:
    store = Store(engine)
    idents = [{"type": "dns", "value": "a.test"}, {"type": "ip", "value": "127.0.0.1"}]
    order = store.create_order("acct", "acme", idents, ["http-01"], (None, None))
    authz_ids = json.loads(order["authz_ids"])
    assert [a["value"] for a in store.authzs(authz_ids)] == ["a.test", "127.0.0.1"]
    first = store.challenges(authz_ids[0])[0]
    assert store.start_challenge(first["id"])
    assert not store.start_challenge(first["id"])  # a second start is refused
    store.finish_challenge(first, None)
    assert store.order(order["id"])["status"] == "pending"  # type: ignore[index]
    second = store.challenges(authz_ids[1])[0]
    store.finish_challenge(second, None)
    assert store.order(order["id"])["status"] == "ready"  # type: ignore[index]
    assert store.orders_of("acct") == [order["id"]]

    assert store.set_order(order["id"], "ready", status="processing")
    assert not store.set_order(order["id"], "ready", status="processing")
    store.record_certificate(1234, "acct", order["id"])
    assert store.order(order["id"])["serial"] == "1234"  # type: ignore[index]
    assert store.certificate_account(1234) == "acct"
    assert store.certificate_account(99) is None


def test_a_failed_challenge_invalidates_the_order(engine: Engine) -> None:
    store = Store(engine)
    order = store.create_order("acct", "acme", [{"type": "dns", "value": "b.test"}],
                               ["http-01"], (None, None))  # fmt: skip
    authz_id = json.loads(order["authz_ids"])[0]
    challenge = store.challenges(authz_id)[0]
    store.finish_challenge(challenge, {"type": "x", "detail": "wrong", "status": 400})
    assert store.authz(authz_id)["status"] == "invalid"  # type: ignore[index]
    assert store.order(order["id"])["status"] == "invalid"  # type: ignore[index]
    assert json.loads(store.challenge(authz_id, challenge["id"])["error"])["detail"] == "wrong"  # type: ignore[index]


def test_migration_0006_adds_the_acme_tables(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    try:
        assert migrate(engine, "0005")[1] == "0005"
        assert "acme_accounts" not in inspect(engine).get_table_names()
        assert migrate(engine, "0006") == ("0005", "0006")
        tables = set(inspect(engine).get_table_names())
        assert {f"acme_{t}" for t in ACME_TABLES} <= tables
    finally:
        engine.dispose()


ACME_TABLES = ("accounts", "orders", "authzs", "challenges", "nonces", "certs")
