"""`step ca provisioner add|update|remove` and the safe ca.json editor behind them."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner, Result

from appliance.config import CAConfig
from appliance.config_edit import (
    RELOAD_MESSAGE,
    ConfigEditError,
    add_provisioner,
    edit_config,
    validate,
)
from appliance.pki import InitRequest, init_pki
from cli.ca import app
from cli.common import CLIError
from pki.jose import key_from_jwk, private_jwk, public_jwk, thumbprint
from pki.jwe import decrypt_jwk, encrypt_jwk
from provisioners.registry import ProvisionerRegistry

runner = CliRunner()
PASSWORD = "new-provisioner-password"


@pytest.fixture
def steppath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(path))
    init_pki(
        InitRequest(path, "Test", ["ca.test"], "127.0.0.1:9000", "admin", b"ca-pw", b"prov-pw")
    )
    return path


@pytest.fixture
def ca_json(steppath: Path) -> Path:
    return steppath / "config" / "ca.json"


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password.txt"
    path.write_text(PASSWORD + "\n")
    return path


def step(args: Sequence[str | Path], ca_json: Path | None = None) -> Result:
    argv = ["provisioner", *map(str, args)]
    if ca_json is not None:
        argv += ["--ca-config", str(ca_json)]
    return runner.invoke(app, argv)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def refused(result: Result, fragment: str) -> str:
    assert result.exit_code != 0
    assert isinstance(result.exception, CLIError), repr(result.exception)
    assert fragment in str(result.exception), str(result.exception)
    return str(result.exception)


def provisioners(ca_json: Path) -> dict[str, dict[str, Any]]:
    raw = json.loads(ca_json.read_text())
    return {p["name"]: p for p in raw["authority"]["provisioners"]}


def _ca_cert(
    cn: str, *, cert_sign: bool = True
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(
                not cert_sign, False, False, False, False, cert_sign, cert_sign, False, False
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


# --- add ------------------------------------------------------------------------------------


def test_add_jwk_create(ca_json: Path, password_file: Path) -> None:
    os.chmod(ca_json, 0o600)
    before = ca_json.read_bytes()
    result = ok(
        step(
            [
                "add",
                "cicd",
                "--type",
                "jwk",
                "--create",
                "--password-file",
                password_file,
                "--x509-default-dur",
                "2h",
            ],
            ca_json,
        )
    )
    assert RELOAD_MESSAGE in result.output
    prov = provisioners(ca_json)["cicd"]
    assert list(prov) == ["type", "name", "key", "encryptedKey", "claims"]
    assert prov["type"] == "JWK"
    assert prov["key"]["kid"] == thumbprint(prov["key"])
    assert prov["key"]["alg"] == "ES256" and prov["key"]["use"] == "sig"
    jwk = decrypt_jwk(prov["encryptedKey"], PASSWORD)
    assert public_jwk(key_from_jwk(jwk)) == prov["key"]
    assert prov["claims"] == {
        "defaultTLSCertDuration": "2h",
        "disableRenewal": False,
        "allowRenewalAfterExpiry": False,
        "disableSmallstepExtensions": False,
    }
    # backup = the old file, same mode; new file same mode, tab-indented, rest untouched
    backup = ca_json.with_name("ca.json.bak")
    assert backup.read_bytes() == before
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(ca_json.stat().st_mode) == 0o600
    assert ca_json.read_text().startswith('{\n\t"root"')
    old, new = json.loads(before), json.loads(ca_json.read_text())
    new["authority"]["provisioners"].pop()
    assert new == old
    # the CA's loader takes it
    cfg = CAConfig.load(ca_json)
    registry = ProvisionerRegistry(cfg.provisioners, cfg.claims)
    assert registry.by_name("cicd") is not None


def test_add_keeps_mode_0644_and_trailing_newline(ca_json: Path, password_file: Path) -> None:
    ca_json.write_text(ca_json.read_text() + "\n")
    os.chmod(ca_json, 0o644)
    ok(step(["add", "a", "--type", "JWK", "--create", "--password-file", password_file], ca_json))
    assert stat.S_IMODE(ca_json.stat().st_mode) == 0o644
    assert stat.S_IMODE(ca_json.with_name("ca.json.bak").stat().st_mode) == 0o644
    assert ca_json.read_text().endswith("}\n")


def test_default_config_path_is_under_steppath(steppath: Path, password_file: Path) -> None:
    ok(step(["add", "a", "--type", "JWK", "--create", "--password-file", password_file]))
    assert "a" in provisioners(steppath / "config" / "ca.json")


def test_create_without_password_or_terminal_is_refused(ca_json: Path) -> None:
    before = ca_json.read_bytes()
    refused(step(["add", "a", "--type", "JWK", "--create"], ca_json), "--password-file")
    assert ca_json.read_bytes() == before


def test_add_jwk_from_key_files(ca_json: Path, tmp_path: Path, password_file: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    pub, priv = tmp_path / "jwk.pub", tmp_path / "jwk.priv"
    pub.write_text(json.dumps(public_jwk(key)))
    priv.write_text(json.dumps(private_jwk(key)))
    ok(
        step(
            [
                "add",
                "plain",
                "--type",
                "JWK",
                "--public-key",
                pub,
                "--private-key",
                priv,
                "--password-file",
                password_file,
            ],
            ca_json,
        )
    )
    prov = provisioners(ca_json)["plain"]
    assert prov["key"] == public_jwk(key)
    assert prov["key"]["alg"] == "ES384"
    assert decrypt_jwk(prov["encryptedKey"], PASSWORD)["d"] == private_jwk(key)["d"]


def test_add_jwk_with_an_encrypted_key_file(ca_json: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    compact = encrypt_jwk(private_jwk(key), "pw", p2c=1000)
    protected, encrypted_key, iv, ciphertext, tag = compact.split(".")
    pub, priv = tmp_path / "jwk.pub", tmp_path / "jwk.priv"
    pub.write_text(json.dumps(public_jwk(key)))
    # step writes `.jwk` files as flattened JSON JWE; ca.json keeps the compact form
    priv.write_text(
        json.dumps(
            {
                "protected": protected,
                "encrypted_key": encrypted_key,
                "iv": iv,
                "ciphertext": ciphertext,
                "tag": tag,
            }
        )
    )
    ok(step(["add", "enc", "--type", "JWK", "--public-key", pub, "--private-key", priv], ca_json))
    assert provisioners(ca_json)["enc"]["encryptedKey"] == compact


def test_add_jwk_public_key_only_from_pem(ca_json: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "key.pem"
    pub.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    ok(step(["add", "pem", "--type", "JWK", "--public-key", pub], ca_json))
    prov = provisioners(ca_json)["pem"]
    assert prov["key"] == public_jwk(key) and "encryptedKey" not in prov


def test_add_jwk_refusals(ca_json: Path, tmp_path: Path, password_file: Path) -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pub, priv = tmp_path / "jwk.pub", tmp_path / "other.priv"
    pub.write_text(json.dumps(public_jwk(key)))
    priv.write_text(json.dumps(private_jwk(other)))
    before = ca_json.read_bytes()
    refused(step(["add", "x", "--type", "JWK"], ca_json), "--public-key")
    refused(
        step(["add", "x", "--type", "JWK", "--create", "--public-key", pub], ca_json),
        "incompatible",
    )
    refused(
        step(
            [
                "add",
                "x",
                "--type",
                "JWK",
                "--public-key",
                pub,
                "--private-key",
                priv,
                "--password-file",
                password_file,
            ],
            ca_json,
        ),
        "does not match",
    )
    refused(
        step(["add", "x", "--type", "JWK", "--public-key", pub, "--private-key", pub], ca_json),
        "private-key is a public key",
    )
    refused(
        step(["add", "x", "--type", "JWK", "--x5c-roots", pub], ca_json),
        "'--x5c-roots' is not valid for a JWK provisioner",
    )
    refused(step(["add", "x", "--type", "SSHPOP"], ca_json), "not supported")
    refused(step(["add", "x", "--type", "Bogus"], ca_json), "--type")
    assert ca_json.read_bytes() == before
    assert not ca_json.with_name("ca.json.bak").exists()


def test_duplicate_name_and_key_are_refused(
    ca_json: Path, tmp_path: Path, password_file: Path
) -> None:
    before = ca_json.read_bytes()
    message = refused(
        step(
            ["add", "admin", "--type", "JWK", "--create", "--password-file", password_file], ca_json
        ),
        "already exists",
    )
    assert "admin" in message
    # the same key under another name
    pub = tmp_path / "admin.pub"
    pub.write_text(json.dumps(provisioners(ca_json)["admin"]["key"]))
    refused(step(["add", "admin2", "--type", "JWK", "--public-key", pub], ca_json), "key id")
    assert ca_json.read_bytes() == before


def test_add_x5c(ca_json: Path, tmp_path: Path) -> None:
    root, _ = _ca_cert("X5C Root")
    other, _ = _ca_cert("Other Root")
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(root.public_bytes(Encoding.PEM) + other.public_bytes(Encoding.PEM))
    ok(step(["add", "x5c", "--type", "X5C", "--x5c-roots", bundle], ca_json))
    prov = provisioners(ca_json)["x5c"]
    assert prov["type"] == "X5C"
    assert x509.load_pem_x509_certificates(base64.b64decode(prov["roots"])) == [root, other]
    cfg = CAConfig.load(ca_json)
    assert ProvisionerRegistry(cfg.provisioners, cfg.claims).by_name("x5c") is not None


def test_add_x5c_refusals(ca_json: Path, tmp_path: Path) -> None:
    leafish, _ = _ca_cert("No Cert Sign", cert_sign=False)
    bad = tmp_path / "bad.pem"
    bad.write_bytes(leafish.public_bytes(Encoding.PEM))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    refused(step(["add", "x5c", "--type", "X5C"], ca_json), "--x5c-roots")
    refused(
        step(["add", "x5c", "--type", "X5C", "--x5c-roots", bad], ca_json), "'Certificate Sign'"
    )
    refused(step(["add", "x5c", "--type", "X5C", "--x5c-roots", junk], ca_json), "error loading")
    refused(
        step(["add", "x5c", "--type", "X5C", "--x5c-roots", tmp_path / "nope"], ca_json),
        "error reading",
    )


def test_add_oidc_without_contacting_the_provider(ca_json: Path) -> None:
    # `.invalid` never resolves: validation must not try.
    endpoint = "https://idp.invalid/.well-known/openid-configuration"
    ok(
        step(
            [
                "add",
                "Google",
                "--type",
                "OIDC",
                "--client-id",
                "cid",
                "--client-secret",
                "s",
                "--configuration-endpoint",
                endpoint,
                "--admin",
                "ops@example.com",
                "--domain",
                "example.com",
                "--listen-address",
                "127.0.0.1:10000",
            ],
            ca_json,
        )
    )
    prov = provisioners(ca_json)["Google"]
    assert prov["clientID"] == "cid" and prov["clientSecret"] == "s"
    assert prov["configurationEndpoint"] == endpoint
    assert prov["admins"] == ["ops@example.com"] and prov["domains"] == ["example.com"]
    assert prov["listenAddress"] == "127.0.0.1:10000"
    refused(
        step(
            [
                "add",
                "G2",
                "--type",
                "OIDC",
                "--client-id",
                "cid",
                "--configuration-endpoint",
                endpoint,
            ],
            ca_json,
        ),
        "not unique",
    )
    refused(
        step(["add", "G3", "--type", "OIDC", "--client-id", "c3"], ca_json),
        "--configuration-endpoint",
    )
    refused(
        step(
            [
                "add",
                "G3",
                "--type",
                "OIDC",
                "--client-id",
                "c3",
                "--configuration-endpoint",
                "ftp://x",
            ],
            ca_json,
        ),
        "invalid value",
    )
    refused(
        step(
            [
                "add",
                "G3",
                "--type",
                "OIDC",
                "--client-id",
                "c3",
                "--configuration-endpoint",
                endpoint,
                "--listen-address",
                "nope",
            ],
            ca_json,
        ),
        "host:port",
    )


def test_add_cloud_provisioners(ca_json: Path, tmp_path: Path) -> None:
    iid = tmp_path / "aws.pem"
    iid.write_bytes(_ca_cert("AWS")[0].public_bytes(Encoding.PEM))
    ok(
        step(
            [
                "add",
                "Amazon",
                "--type",
                "AWS",
                "--aws-account",
                "123456789",
                "--disable-custom-sans",
                "--disable-tofu",
                "--instance-age",
                "1h",
                "--iid-roots",
                iid,
            ],
            ca_json,
        )
    )
    ok(
        step(
            [
                "add",
                "Google",
                "--type",
                "GCP",
                "--gcp-project",
                "p1",
                "--gcp-service-account",
                "sa@p1.iam.gserviceaccount.com",
            ],
            ca_json,
        )
    )
    ok(
        step(
            [
                "add",
                "Azure",
                "--type",
                "Azure",
                "--azure-tenant",
                "tid",
                "--azure-resource-group",
                "rg1",
                "--azure-subscription-id",
                "sub1",
            ],
            ca_json,
        )
    )
    provs = provisioners(ca_json)
    assert provs["Amazon"] == {
        "type": "AWS",
        "name": "Amazon",
        "accounts": ["123456789"],
        "disableCustomSANs": True,
        "disableTrustOnFirstUse": True,
        "instanceAge": "1h",
        "iidRoots": str(iid.resolve()),
        "claims": {
            "disableRenewal": False,
            "allowRenewalAfterExpiry": False,
            "disableSmallstepExtensions": False,
        },
    }
    assert provs["Google"]["projectIDs"] == ["p1"]
    assert provs["Google"]["serviceAccounts"] == ["sa@p1.iam.gserviceaccount.com"]
    assert provs["Google"]["disableTrustOnFirstUse"] is False
    assert provs["Azure"]["tenantID"] == "tid"
    assert provs["Azure"]["resourceGroups"] == ["rg1"]
    assert provs["Azure"]["subscriptionIDs"] == ["sub1"]
    refused(step(["add", "A2", "--type", "Azure"], ca_json), "--azure-tenant")
    refused(
        step(["add", "A3", "--type", "AWS", "--instance-age", "soon"], ca_json), "--instance-age"
    )
    refused(
        step(["add", "A4", "--type", "GCP", "--azure-tenant", "x"], ca_json),
        "not valid for a GCP provisioner",
    )


def test_add_acme(ca_json: Path) -> None:
    ok(step(["add", "acme", "--type", "acme"], ca_json))
    args = ["add", "strict", "--type", "ACME", "--challenge", "HTTP-01", "--challenge", "dns-01"]
    ok(step([*args, "--challenge", "http-01", "--force-cn", "--require-eab"], ca_json))
    provs = provisioners(ca_json)
    claims = {
        "disableRenewal": False,
        "allowRenewalAfterExpiry": False,
        "disableSmallstepExtensions": False,
    }
    assert provs["acme"] == {"type": "ACME", "name": "acme", "claims": claims}
    assert provs["strict"] == {
        "type": "ACME",
        "name": "strict",
        "challenges": ["http-01", "dns-01"],
        "forceCN": True,
        "requireEAB": True,
        "claims": claims,
    }
    # What was written loads as the CA loads it.
    cfg = CAConfig.load(ca_json)
    prov = ProvisionerRegistry(cfg.provisioners, cfg.claims).by_name("strict")
    assert prov is not None and prov.id == "acme/strict"

    before = ca_json.read_bytes()
    refused(
        step(["add", "x", "--type", "ACME", "--challenge", "email-01"], ca_json),
        "invalid value 'email-01' for flag '--challenge': options are http-01, dns-01",
    )
    refused(
        step(["add", "x", "--type", "JWK", "--create", "--force-cn"], ca_json),
        "'--force-cn' is not valid for a JWK provisioner",
    )
    refused(
        step(["add", "x", "--type", "ACME", "--x5c-roots", str(ca_json)], ca_json),
        "'--x5c-roots' is not valid for a ACME provisioner",
    )
    assert ca_json.read_bytes() == before


# --- update ---------------------------------------------------------------------------------


def test_update_claims_and_switches(ca_json: Path) -> None:
    ok(
        step(
            [
                "update",
                "admin",
                "--x509-max-dur",
                "72h",
                "--x509-default-dur",
                "48h",
                "--disable-renewal",
            ],
            ca_json,
        )
    )
    assert provisioners(ca_json)["admin"]["claims"] == {
        "maxTLSCertDuration": "72h",
        "defaultTLSCertDuration": "48h",
        "disableRenewal": True,
    }
    ok(step(["update", "admin", "--no-disable-renewal", "--x509-max-dur", ""], ca_json))
    # Without its own max the 48 h default is above the 24 h global max: step-ca's quirk
    # drags the max up to the default, so this is still valid.
    claims = provisioners(ca_json)["admin"]["claims"]
    assert claims == {"defaultTLSCertDuration": "48h", "disableRenewal": False}


def test_update_acme(ca_json: Path) -> None:
    ok(step(["add", "acme", "--type", "ACME", "--challenge", "http-01", "--force-cn"], ca_json))
    update = ["update", "acme", "--challenge", "dns-01", "--remove-challenge", "HTTP-01"]
    ok(step([*update, "--require-eab", "--no-force-cn", "--disable-renewal"], ca_json))
    prov = provisioners(ca_json)["acme"]
    assert prov["challenges"] == ["dns-01"]
    assert (prov["requireEAB"], "forceCN" in prov) == (True, False)
    assert prov["claims"]["disableRenewal"] is True
    ok(step(["update", "acme", "--remove-challenge", "dns-01", "--no-require-eab"], ca_json))
    prov = provisioners(ca_json)["acme"]
    assert "challenges" not in prov and "requireEAB" not in prov  # step-ca's default again
    refused(
        step(["update", "acme", "--remove-challenge", "http-2"], ca_json),
        "for flag '--remove-challenge'",
    )
    refused(step(["update", "admin", "--challenge", "http-01"], ca_json), "not valid for a JWK")


def test_update_refused_by_validation_leaves_ca_json_untouched(ca_json: Path) -> None:
    ok(step(["update", "admin", "--x509-default-dur", "1h"], ca_json))
    before = ca_json.read_bytes()
    backup_before = ca_json.with_name("ca.json.bak").read_bytes()
    message = refused(step(["update", "admin", "--x509-min-dur", "2h"], ca_json), "claims")
    assert "defaultTLSCertDuration" in message
    refused(step(["update", "admin", "--x509-min-dur", "forever"], ca_json), "invalid value")
    assert ca_json.read_bytes() == before
    assert ca_json.with_name("ca.json.bak").read_bytes() == backup_before


def test_update_jwk_key(ca_json: Path, password_file: Path) -> None:
    old = provisioners(ca_json)["admin"]
    ok(step(["update", "admin", "--create", "--password-file", password_file], ca_json))
    new = provisioners(ca_json)["admin"]
    assert new["key"]["kid"] != old["key"]["kid"]
    assert public_jwk(key_from_jwk(decrypt_jwk(new["encryptedKey"], PASSWORD))) == new["key"]
    ok(step(["update", "admin", "--private-key", ""], ca_json))
    assert "encryptedKey" not in provisioners(ca_json)["admin"]


def test_update_x5c_roots(ca_json: Path, tmp_path: Path) -> None:
    first, second = _ca_cert("First")[0], _ca_cert("Second")[0]
    a, b = tmp_path / "a.pem", tmp_path / "b.pem"
    a.write_bytes(first.public_bytes(Encoding.PEM))
    b.write_bytes(second.public_bytes(Encoding.PEM))
    ok(step(["add", "x5c", "--type", "X5C", "--x5c-roots", a], ca_json))
    ok(
        step(
            ["update", "x5c", "--x5c-roots", b, "--x509-max-dur", "1h", "--x509-default-dur", "1h"],
            ca_json,
        )
    )
    prov = provisioners(ca_json)["x5c"]
    assert x509.load_pem_x509_certificates(base64.b64decode(prov["roots"])) == [second]
    assert prov["claims"]["maxTLSCertDuration"] == "1h"


def test_update_oidc_lists(ca_json: Path) -> None:
    endpoint = "https://idp.invalid"
    ok(
        step(
            [
                "add",
                "o",
                "--type",
                "OIDC",
                "--client-id",
                "c",
                "--configuration-endpoint",
                endpoint,
                "--admin",
                "a@x",
                "--admin",
                "b@x",
            ],
            ca_json,
        )
    )
    ok(step(["update", "o", "--remove-admin", "a@x", "--admin", "c@x", "--group", "g"], ca_json))
    prov = provisioners(ca_json)["o"]
    assert prov["admins"] == ["b@x", "c@x"] and prov["groups"] == ["g"]


def test_update_refusals(ca_json: Path, tmp_path: Path) -> None:
    before = ca_json.read_bytes()
    refused(step(["update", "nope", "--disable-renewal"], ca_json), "not found")
    refused(
        step(["update", "admin", "--client-id", "x"], ca_json), "not valid for a JWK provisioner"
    )
    assert ca_json.read_bytes() == before


# --- remove ---------------------------------------------------------------------------------


def test_remove(ca_json: Path, password_file: Path) -> None:
    ok(step(["add", "a", "--type", "JWK", "--create", "--password-file", password_file], ca_json))
    with_a = ca_json.read_bytes()
    result = ok(step(["remove", "a"], ca_json))
    assert RELOAD_MESSAGE in result.output
    assert "a" not in provisioners(ca_json) and "admin" in provisioners(ca_json)
    assert ca_json.with_name("ca.json.bak").read_bytes() == with_a
    before = ca_json.read_bytes()
    refused(step(["remove", "a"], ca_json), "not found")
    assert ca_json.read_bytes() == before


def test_missing_or_broken_ca_json(tmp_path: Path) -> None:
    refused(step(["remove", "a"], tmp_path / "none.json"), "no such file")
    broken = tmp_path / "ca.json"
    broken.write_text("{not json")
    refused(step(["remove", "a"], broken), "error parsing")
    assert broken.read_text() == "{not json"


# --- the editor -----------------------------------------------------------------------------


def test_edit_through_a_symlink_keeps_the_link(ca_json: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(ca_json)
    prov = {"type": "JWK", "name": "s", "key": public_jwk(ec.generate_private_key(ec.SECP256R1()))}
    result = add_provisioner(link, prov)
    assert link.is_symlink() and result.path == ca_json.resolve()
    assert "s" in provisioners(ca_json)


def test_concurrent_change_is_detected(ca_json: Path) -> None:
    before = ca_json.read_bytes()

    def change(raw: dict[str, Any]) -> None:
        ca_json.write_bytes(before.replace(b'"admin"', b'"admin-renamed"'))
        raw["authority"]["provisioners"][0]["claims"] = {"disableRenewal": True}

    with pytest.raises(ConfigEditError, match="changed by someone else"):
        edit_config(ca_json, change)
    assert b"admin-renamed" in ca_json.read_bytes()


def test_validate_refuses_what_the_ca_refuses(ca_json: Path) -> None:
    raw = json.loads(ca_json.read_text())
    assert validate(raw, ca_json) == []
    bad = json.loads(ca_json.read_text())
    del bad["crt"]
    with pytest.raises(ConfigEditError, match="crt"):
        validate(bad, ca_json)
    bad = json.loads(ca_json.read_text())
    bad["authority"]["provisioners"].append({"type": "X5C", "name": "x", "roots": "!!"})
    with pytest.raises(ConfigEditError, match="base64"):
        validate(bad, ca_json)
    bad = json.loads(ca_json.read_text())
    bad["authority"]["provisioners"].append({"type": "Azure", "name": "az"})
    with pytest.raises(ConfigEditError, match="tenantID"):
        validate(bad, ca_json)
    bad = json.loads(ca_json.read_text())
    bad["authority"]["provisioners"].append(
        {"type": "GCP", "name": "g", "projectIDs": ["p"], "organizationID": "o"}
    )
    with pytest.raises(ConfigEditError, match="organizationID"):
        validate(bad, ca_json)


def test_validate_reports_provisioners_that_will_start_disabled(ca_json: Path) -> None:
    raw = json.loads(ca_json.read_text())
    raw["authority"]["provisioners"].append({"type": "SCEP", "name": "scep"})
    warnings = validate(raw, ca_json)
    assert len(warnings) == 1 and "scep" in warnings[0]


def test_acme_device_attestation_flags(ca_json: Path, tmp_path: Path) -> None:
    """`--attestation-format` and `--attestation-roots` (a PEM bundle, written base64 as
    step-ca reads `attestationRoots`); the CA loads what was written."""
    roots = tmp_path / "roots.pem"
    roots.write_bytes((ca_json.parent.parent / "certs" / "root_ca.crt").read_bytes())
    ok(step(["add", "da", "--type", "ACME", "--challenge", "device-attest-01",
             "--attestation-format", "STEP", "--attestation-format", "tpm",
             "--attestation-roots", roots], ca_json))  # fmt: skip
    prov = provisioners(ca_json)["da"]
    assert prov["attestationFormats"] == ["step", "tpm"]
    assert base64.b64decode(prov["attestationRoots"]) == roots.read_bytes()
    cfg = CAConfig.load(ca_json)
    assert ProvisionerRegistry(cfg.provisioners, cfg.claims).by_name("da") is not None
    ok(step(["update", "da", "--remove-attestation-format", "tpm"], ca_json))
    assert provisioners(ca_json)["da"]["attestationFormats"] == ["step"]
    refused(
        step(["update", "da", "--attestation-format", "sgx"], ca_json),
        "invalid value 'sgx' for flag '--attestation-format': options are apple, step, tpm "
        "and android-key",
    )
    refused(
        step(["update", "da", "--attestation-roots", tmp_path / "missing.pem"], ca_json), "missing"
    )
