"""ca.json is checked against a schema: every problem named by its path, on one line."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from appliance.config import CAConfig, ConfigError
from appliance.config_edit import ConfigEditError, add_provisioner, update_provisioner
from pki.jose import public_jwk
from provisioners.schema import ACMESchema, JWKSchema, OIDCSchema, ProvisionerSchema

PATH = Path("ca.json")
Change = Callable[[dict[str, Any]], None]


def _jwk(name: str) -> dict[str, Any]:
    return {"type": "JWK", "name": name, "key": public_jwk(ec.generate_private_key(ec.SECP256R1()))}


BASE: dict[str, Any] = {
    "root": "certs/root_ca.crt",
    "federatedRoots": None,
    "crt": "certs/intermediate_ca.crt",
    "key": "secrets/intermediate_ca_key",
    "address": ":9000",
    "insecureAddress": "",
    "dnsNames": ["ca.test"],
    "logger": {"format": "text"},
    "db": {"type": "badgerv2", "dataSource": "db", "badgerFileLoadingMode": ""},
    "authority": {"provisioners": [_jwk("admin")]},
    "tls": {
        "cipherSuites": [
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ],
        "minVersion": 1.2,
        "maxVersion": 1.3,
        "renegotiation": False,
    },
}


def _raw(change: Change) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    change(raw)
    return raw


def _load(change: Change) -> CAConfig:
    return CAConfig.from_raw(_raw(change), PATH)


def _refused(change: Change) -> str:
    with pytest.raises(ConfigError) as info:
        _load(change)
    return str(info.value)


def _set(path: str, value: Any) -> Change:
    """A change setting the dotted `path` (list items by index) to `value`."""

    def change(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[last] = value

    return change


def _drop(name: str) -> Change:
    return lambda raw: raw.pop(name)


def _both(first: Change, second: Change) -> Change:
    def change(raw: dict[str, Any]) -> None:
        first(raw)
        second(raw)

    return change


# --- the cases of issue 9, and wrong types field by field ----------------------------------

TYPES = "JWK, OIDC, X5C, ACME, SSHPOP, SCEP, K8sSA, Nebula, AWS, GCP, Azure"
VERSION = "expected a TLS version such as 1.2 or 1.3"
DURATION = 'expected a duration such as "24h" or "5m30s"'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # tls
        (_set("tls", "x"), 'tls: expected a JSON object, got "x"'),
        (_set("tls.minVersion", "abc"), f'tls.minVersion: {VERSION}, got "abc"'),
        (_set("tls.maxVersion", 1.4), f"tls.maxVersion: {VERSION}, got 1.4"),
        (_set("tls.minVersion", True), f"tls.minVersion: {VERSION}, got true"),
        (_set("tls.minVersion", False), f"tls.minVersion: {VERSION}, got false"),
        (_set("tls.minVersion", "1.2"), f'tls.minVersion: {VERSION}, got "1.2"'),
        (
            _set("tls.cipherSuites", ["TLS_AES_128_GCM_SHA256", "NOPE"]),
            "tls.cipherSuites[1]: expected a cipher suite name such as "
            'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, got "NOPE"',
        ),
        (_set("tls.cipherSuites", "NOPE"), 'tls.cipherSuites: expected a list, got "NOPE"'),
        (_set("tls.renegotiation", "no"), 'tls.renegotiation: expected true or false, got "no"'),
        (
            _both(_set("tls.minVersion", 1.3), _set("tls.maxVersion", 1.2)),
            "tls: minVersion 1.3 cannot exceed maxVersion 1.2",
        ),
        (_set("tls", {"maxVersion": 1.1}), "tls: minVersion 1.2 cannot exceed maxVersion 1.1"),
        # db, address, crl
        (_set("db.dataSource", 5), "db.dataSource: expected a string, got 5"),
        (_set("db", "badger"), 'db: expected a JSON object, got "badger"'),
        (
            _set("address", 123),
            "address: expected host:port such as 127.0.0.1:9000 or :443, got 123",
        ),
        (
            _set("address", "localhost"),
            'address: expected host:port such as 127.0.0.1:9000 or :443, got "localhost"',
        ),
        (_set("address", ""), "address: cannot be empty"),
        (_drop("address"), "address: is required"),
        (_set("crl", {"enabled": "yes"}), 'crl.enabled: expected true or false, got "yes"'),
        (
            _set("crl", {"cacheDuration": "0s"}),
            'crl.cacheDuration: expected a duration greater than 0, got "0s"',
        ),
        (
            _set("crl", {"cacheDuration": "1h", "renewPeriod": "2h"}),
            "crl.renewPeriod: expected a duration greater than 0 and at most crl.cacheDuration "
            '(1h0m0s), got "2h"',
        ),
        (
            _set("crl", {"ocspCrt": "certs/ocsp.crt"}),
            "crl: ocspCrt and ocspKey go together: set both or neither",
        ),
        # provisioners
        (
            _set("authority.provisioners.0.name", 5),
            "authority.provisioners[0].name: expected a string, got 5",
        ),
        (
            _set("authority.provisioners.0.name", ""),
            "authority.provisioners[0].name: cannot be empty",
        ),
        (
            _set("authority.provisioners.0.type", "JWKS"),
            f'authority.provisioners[0].type: expected one of {TYPES}, got "JWKS"',
        ),
        (
            _set("authority.provisioners.0.type", 1),
            f"authority.provisioners[0].type: expected one of {TYPES}, got 1",
        ),
        (
            _set("authority.provisioners", [{"name": "x"}]),
            "authority.provisioners[0].type: is required",
        ),
        (
            _set("authority.provisioners", ["admin"]),
            'authority.provisioners[0]: expected a JSON object, got "admin"',
        ),
        (
            _set("authority.provisioners", {"admin": {}}),
            "authority.provisioners: expected a list, got an object",
        ),
        (
            _set("authority.provisioners.0.claims", "24h"),
            'authority.provisioners[0].claims: expected a JSON object, got "24h"',
        ),
        (
            _set("authority.provisioners.0.claims", {"maxTLSCertDuration": 24}),
            f"authority.provisioners[0].claims.maxTLSCertDuration: {DURATION}, got 24",
        ),
        (
            _set("authority.provisioners.0.claims", {"disableRenewal": "yes"}),
            'authority.provisioners[0].claims.disableRenewal: expected true or false, got "yes"',
        ),
        (
            _set("authority.provisioners.0.key", "x"),
            'authority.provisioners[0].key: expected a JSON object, got "x"',
        ),
        (
            _set("authority.provisioners.0.key.kid", ""),
            "authority.provisioners[0].key.kid: cannot be empty",
        ),
        (
            _set("authority.provisioners", [{"type": "OIDC", "name": "o", "admins": "me"}]),
            'authority.provisioners[0].admins: expected a list, got "me"',
        ),
        (
            _set("authority.provisioners", [{"type": "AWS", "name": "a", "instanceAge": "1y"}]),
            f'authority.provisioners[0].instanceAge: {DURATION}, got "1y"',
        ),
        (
            _set("authority.provisioners", [{"type": "GCP", "name": "g", "disableCustomSANs": 1}]),
            "authority.provisioners[0].disableCustomSANs: expected true or false, got 1",
        ),
        (
            _set("authority.provisioners", [{"type": "Azure", "name": "a", "tenantID": 7}]),
            "authority.provisioners[0].tenantID: expected a string, got 7",
        ),
        (
            _set("authority.provisioners", [{"type": "X5C", "name": "x", "roots": ["a"]}]),
            "authority.provisioners[0].roots: expected a string, got a list",
        ),
        # authority
        (_set("authority", "x"), 'authority: expected a JSON object, got "x"'),
        (
            _set(
                "authority.claims",
                {"minTLSCertDuration": "1m", "defaultTLSCertDuration": "forever"},
            ),
            f'authority.claims.defaultTLSCertDuration: {DURATION}, got "forever"',
        ),
        (
            _set("authority.claims", {"minTLSCertDuration": "2h", "defaultTLSCertDuration": "1h"}),
            "authority.claims: minTLSCertDuration <= defaultTLSCertDuration <= "
            "maxTLSCertDuration does not hold",
        ),
        (
            _set("authority.backdate", "-1m"),
            'authority.backdate: expected a duration of at least 0s, got "-1m"',
        ),
        (_set("authority.backdate", 60), f"authority.backdate: {DURATION}, got 60"),
        (
            _set("authority.disableIssuedAtCheck", "true"),
            'authority.disableIssuedAtCheck: expected true or false, got "true"',
        ),
        (
            _set("authority.template", {"country": 1}),
            "authority.template.country: expected a string or a list of strings, got 1",
        ),
        # the top level
        (_set("root", 5), "root: expected a path or a list of paths, got 5"),
        (_set("root", []), "root: cannot be empty"),
        (_set("root", ["a.crt", ""]), "root[1]: cannot be empty"),
        (_set("federatedRoots", "x.crt"), 'federatedRoots: expected a list, got "x.crt"'),
        (_set("crt", 5), "crt: expected a string, got 5"),
        (_set("key", ""), "key: cannot be empty"),
        (_set("key", {"kid": "x"}), "key: expected a string, got an object"),
        (_set("dnsNames", "ca.test"), 'dnsNames: expected a list, got "ca.test"'),
        (_set("dnsNames", []), "dnsNames: cannot be empty"),
        (_set("dnsNames", ["ca.test", 5]), "dnsNames[1]: expected a string, got 5"),
        (_set("password", ["pw"]), "password: expected a string, got a list"),
        (_set("commonName", 5), "commonName: expected a string, got 5"),
        (_set("logger", "text"), 'logger: expected a JSON object, got "text"'),
        (
            _set("logger", {"format": "xml"}),
            'logger.format: expected one of text, json, common, got "xml"',
        ),
        (_set("kms", {"type": "pkcs11", "uri": 5}), "kms.uri: expected a string, got 5"),
        (
            _set("stepstone", {"workers": 0}),
            "stepstone.workers: expected a whole number of at least 1, got 0",
        ),
        (
            _set("stepstone", {"serverCertDuration": "1d"}),
            f'stepstone.serverCertDuration: {DURATION}, got "1d"',
        ),
        (
            _set("serverLimits", {"requestTimeout": "0s"}),
            'serverLimits.requestTimeout: expected a duration greater than 0, got "0s"',
        ),
    ],
)
def test_refused_with_path_and_expectation(change: Change, message: str) -> None:
    assert _refused(change) == f"ca.json: {message}"


def test_every_problem_is_listed_on_one_line() -> None:
    def change(raw: dict[str, Any]) -> None:
        raw["tls"]["minVersion"] = "abc"
        raw["db"]["dataSource"] = 5
        raw["address"] = 123
        raw["crl"] = {"enabled": "yes"}
        raw["authority"]["provisioners"][0]["name"] = 5

    message = _refused(change)
    assert "\n" not in message
    assert message.startswith("ca.json: ")
    assert message.removeprefix("ca.json: ").split("; ") == [
        "address: expected host:port such as 127.0.0.1:9000 or :443, got 123",
        "db.dataSource: expected a string, got 5",
        "authority.provisioners[0].name: expected a string, got 5",
        f'tls.minVersion: {VERSION}, got "abc"',
        'crl.enabled: expected true or false, got "yes"',
    ]


def test_the_prefix_is_the_path_given() -> None:
    path = Path("/etc/step/config/ca.json")
    with pytest.raises(ConfigError, match=r"^/etc/step/config/ca\.json: db\.dataSource: "):
        CAConfig.from_raw(_raw(_set("db.dataSource", 5)), path)


@pytest.mark.parametrize("field", ["password", "kms.pin", "authority.provisioners.0.encryptedKey"])
def test_a_misplaced_secret_is_not_echoed(field: str) -> None:
    message = _refused(_set(field, 987654321))
    assert "987654321" not in message
    assert message.endswith("expected a string, got a number")


# --- what is accepted ---------------------------------------------------------------------


def test_null_means_the_default_as_in_go() -> None:
    """Go's decoder leaves a field at its zero value for a JSON null, and step-ca then fills
    in its default: so do we (a null minVersion is TLS 1.2, not an error)."""
    cfg = _load(
        _both(
            _set("tls", {"minVersion": None, "maxVersion": None, "cipherSuites": None}),
            lambda raw: raw.update(
                {
                    "dnsNames": None,
                    "federatedRoots": None,
                    "db": None,
                    "crl": None,
                    "password": None,
                    "commonName": None,
                    "logger": None,
                }
            ),
        )
    )
    assert cfg.tls_options() == {
        "cipherSuites": [
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ],
        "minVersion": 1.2,
        "maxVersion": 1.3,
        "renegotiation": False,
    }
    assert cfg.dns_names == ["localhost", "127.0.0.1", "::1"]
    assert cfg.federated_roots == [] and cfg.db is None and cfg.password is None
    assert cfg.common_name == "Step Online CA" and not cfg.crl.enabled


def test_zero_tls_version_means_the_default() -> None:
    cfg = _load(_set("tls", {"minVersion": 0, "maxVersion": 1.2}))
    assert cfg.tls_options()["minVersion"] == 1.2 and cfg.tls_options()["maxVersion"] == 1.2


def test_unknown_fields_are_accepted_and_kept() -> None:
    def change(raw: dict[str, Any]) -> None:
        raw["_logger"] = {"format": "text"}
        raw["monitoring"] = ["anything"]
        raw["tls"]["future"] = 1
        raw["authority"]["provisioners"][0]["options"] = {"x509": {"templateFile": "t.tpl"}}
        raw["authority"]["provisioners"][0]["somethingNew"] = [1, 2]

    raw = _raw(change)
    before = copy.deepcopy(raw)
    cfg = CAConfig.from_raw(raw, PATH)
    assert cfg.raw == before
    prov = cfg.provisioners[0]
    assert isinstance(prov, JWKSchema) and prov.model_extra == {"somethingNew": [1, 2]}
    assert prov.json_object() == before["authority"]["provisioners"][0]


def test_step_ca_types_this_build_skips_are_accepted() -> None:
    provs = [
        {"type": "ACME", "name": "acme", "forceCN": True},
        {"type": "SSHPOP", "name": "sshpop", "claims": {"enableSSHCA": True}},
        {"type": "scep", "name": "scep", "challenge": "not-so-secret"},
        {"type": "k8sSA", "name": "k8s"},
        {"type": "Nebula", "name": "nebula"},
        {"type": "jwk", "name": "lower", "key": _jwk("x")["key"]},
    ]
    cfg = _load(_set("authority.provisioners", provs))
    assert [p.name for p in cfg.provisioners] == [p["name"] for p in provs]
    kinds = [ACMESchema] + [ProvisionerSchema] * 4 + [JWKSchema]
    assert [type(p) for p in cfg.provisioners] == kinds


def test_well_formed_values_resolve() -> None:
    def change(raw: dict[str, Any]) -> None:
        raw["root"] = ["a.crt", "b.crt"]
        raw["address"] = "[::1]:8443"
        raw["tls"] = {
            "minVersion": 1.3,
            "maxVersion": 1.3,
            "cipherSuites": ["TLS_AES_128_GCM_SHA256"],
        }
        raw["authority"]["backdate"] = "0s"
        raw["authority"]["claims"] = {"maxTLSCertDuration": "72h", "disableRenewal": True}
        raw["crl"] = {"enabled": True, "cacheDuration": "2h", "renewPeriod": "1h"}
        raw["stepstone"] = {"workers": 3, "serverCertDuration": "30s"}

    cfg = _load(change)
    assert [p.name for p in cfg.roots] == ["a.crt", "b.crt"]
    assert (cfg.host, cfg.port) == ("::1", 8443)
    assert cfg.tls_options()["cipherSuites"] == ["TLS_AES_128_GCM_SHA256"]
    assert cfg.backdate == timedelta(0)
    assert cfg.claims.max_tls == timedelta(hours=72) and cfg.claims.disable_renewal
    assert cfg.crl.enabled and cfg.crl.renew_period == timedelta(hours=1)
    assert cfg.workers == 3 and cfg.server_cert_duration == timedelta(seconds=30)


def test_the_appliance_reads_typed_blocks() -> None:
    """kms, db, serverLimits, the template and the provisioners travel as checked objects."""

    def change(raw: dict[str, Any]) -> None:
        raw["kms"] = {"type": "pkcs11", "uri": "pkcs11:token=ca", "pin": "1234", "future": 1}
        raw["serverLimits"] = {"requestTimeout": "3s", "maxConnections": 9}
        raw["authority"]["template"] = {"country": "DE", "organization": ["A", "B"], "locality": ""}
        raw["authority"]["provisioners"].append(
            {"type": "OIDC", "name": "sso", "clientID": "c", "admins": ["a@example.com"]}
        )

    cfg = _load(change)
    assert cfg.kms is not None and cfg.kms.uri == "pkcs11:token=ca"
    assert cfg.kms.as_json() == {
        "type": "pkcs11", "uri": "pkcs11:token=ca", "pin": "1234", "future": 1
    }  # fmt: skip
    assert cfg.server_limits is not None and cfg.server_limits.requestTimeout == "3s"
    assert cfg.server_limits.maxConnections == 9
    assert cfg.db is not None and cfg.db.dataSource == "db" and cfg.db.type == "badgerv2"
    # One value or a list, as lists; "" (Go's zero value) is unset.
    assert cfg.template == {"country": ["DE"], "organization": ["A", "B"]}
    jwk, oidc = cfg.provisioners
    assert isinstance(jwk, JWKSchema) and jwk.key.kid
    assert isinstance(oidc, OIDCSchema) and oidc.admins == ["a@example.com"]
    bare = CAConfig.from_raw({k: v for k, v in BASE.items() if k != "db"}, PATH)
    assert bare.kms is None and bare.server_limits is None and bare.db is None
    assert bare.template == {}


# --- where the schema runs ----------------------------------------------------------------


def test_load_reports_schema_problems(tmp_path: Path) -> None:
    path = tmp_path / "ca.json"
    path.write_text(json.dumps(_raw(_set("tls", {"minVersion": None, "cipherSuites": ["NOPE"]}))))
    with pytest.raises(ConfigError) as info:
        CAConfig.load(path)
    assert str(info.value) == (
        f"{path}: tls.cipherSuites[0]: expected a cipher suite name such as "
        'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, got "NOPE"'
    )


def test_step_ca_start_up_prints_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ca.json"
    path.write_text(json.dumps(_raw(_both(_set("tls", "x"), _set("db.dataSource", 5)))))
    result = subprocess.run(
        [sys.executable, "-c", "from cli.stepca import main; main()", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"STEPPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr == (
        f"step-ca: {path}: db.dataSource: expected a string, got 5; tls: expected a JSON "
        'object, got "x"\n'
    )


@pytest.fixture
def ca_json(tmp_path: Path) -> Path:
    path = tmp_path / "ca.json"
    path.write_text(json.dumps(BASE, indent="\t"))
    return path


def test_provisioner_add_runs_the_schema(ca_json: Path) -> None:
    before = ca_json.read_bytes()
    prov = _jwk("second")
    prov["name"] = 5
    with pytest.raises(ConfigEditError) as info:
        add_provisioner(ca_json, prov)
    assert str(info.value) == (
        f"invalid configuration: {ca_json.resolve()}: authority.provisioners[1].name: "
        "expected a string, got 5"
    )
    assert ca_json.read_bytes() == before


def test_provisioner_update_runs_the_schema(ca_json: Path) -> None:
    def mutate(prov: dict[str, Any]) -> None:
        prov["claims"] = {"disableRenewal": "yes"}

    with pytest.raises(ConfigEditError, match=r"claims\.disableRenewal: expected true or false"):
        update_provisioner(ca_json, "admin", mutate)


def test_an_edit_refuses_a_file_already_broken_elsewhere(ca_json: Path) -> None:
    """`step ca provisioner add` validates the whole result, so it names the bad field."""
    from cli.ca import app

    raw = json.loads(ca_json.read_text())
    raw["tls"]["minVersion"] = "abc"
    ca_json.write_text(json.dumps(raw))
    pub = ca_json.parent / "pub.json"
    pub.write_text(json.dumps(_jwk("x")["key"]))
    result = CliRunner().invoke(
        app,
        ["provisioner", "add", "p2", "--type", "JWK", "--public-key", str(pub),
         "--ca-config", str(ca_json)],
    )  # fmt: skip
    assert result.exit_code != 0
    assert f'tls.minVersion: {VERSION}, got "abc"' in str(result.exception)


def test_an_edit_keeps_unknown_fields(ca_json: Path) -> None:
    raw = json.loads(ca_json.read_text())
    raw["_logger"] = {"format": "text"}
    raw["authority"]["provisioners"][0]["future"] = {"a": 1}
    ca_json.write_text(json.dumps(raw))
    add_provisioner(ca_json, _jwk("second"))
    after = json.loads(ca_json.read_text())
    assert after["_logger"] == {"format": "text"}
    assert after["authority"]["provisioners"][0]["future"] == {"a": 1}
