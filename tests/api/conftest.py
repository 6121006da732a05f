"""An in-process app over a fresh CA, for the API tests that need no server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import falcon
import falcon.testing
import pytest

from api.app import create_app
from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[falcon.App[Any, Any]]:
    base = tmp_path_factory.mktemp("openapi") / "step"
    mp = pytest.MonkeyPatch()
    mp.setenv("STEPPATH", str(base))
    try:
        init_pki(InitRequest(base, "OpenAPI", ["127.0.0.1"], "127.0.0.1:9", "admin",
                             b"ca-pw", b"prov-pw"))
        authority = Authority.open(CAConfig.load(base / "config" / "ca.json"), password=b"ca-pw")
        yield create_app(authority)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def client(app: falcon.App[Any, Any]) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(app)
