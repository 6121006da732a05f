"""Several appliances sharing one PostgreSQL database: a token is good exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.authority import Authority
from appliance.config import CAConfig
from provisioners.errors import CAError
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
    pair = [Authority(CAConfig.load(cfg_path), password=PASSWORD) for _ in range(2)]
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
    assert err.value.status == 401


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
            outcomes.append(str(exc.status))

    threads = [threading.Thread(target=attempt, args=(appliances[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["401"] * 7 + ["ok"]
