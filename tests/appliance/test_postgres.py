"""Several appliances sharing one PostgreSQL database: a token is good exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import profiles
from appliance.authority import Authority
from appliance.config import CAConfig
from keystores import SigningKey
from pki.errors import CAError, ErrorKind
from tests.appliance.conftest import PASSWORD, TokenMaker, edit_config, make_csr
from tests.postgres import postgres_server


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def appliances(ca_dir: Path, pg_url: str) -> Iterator[list[Authority]]:
    def use_pg(raw: dict[str, object]) -> None:
        raw["db"] = {"type": "postgresql", "dataSource": pg_url}

    edit_config(ca_dir, use_pg)
    cfg_path = ca_dir / "config" / "ca.json"
    pair = [Authority.open(CAConfig.load(cfg_path), password=PASSWORD) for _ in range(2)]
    for a in pair:
        a.start_time -= 5
    yield pair
    for a in pair:
        a.repository.engine.dispose()


def test_token_used_on_one_appliance_fails_on_the_other(
    appliances: list[Authority], token: TokenMaker
) -> None:
    a, b = appliances
    ott = token("pg.test")
    a.sign(make_csr("pg.test", []), ott)
    with pytest.raises(CAError) as err:
        b.sign(make_csr("pg.test", []), ott)
    assert err.value.kind is ErrorKind.UNAUTHORIZED


def test_concurrent_first_use_has_one_winner(
    appliances: list[Authority], token: TokenMaker
) -> None:
    ott = token("race.test")
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(authority: Authority) -> None:
        barrier.wait()
        try:
            authority.sign(make_csr("race.test", []), ott)
            outcomes.append("ok")
        except CAError as exc:
            outcomes.append(exc.kind.name)

    threads = [threading.Thread(target=attempt, args=(appliances[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["UNAUTHORIZED"] * 7 + ["ok"]


def test_serial_collision_is_retried_on_postgresql(
    appliances: list[Authority], token: TokenMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL aborts a transaction on any error: the retry runs inside a savepoint."""
    a, b = appliances
    first = a.sign(make_csr("pg.test", []), token("pg.test")).certificate
    fresh = first.serial_number ^ 1
    serials = iter([first.serial_number, fresh])
    monkeypatch.setattr(profiles, "random_serial", lambda: next(serials))
    second = b.sign(make_csr("pg.test", []), token("pg.test")).certificate
    assert second.serial_number == fresh
    assert a.repository.certificate(fresh) == second


def test_replay_racing_the_first_use_waits_and_never_signs(
    appliances: list[Authority], token: TokenMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The burn is flushed before signing: a replay on another appliance blocks on the
    token's row while the first use signs, then fails without touching its signer."""
    a, b = appliances
    ott = token("race.test")
    signing = threading.Event()
    release = threading.Event()
    real_a = a.issuer_signer.get
    b_fetches: list[int] = []

    def slow_signer() -> SigningKey:
        signing.set()
        assert release.wait(10)
        return real_a()

    def counting_signer() -> SigningKey:
        b_fetches.append(1)
        raise AssertionError("the replay reached the signer")

    monkeypatch.setattr(a.issuer_signer, "get", slow_signer)
    monkeypatch.setattr(b.issuer_signer, "get", counting_signer)
    outcomes: dict[str, object] = {}

    def run(name: str, authority: Authority) -> None:
        try:
            outcomes[name] = authority.sign(make_csr("race.test", []), ott).certificate
        except CAError as exc:
            outcomes[name] = exc.kind

    first = threading.Thread(target=run, args=("a", a))
    first.start()
    assert signing.wait(10)
    replay = threading.Thread(target=run, args=("b", b))
    replay.start()
    replay.join(0.5)
    assert replay.is_alive(), "the replay did not wait for the first use's transaction"
    release.set()
    first.join(10)
    replay.join(10)
    assert outcomes["b"] is ErrorKind.UNAUTHORIZED and b_fetches == []
    assert not isinstance(outcomes["a"], int)
