"""ACME EAB keys on SQLite and PostgreSQL alike: random HMAC keys, references unique per
provisioner, paging, removal, and a key that binds exactly one account even when two
appliances (two engines on one database) race for it."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from appliance.acme.eab import DuplicateReference, EABStore, KeyAlreadyBound
from appliance.acme.store import Store
from appliance.db.engine import migrate, open_engine


def test_a_new_key_has_a_random_32_byte_hmac_key(engine: Engine) -> None:
    store = EABStore(engine)
    first = store.create("acme", "ref-1")
    second = store.create("acme")
    assert first["id"] != second["id"]
    raw = base64.urlsafe_b64decode(first["hmac_key"] + "=")
    assert len(raw) == 32
    assert first["hmac_key"] != second["hmac_key"]
    stored = store.get(first["id"])
    assert stored is not None
    assert (stored["reference"], stored["account_id"], stored["bound_at"]) == ("ref-1", None, None)
    assert store.get(second["id"])["reference"] is None  # type: ignore[index]
    assert store.get("nope") is None


def test_references_are_unique_per_provisioner(engine: Engine) -> None:
    store = EABStore(engine)
    store.create("acme", "customer-7")
    with pytest.raises(DuplicateReference, match="reference 'customer-7' already exists"):
        store.create("acme", "customer-7")
    store.create("other", "customer-7")  # another provisioner may reuse it
    store.create("acme")
    store.create("acme")  # keys without a reference never collide
    with pytest.raises(ValueError, match="exceeds the maximum"):
        store.create("acme", "x" * 257)


def test_list_pages_and_filters(engine: Engine) -> None:
    store = EABStore(engine)
    made = {store.create("acme", f"r{i}")["id"] for i in range(5)}
    store.create("other", "r0")
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        rows, cursor = store.page("acme", cursor=cursor, limit=2)
        pages += 1
        seen += [r["id"] for r in rows]
        if not cursor:
            break
    assert pages == 3
    assert seen == sorted(made)
    only, more = store.page("acme", "r3")
    assert [r["reference"] for r in only] == ["r3"]
    assert more == ""
    assert store.page("acme", "missing") == ([], "")


def test_remove(engine: Engine) -> None:
    store = EABStore(engine)
    key = store.create("acme", "gone")
    assert not store.remove("other", key["id"])  # the provisioner must match
    assert store.remove("acme", key["id"])
    assert not store.remove("acme", key["id"])
    assert store.get(key["id"]) is None


def test_a_key_binds_one_account_once(engine: Engine) -> None:
    eab, accounts = EABStore(engine), Store(engine)
    key = eab.create("acme", "bind")
    row, created = eab.create_bound_account(key["id"], "acme", "thumb-1", {"kty": "OKP"}, [])
    assert created
    bound = eab.get(key["id"])
    assert bound is not None
    assert bound["account_id"] == row["id"]
    assert bound["bound_at"] is not None
    assert accounts.account(row["id"]) is not None
    with pytest.raises(KeyAlreadyBound):
        eab.create_bound_account(key["id"], "acme", "thumb-2", {"kty": "OKP"}, [])
    assert accounts.account_by_thumbprint("thumb-2") is None  # nothing written
    other = eab.create("acme")
    with pytest.raises(KeyAlreadyBound):  # a key of another provisioner
        eab.create_bound_account(other["id"], "elsewhere", "thumb-3", {"kty": "OKP"}, [])


def test_an_existing_account_leaves_the_key_unbound(engine: Engine) -> None:
    eab, accounts = EABStore(engine), Store(engine)
    existing, _ = accounts.create_account("acme", "thumb-x", {"kty": "OKP"}, [])
    key = eab.create("acme")
    row, created = eab.create_bound_account(key["id"], "acme", "thumb-x", {"kty": "OKP"}, [])
    assert (row["id"], created) == (existing["id"], False)
    assert eab.get(key["id"])["account_id"] is None  # type: ignore[index]


def test_two_appliances_race_for_one_key(engine: Engine) -> None:
    """Two engines on one database (as two appliances): exactly one account gets the key."""
    other = open_engine(engine.url.render_as_string(hide_password=False))
    try:
        key = EABStore(engine).create("acme", "race")
        results: list[str] = []
        start = threading.Barrier(8)

        def bind(n: int) -> None:
            store = EABStore(engine if n % 2 else other)
            start.wait()
            try:
                store.create_bound_account(key["id"], "acme", f"t{n}", {"kty": "OKP"}, [])
                results.append("bound")
            except KeyAlreadyBound:
                results.append("refused")

        threads = [threading.Thread(target=bind, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["bound"] + ["refused"] * 7
    finally:
        other.dispose()


def test_migration_0007_adds_the_eab_table(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
    try:
        assert migrate(engine, "0006")[1] == "0006"
        assert "acme_eab_keys" not in inspect(engine).get_table_names()
        assert migrate(engine, "0007") == ("0006", "0007")
        assert "acme_eab_keys" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
