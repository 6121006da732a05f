"""Provisioner entries are checked against their type's schema: every problem by its path, on
one line; what is accepted keeps the JSON object it was read from."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from provisioners.base import ProvisionerConfigError
from provisioners.claims import Claims
from provisioners.schema import (
    PROVISIONER_TYPES,
    ACMESchema,
    AWSSchema,
    AzureSchema,
    ClaimsSchema,
    GCPSchema,
    JWKSchema,
    OIDCSchema,
    ProvisionerSchema,
    X5CSchema,
    parse_provisioner,
)

TYPES = ", ".join(PROVISIONER_TYPES)
KEY = {"use": "sig", "kty": "EC", "kid": "k1", "crv": "P-256", "alg": "ES256", "x": "x", "y": "y"}


def _refused(entry: Any) -> str:
    with pytest.raises(ProvisionerConfigError) as err:
        parse_provisioner(entry)
    return str(err.value)


@pytest.mark.parametrize(
    ("kind", "schema"),
    [
        ("JWK", JWKSchema),
        ("jwk", JWKSchema),
        ("OIDC", OIDCSchema),
        ("aws", AWSSchema),
        ("GCP", GCPSchema),
        ("Azure", AzureSchema),
        ("X5C", X5CSchema),
        ("ACME", ACMESchema),
        ("k8ssa", ProvisionerSchema),
    ],
)
def test_the_type_picks_the_schema_case_insensitively(kind: str, schema: type) -> None:
    entry = parse_provisioner({"type": kind, "name": "p", "key": KEY})
    assert type(entry) is schema
    assert entry.type == kind and entry.name == "p"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "p"}, "type: is required"),
        ({"type": "JWKS", "name": "p"}, f'type: expected one of {TYPES}, got "JWKS"'),
        ({"type": 7, "name": "p"}, f"type: expected one of {TYPES}, got 7"),
        ("p", 'expected a JSON object, got "p"'),
        ({"type": "JWK", "name": "", "key": KEY}, "name: cannot be empty"),
        ({"type": "JWK", "key": KEY}, "name: is required"),
        ({"type": "JWK", "name": "p"}, "key: is required"),
        ({"type": "JWK", "name": "p", "key": {"kty": "EC"}}, "key.kid: is required"),
        (
            {"type": "OIDC", "name": "p", "domains": ["a", 1]},
            "domains[1]: expected a string, got 1",
        ),
        (
            {"type": "OIDC", "name": "p", "clientSecret": 12345},
            "clientSecret: expected a string, got a number",
        ),
        (
            {"type": "JWK", "name": "p", "key": KEY, "encryptedKey": "x", "claims": []},
            "claims: expected a JSON object, got a list",
        ),
        (
            {"type": "AWS", "name": "p", "claims": {"defaultTLSCertDuration": "1 day"}},
            'claims.defaultTLSCertDuration: expected a duration such as "24h" or "5m30s", '
            'got "1 day"',
        ),
        # Stepstone's own fields are typed like step-ca's.
        ({"type": "AWS", "name": "p", "iidRootsPEM": 1}, "iidRootsPEM: expected a string, got 1"),
        ({"type": "GCP", "name": "p", "certsURL": True}, "certsURL: expected a string, got true"),
        ({"type": "GCP", "name": "p", "issuer": ["i"]}, "issuer: expected a string, got a list"),
        ({"type": "Azure", "name": "p", "jwksURL": 2}, "jwksURL: expected a string, got 2"),
        (
            {"type": "Azure", "name": "p", "oidcDiscoveryURL": {}},
            "oidcDiscoveryURL: expected a string, got an object",
        ),
        (
            {"type": "X5C", "name": "p", "stepstone": {"rootsFile": 1}},
            "stepstone.rootsFile: expected a string, got 1",
        ),
    ],
)
def test_refused_with_path_and_expectation(entry: Any, message: str) -> None:
    assert _refused(entry) == message


def test_every_problem_on_one_line() -> None:
    message = _refused(
        {"type": "AWS", "name": 5, "accounts": "123", "disableCustomSANs": "yes"}
    )
    assert "\n" not in message
    assert message.split("; ") == [
        "name: expected a string, got 5",
        "disableCustomSANs: expected true or false, got \"yes\"",
        'accounts: expected a list, got "123"',
    ]


def test_null_and_empty_mean_unset_as_in_go() -> None:
    entry = parse_provisioner(
        {
            "type": "GCP",
            "name": "g",
            "instanceAge": "",
            "projectIDs": None,
            "claims": {"maxTLSCertDuration": "", "disableRenewal": None},
        }
    )
    assert isinstance(entry, GCPSchema)
    assert entry.instanceAge is None and entry.projectIDs is None
    assert entry.claims == ClaimsSchema()
    assert entry.claims is not None
    assert Claims().merged(entry.claims) == Claims()


def test_the_json_object_is_kept_as_written() -> None:
    """`/provisioners` shows the entry as ca.json has it: key order, unknown fields, nulls and
    empty strings included, and later edits of the source object do not show through."""
    source: dict[str, Any] = {
        "type": "jwk",
        "name": "admin",
        "key": dict(KEY),
        "future": {"z": 1, "a": [None, ""]},
        "claims": {"maxTLSCertDuration": "", "enableSSHCA": True},
        "encryptedKey": None,
    }
    text = json.dumps(source)
    entry = parse_provisioner(source)
    assert json.dumps(entry.json_object()) == text
    source["name"] = "changed"
    source["key"]["kid"] = "changed"
    entry.json_object()["name"] = "changed too"
    assert json.dumps(entry.json_object()) == text
    assert entry.model_extra == {"future": {"z": 1, "a": [None, ""]}}


def test_entries_are_frozen() -> None:
    entry = parse_provisioner({"type": "JWK", "name": "admin", "key": KEY})
    assert isinstance(entry, JWKSchema)
    with pytest.raises(ValidationError):
        entry.name = "other"  # type: ignore[misc]
    assert entry.key.as_json() == KEY
