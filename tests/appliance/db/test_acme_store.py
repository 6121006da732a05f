"""ACME records on SQLite and PostgreSQL alike: single-use nonces, one account per key,
the order following its authorizations, certificates linked to their account, challenges
whose worker died released, stale nonces and orders purged."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, inspect, select, update

from appliance.acme.store import STALE_ORDER_AFTER, STUCK_AFTER, Row, Store, now
from appliance.db.engine import migrate, open_engine
from appliance.db.models import (
    acme_authzs,
    acme_challenges,
    acme_nonces,
    acme_orders,
)


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
    assert store.start_challenge(second["id"])
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
    assert store.authz(authz_id)["status"] == "pending"  # type: ignore[index]  # never started
    assert store.start_challenge(challenge["id"])
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


def _order(store: Store, name: str = "c.test") -> tuple[Row, str, Row]:
    order = store.create_order("acct", "acme", [{"type": "dns", "value": name}],
                               ["http-01"], (None, None))  # fmt: skip
    authz_id = json.loads(order["authz_ids"])[0]
    return order, authz_id, store.challenges(authz_id)[0]


def _age_challenge(engine: Engine, challenge_id: str, by: timedelta) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(acme_challenges)
            .where(acme_challenges.c.id == challenge_id)
            .values(validated=now() - by)
        )


def test_a_challenge_whose_worker_died_is_released(engine: Engine) -> None:
    store = Store(engine)
    _, authz_id, challenge = _order(store)
    assert not store.release_stuck(challenge)  # pending: nothing to release
    assert store.start_challenge(challenge["id"])
    started = store.challenge(authz_id, challenge["id"])
    assert started is not None and started["status"] == "processing"
    assert not store.release_stuck(started)  # its worker may still be at it

    _age_challenge(engine, challenge["id"], STUCK_AFTER + timedelta(seconds=5))
    stuck = store.challenge(authz_id, challenge["id"])
    assert stuck is not None
    assert store.release_stuck(stuck)
    assert not store.release_stuck(stuck)  # one request (or appliance) releases it
    assert store.challenge(authz_id, challenge["id"])["status"] == "pending"  # type: ignore[index]
    assert store.start_challenge(challenge["id"])  # and it can be validated again

    store.finish_challenge(challenge, None)
    store.finish_challenge(challenge, {"type": "x", "detail": "late", "status": 400})
    done = store.challenge(authz_id, challenge["id"])
    assert done is not None and (done["status"], done["error"]) == ("valid", None)
    assert store.authz(authz_id)["status"] == "valid"  # type: ignore[index]


def test_time_spent_queued_does_not_count_as_stuck(engine: Engine) -> None:
    """The clock restarts when a validation thread takes the challenge up."""
    store = Store(engine)
    _, authz_id, challenge = _order(store)
    assert store.start_challenge(challenge["id"])
    _age_challenge(engine, challenge["id"], STUCK_AFTER + timedelta(seconds=5))  # long queued
    store.mark_started(challenge["id"])
    taken = store.challenge(authz_id, challenge["id"])
    assert taken is not None and not store.release_stuck(taken)


def _count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_purge_drops_stale_nonces_and_orders(engine: Engine) -> None:
    store = Store(engine)
    fresh_nonce, old_nonce = store.new_nonce(), store.new_nonce()
    with engine.begin() as conn:
        conn.execute(
            update(acme_nonces)
            .where(acme_nonces.c.nonce == old_nonce)
            .values(issued_at=now() - timedelta(hours=2))
        )
    fresh, _, _ = _order(store, "fresh.test")
    expired, _, _ = _order(store, "expired.test")  # expired, still shown as invalid
    stale, stale_authz, _ = _order(store, "stale.test")
    issued, issued_authz, _ = _order(store, "issued.test")
    long_ago = now() - STALE_ORDER_AFTER - timedelta(minutes=1)
    with engine.begin() as conn:
        conn.execute(
            update(acme_orders)
            .where(acme_orders.c.id == expired["id"])
            .values(expires=now() - timedelta(minutes=1))
        )
        conn.execute(
            update(acme_orders)
            .where(acme_orders.c.id.in_([stale["id"], issued["id"]]))
            .values(expires=long_ago)
        )
    store.record_certificate(77, "acct", issued["id"])

    assert store.purge() == 1
    assert store.order(stale["id"]) is None
    assert store.authz(stale_authz) is None
    assert _count(engine, acme_challenges, acme_challenges.c.authz_id == stale_authz) == 0
    for kept in (fresh, expired, issued):
        assert store.order(kept["id"]) is not None
    assert store.authz(issued_authz) is not None
    assert _count(engine, acme_authzs) == 3
    assert _count(engine, acme_nonces, acme_nonces.c.nonce == old_nonce) == 0
    assert store.use_nonce(fresh_nonce)
    assert store.purge() == 0


def test_using_a_nonce_purges_now_and_then(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(engine)
    stale, _, _ = _order(store)
    with engine.begin() as conn:
        conn.execute(
            update(acme_orders)
            .where(acme_orders.c.id == stale["id"])
            .values(expires=now() - STALE_ORDER_AFTER - timedelta(minutes=1))
        )
    nonce = store.new_nonce()
    monkeypatch.setattr(secrets, "randbelow", lambda n: 1)  # not this time
    assert store.use_nonce(nonce)
    assert store.order(stale["id"]) is not None
    monkeypatch.setattr(secrets, "randbelow", lambda n: 0)  # this time
    assert not store.use_nonce(nonce)
    assert store.order(stale["id"]) is None
