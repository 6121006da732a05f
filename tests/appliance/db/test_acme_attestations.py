"""What device-attest-01 keeps in the database (migration 0008), on SQLite and PostgreSQL: a
`permanent-identifier` authorization, the attested key recorded with the valid challenge (and
only then), its removal with a stale order; the migration from 0007."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, func, inspect, select, update

from appliance.acme.store import Store, acme_attestations
from appliance.db.engine import migrate, open_engine
from appliance.db.models import acme_orders

ATTESTED = {"format": "step", "fingerprint": "ab" * 32, "identifier": "12345678"}


def count_rows(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def authz_ids(order: dict[str, Any]) -> list[str]:
    return list(json.loads(order["authz_ids"]))


def _order(store: Store) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    account, _ = store.create_account("acme-da", "thumb", {"kty": "EC"}, [])
    order = store.create_order(
        str(account["id"]),
        "acme-da",
        [{"type": "permanent-identifier", "value": "12345678"}],
        ["device-attest-01"],
        (None, None),
    )
    (authz_id,) = authz_ids(order)
    return order, store.challenges(authz_id)


def test_the_attested_key_is_kept_with_the_valid_challenge(engine: Engine) -> None:
    store = Store(engine)
    order, challenges = _order(store)
    ids = authz_ids(order)
    authz = store.authz(ids[0])
    assert authz is not None and authz["kind"] == "permanent-identifier"
    assert [c["kind"] for c in challenges] == ["device-attest-01"]
    (challenge,) = challenges
    assert store.attested_fingerprint(ids) is None
    assert store.start_challenge(str(challenge["id"]))
    store.finish_challenge(challenge, None, ATTESTED)
    assert store.attested_fingerprint(ids) == "ab" * 32
    row = store.order(str(order["id"]))
    assert row is not None and row["status"] == "ready"

    # a failed attestation keeps nothing
    order2, (challenge2,) = _order(store)
    assert store.start_challenge(str(challenge2["id"]))
    store.finish_challenge(challenge2, {"type": "x"}, ATTESTED)
    assert store.attested_fingerprint(authz_ids(order2)) is None

    # a stale order goes with its attestation
    with engine.begin() as conn:
        conn.execute(
            update(acme_orders)
            .where(acme_orders.c.id == order["id"])
            .values(expires=order["created_at"] - timedelta(days=3))
        )
    assert count_rows(engine, acme_attestations) == 1
    assert store.purge() >= 1
    assert count_rows(engine, acme_attestations) == 0


def test_migration_0008_widens_the_identifier_type(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    try:
        assert migrate(engine, "0007")[1] == "0007"
        assert "acme_attestations" not in inspect(engine).get_table_names()
        assert migrate(engine, "0008") == ("0007", "0008")
        assert "acme_attestations" in inspect(engine).get_table_names()
        kind = next(c for c in inspect(engine).get_columns("acme_authzs") if c["name"] == "kind")
        assert getattr(kind["type"], "length", None) == 32
    finally:
        engine.dispose()
