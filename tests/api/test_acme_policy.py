"""ACME new-order against issuance policies (in-process, a fresh CA): an identifier outside the
provisioner's policy or the authority's is refused with `rejectedIdentifier`, as step-ca does;
and a policy step-ca would not load stops ca.json from loading, in one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from api.app import create_app
from appliance.authority import Authority
from appliance.config import CAConfig, ConfigError
from tests.acme_ca import acme_ca_json, steppath
from tests.api.test_acme import Client, problem

PROVISIONER_POLICY = {"x509": {"allow": {"dns": ["*.acme.test"]},
                               "deny": {"dns": ["bad.acme.test"]}}}  # fmt: skip
AUTHORITY_POLICY = {"x509": {"deny": {"dns": ["blocked.acme.test"]}}}


@pytest.fixture(scope="module")
def ca_json(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    acme = {
        "type": "ACME",
        "name": "acme",
        "challenges": ["http-01", "dns-01"],
        "policy": PROVISIONER_POLICY,
    }
    with steppath(tmp_path_factory.mktemp("acme-policy") / "step") as base:
        yield acme_ca_json(base, acme, policy=AUTHORITY_POLICY)


@pytest.fixture(scope="module")
def acme(ca_json: Path) -> Client:
    authority = Authority.open(CAConfig.load(ca_json), password=b"ca-pw")
    client = Client(falcon.testing.TestClient(create_app(authority)))
    assert client.register().status_code == 201
    return client


def order(acme: Client, *idents: tuple[str, str]) -> falcon.testing.Result:
    body = {"identifiers": [{"type": kind, "value": value} for kind, value in idents]}
    return acme.post("/acme/acme/new-order", body)


def test_identifier_inside_both_policies_is_ordered(acme: Client) -> None:
    created = order(acme, ("dns", "www.acme.test"), ("dns", "API.acme.test"))
    assert created.status_code == 201, created.text
    assert [i["value"] for i in created.json["identifiers"]] == ["www.acme.test", "api.acme.test"]


@pytest.mark.parametrize(
    ("kind", "value", "why"),
    [
        ("dns", "www.other.test", 'dns name "www.other.test" not allowed'),  # not allowed
        ("dns", "bad.acme.test", 'dns name "bad.acme.test" not allowed'),  # denied
        ("dns", "a.b.acme.test", 'dns name "a.b.acme.test" not allowed'),  # one label only
        ("dns", "acme.test", 'dns name "acme.test" not allowed'),
        ("dns", "*.acme.test", 'dns name "*.acme.test" not allowed'),  # no allowWildcardNames
        ("ip", "10.0.0.1", 'ip name "10.0.0.1" not allowed'),  # no ip list next to a dns one
        ("dns", "blocked.acme.test", 'dns name "blocked.acme.test" not allowed'),  # authority
    ],
)
def test_identifier_outside_a_policy_is_rejected(
    acme: Client, kind: str, value: str, why: str
) -> None:
    refused = order(acme, ("dns", "ok.acme.test"), (kind, value))
    problem(refused, "rejectedIdentifier")
    assert refused.json["detail"] == f"not authorized: {why}"


@pytest.mark.parametrize(
    ("where", "policy", "message"),
    [
        ("authority.policy", {"x509": {"allow": {"ip": ["10.0.0.0/33"]}}},
         'cannot parse permitted constraint "10.0.0.0/33" as IP nor CIDR'),
        ("authority.provisioners[1].policy", {"ssh": {"host": {"deny": {"dns": ["*.*.test"]}}}},
         'cannot parse excluded domain constraint "*.*.test": domain constraint "*.*.test" can '
         "only have wildcard as starting character"),
        ("authority.policy.x509.allow.dns", {"x509": {"allow": {"dns": "www.acme.test"}}},
         'expected a list, got "www.acme.test"'),
    ],
)  # fmt: skip
def test_invalid_policy_stops_the_load(
    ca_json: Path, where: str, policy: dict[str, Any], message: str
) -> None:
    cfg = json.loads(ca_json.read_text())
    if where.startswith("authority.provisioners"):
        cfg["authority"]["provisioners"][1]["policy"] = policy
    else:
        cfg["authority"]["policy"] = policy
    with pytest.raises(ConfigError) as caught:
        CAConfig.from_raw(cfg, ca_json)
    assert str(caught.value) == f"{ca_json}: {where}: {message}"
