"""The ACME provisioner's entry: its schema, the challenges it offers, the names it allows,
and how `/provisioners` shows it."""

from __future__ import annotations

import pytest

from provisioners.acme import ACMEProvisioner
from provisioners.base import ProvisionerConfigError
from provisioners.claims import Claims
from provisioners.schema import ACMESchema, parse_provisioner


def acme(**fields: object) -> ACMEProvisioner:
    schema = parse_provisioner({"type": "acme", "name": "acme", **fields})
    assert isinstance(schema, ACMESchema)
    return ACMEProvisioner(schema, Claims())


def test_schema_problems_are_worded_by_path() -> None:
    with pytest.raises(ProvisionerConfigError) as err:
        parse_provisioner(
            {"type": "ACME", "name": "a", "challenges": "http-01", "stepstone": {"httpPort": 0}}
        )
    assert str(err.value) == (
        'challenges: expected a list, got "http-01"; '
        "stepstone.httpPort: expected a whole number of at least 1, got 0"
    )


def test_challenges_default_to_step_cas_and_keep_what_this_build_validates() -> None:
    assert acme().challenges == ["http-01", "dns-01", "tls-alpn-01"]
    assert acme(challenges=["DNS-01", "http-01"]).challenges == ["dns-01", "http-01"]
    assert acme(challenges=["wire-oidc-01", "device-attest-01"]).challenges == ["device-attest-01"]
    assert acme(challenges=["wire-oidc-01"]).challenges == []
    assert acme().http_port == 80
    assert acme().pinned_http_port is None
    assert acme(stepstone={"httpPort": 8080, "hosts": {"a.test": "127.0.0.1"}}).http_port == 8080


def test_each_authorization_offers_what_step_ca_offers() -> None:
    prov = acme()
    assert prov.challenges_for("dns", "a.test") == ["http-01", "dns-01", "tls-alpn-01"]
    assert prov.challenges_for("dns", "*.a.test") == ["dns-01"]
    assert prov.challenges_for("ip", "127.0.0.1") == ["http-01", "tls-alpn-01"]
    dns_only = acme(challenges=["dns-01"])
    assert dns_only.identifier_problem("ip", "127.0.0.1") is not None
    assert dns_only.identifier_problem("dns", "*.a.test") is None
    assert acme(challenges=["http-01"]).identifier_problem("dns", "*.a.test") is not None


@pytest.mark.parametrize(
    ("kind", "value", "refused"),
    [
        ("dns", "www.example.test", False),
        ("dns", "a-b.c", False),
        ("ip", "127.0.0.1", False),
        ("ip", "::1", False),
        ("dns", "10.0.0.1", True),
        ("dns", "-bad.test", True),
        ("dns", "*.example.test", False),  # dns-01 is offered
        ("dns", "*.-bad.test", True),
        ("ip", "example.test", True),
        ("email", "a@b.test", True),
    ],
)
def test_identifier_policy(kind: str, value: str, refused: bool) -> None:
    assert (acme().identifier_problem(kind, value) is not None) is refused


def test_listed_in_step_cas_field_order() -> None:
    prov = acme(website="https://w.test", challenges=["http-01"], forceCN=True)
    assert list(prov.to_json()) == ["type", "name", "forceCN", "challenges", "website"]
    assert prov.to_json()["type"] == "ACME"
    assert prov.extension("acct").credential_id == "acct"
