"""A compatible CA starts from step-ca's own test configuration and serves it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography import x509

from appliance.authority import Authority
from appliance.config import CAConfig
from provisioners.extension import ProvisionerExtension
from tests.appliance.conftest import TESTDATA, TokenMaker, make_csr


@pytest.fixture
def stepca_authority(steppath: Path) -> Authority:
    steppath.mkdir(parents=True)
    raw = json.loads((TESTDATA / "ca.json").read_text())
    for key in ("root", "crt", "key"):
        raw[key] = str(TESTDATA / "secrets" / Path(raw[key]).name)
    raw["federatedRoots"] = [
        str(TESTDATA / "secrets" / Path(p).name) for p in raw["federatedRoots"]
    ]
    raw["address"] = "127.0.0.1:9000"
    raw["db"] = {"type": "badgerv2", "dataSource": str(steppath / "db")}
    path = steppath / "ca.json"
    path.write_text(json.dumps(raw))
    shutil.copy(TESTDATA / "secrets" / "root_ca.crt", steppath / "root.crt")
    auth = Authority.open(CAConfig.load(path))  # the password comes from ca.json, as step-ca allows
    auth.start_time -= 5
    return auth


@pytest.mark.parametrize(
    "name", sorted(p.name for p in TESTDATA.glob("*.json")), ids=lambda name: name
)
def test_every_step_ca_test_config_passes_the_schema(name: str) -> None:
    """All of step-ca's own configurations (SCEP provisioner, legacy cipher-suite names,
    unknown `_logger`, empty federatedRoots) are valid as they are."""
    raw = json.loads((TESTDATA / name).read_text())
    cfg = CAConfig.from_raw(raw, TESTDATA / name)
    assert cfg.port == 0 and cfg.dns_names == ["127.0.0.1"]
    assert cfg.tls_options()["cipherSuites"] == raw["tls"]["cipherSuites"]
    assert [p.name for p in cfg.provisioners] == [
        p["name"] for p in raw["authority"]["provisioners"]
    ]


def test_legacy_keys_and_provisioners_load(stepca_authority: Authority) -> None:
    names = [p.name for p in stepca_authority.registry]
    assert names == ["max", "mike", "step-cli", "mariano", "maxey"]
    assert len(stepca_authority.federation()) == 2


@pytest.mark.parametrize(("name", "password"), [("step-cli", b"pass"), ("mariano", b"password")])
def test_signs_with_old_format_provisioner_keys(
    stepca_authority: Authority, name: str, password: bytes
) -> None:
    token = TokenMaker(stepca_authority, password, name)
    cert = stepca_authority.sign(make_csr("foo.test", []), token("foo.test")).certificate
    ext = ProvisionerExtension.from_certificate(cert)
    assert ext is not None and ext.name == name
    # authority.template from the config fills the subject; backdate is 0s there.
    subject = {a.oid._name: a.value for a in cert.subject}
    assert subject["countryName"] == "US" and subject["organizationName"] == "Smallstep"
    assert cert.not_valid_before_utc.timestamp() >= stepca_authority.start_time - 1
    cert.verify_directly_issued_by(stepca_authority.intermediates[0])
    assert isinstance(cert, x509.Certificate)
