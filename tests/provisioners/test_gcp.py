"""The GCP provisioner and its client flow, against a metadata server and JWKS on 127.0.0.1."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509

from api.errors import http_error
from cli.ca import cloud_flows
from cli.ca.cloud_flows import default_sans, gcp_identity_token
from cli.common import CLIError
from pki.errors import CAError, ErrorKind
from provisioners.audience import Method, audiences
from provisioners.base import ProvisionerConfigError, ProvisionerInitError, token_hash
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.gcp import GCPProvisioner, internal_dns_names
from provisioners.iid import ALLOWED_COMMON_NAMES, FOREVER
from provisioners.registry import DisabledProvisioner, parse_token
from provisioners.schema import GCPSchema, parse_provisioner
from tests.cloud_metadata import (
    CA_DNS,
    GCP_CERTS_PATH,
    GCP_IDENTITY_PATH,
    CloudMetadataServer,
    make_authority,
    rsa_key,
    sign_audience,
)
from tests.e2e.harness import csr_pem, make_csr
from tests.provisioners.iid_helpers import SIGN, authorize, refused, registry

CA_URL = f"https://{CA_DNS}:9000"
AUD = sign_audience(CA_DNS, "gcp/gcp")
INSTANCE_ID = "5712345678901234567"


@pytest.fixture
def server() -> Iterator[CloudMetadataServer]:
    with CloudMetadataServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gcp-pki")


def config(server: CloudMetadataServer, **fields: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"type": "GCP", "name": "gcp", "certsURL": server.gcp_certs_url}
    cfg.update(fields)
    return {k: v for k, v in cfg.items() if v is not None}


def provisioner(server: CloudMetadataServer, **fields: Any) -> GCPProvisioner:
    entry = parse_provisioner(config(server, **fields))
    assert isinstance(entry, GCPSchema)
    return GCPProvisioner(entry, Claims())


def tofu(instance: str = INSTANCE_ID, name: str = "gcp") -> str:
    return hashlib.sha256(f"gcp/{name}.{instance}".encode()).hexdigest()


# --- the client flow -------------------------------------------------------------------------


def test_flow_token_is_accepted(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    token = gcp_identity_token(server.url, prov.to_json(), CA_URL)
    (request,) = server.seen(GCP_IDENTITY_PATH)
    assert request.headers["metadata-flavor"] == "Google"
    assert request.query == {"audience": [AUD], "format": ["full"], "licenses": ["FALSE"]}
    assert jwt.get_unverified_header(token)["kid"] == "google-key-1"

    opts = authorize(prov, token)
    assert opts.subject == "vm-1"
    assert opts.names_from_csr and opts.sans == ()
    assert opts.token_id == tofu()
    assert opts.token_expires == FOREVER
    assert opts.extension == ProvisionerExtension(
        int(ProvisionerType.GCP),
        "gcp",
        server.gcp.subject,
        ("InstanceID", INSTANCE_ID, "InstanceName", "vm-1"),
    )
    assert server.seen(GCP_CERTS_PATH)  # the JWKS was fetched at start


def test_flow_errors(server: CloudMetadataServer) -> None:
    with pytest.raises(CLIError, match="status=404"):
        gcp_identity_token(server.url + "/x", config(server), CA_URL)
    url = server.url
    server.close()
    with pytest.raises(CLIError, match="are you in a GCP VM"):
        gcp_identity_token(url, config(server), CA_URL)
    assert cloud_flows.GCP_METADATA_ENV == "STEP_GCP_METADATA_URL"


def test_default_sans_for_the_csr(server: CloudMetadataServer) -> None:
    token = server.gcp.token(AUD)
    names = list(internal_dns_names("vm-1", "us-central1-a", "my-project"))
    assert default_sans(token, "vm-1", False) == [*names, "vm-1"]
    assert default_sans(token, "vm-1", True) == names


# --- refusals --------------------------------------------------------------------------------


def test_service_accounts(server: CloudMetadataServer) -> None:
    token = server.gcp.token(AUD)
    assert authorize(provisioner(server, serviceAccounts=[server.gcp.subject]), token)
    assert authorize(provisioner(server, serviceAccounts=[server.gcp.email]), token)
    err = refused(provisioner(server, serviceAccounts=["other@x.iam.gserviceaccount.com"]), token)
    assert "invalid subject" in err.reason


def test_wrong_project(server: CloudMetadataServer) -> None:
    token = server.gcp.token(AUD)
    assert authorize(provisioner(server, projectIDs=["other", "my-project"]), token)
    err = refused(provisioner(server, projectIDs=["other-project"]), token)
    assert "invalid project id" in err.reason


def test_instance_too_old(server: CloudMetadataServer) -> None:
    prov = provisioner(server, instanceAge="1h")
    assert authorize(prov, server.gcp.token(AUD))
    server.gcp.compute_engine["instance_creation_timestamp"] = int(time.time()) - 7200
    assert "too old" in refused(prov, server.gcp.token(AUD)).reason
    del server.gcp.compute_engine["instance_creation_timestamp"]
    refused(prov, server.gcp.token(AUD))


def test_expired_and_not_yet_valid(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    now = int(time.time())
    assert "expired" in refused(prov, server.gcp.token(AUD, iat=now - 7200, exp=now - 3600)).reason
    assert authorize(prov, server.gcp.token(AUD, iat=now - 3600, exp=now - 30))  # leeway
    refused(prov, server.gcp.token(AUD, nbf=now + 600))
    refused(prov, server.gcp.token(AUD, iat=now + 600))
    refused(prov, server.gcp.token(AUD, exp=None))


def test_unknown_kid_and_wrong_key(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    err = refused(prov, server.gcp.token(AUD, kid="unknown-kid"))
    assert "cannot find key for kid unknown-kid" in err.reason
    refused(prov, server.gcp.token(AUD, key=rsa_key("not-google")))
    token = server.gcp.token(AUD)
    head, payload, sig = token.split(".")
    refused(prov, f"{head}.{payload}.{sig[:-4]}AAAA")


def test_wrong_audience(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    for aud in (
        "https://other.test:9000/1.0/sign#gcp/gcp",
        "https://ca.test:9000/1.0/sign",
        "https://ca.test:9000/1.0/sign#gcp/other",
        "https://ca.test:9000/1.0/sign#aws/gcp",
    ):
        assert "invalid audience" in refused(prov, server.gcp.token(aud)).reason


def test_wrong_issuer(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    refused(prov, server.gcp.token(AUD, iss="accounts.google.com"))
    custom = provisioner(server, issuer="https://issuer.test")
    refused(custom, server.gcp.token(AUD))
    assert authorize(custom, server.gcp.token(AUD, iss="https://issuer.test"))


def test_compute_engine_fields_required(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    for key in ("instance_id", "instance_name", "project_id", "zone"):
        saved = server.gcp.compute_engine.pop(key)
        assert "cannot be empty" in refused(prov, server.gcp.token(AUD)).reason
        server.gcp.compute_engine[key] = saved
    refused(prov, server.gcp.token(AUD, google=None))
    refused(prov, server.gcp.token(AUD, google={"compute_engine": {"instance_id": 5}}))


def test_disable_custom_sans(server: CloudMetadataServer) -> None:
    opts = authorize(provisioner(server, disableCustomSANs=True), server.gcp.token(AUD))
    names = internal_dns_names("vm-1", "us-central1-a", "my-project")
    assert not opts.names_from_csr
    assert opts.subject == "vm-1" and opts.sans == names
    assert opts.extra[ALLOWED_COMMON_NAMES] == ("vm-1", INSTANCE_ID, *names)


def test_disable_trust_on_first_use(server: CloudMetadataServer) -> None:
    token = server.gcp.token(AUD)
    opts = authorize(provisioner(server, disableTrustOnFirstUse=True), token)
    assert opts.token_id == token_hash(token)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert opts.token_expires == datetime.fromtimestamp(exp, UTC)


def test_revoke_is_not_allowed(server: CloudMetadataServer) -> None:
    with pytest.raises(CAError):
        provisioner(server).authorize(
            parse_token(server.gcp.token(AUD)), Method.REVOKE, audiences([CA_DNS], Method.REVOKE)
        )


# --- configuration ---------------------------------------------------------------------------


def test_config_errors(server: CloudMetadataServer) -> None:
    with pytest.raises(ProvisionerConfigError):
        provisioner(server, projectIDs="my-project")
    with pytest.raises(ProvisionerConfigError):
        provisioner(server, serviceAccounts=[1])
    with pytest.raises(ProvisionerInitError, match="both"):
        provisioner(server, projectIDs=["p"], organizationID="1234")
    with pytest.raises(ProvisionerInitError, match="organizationID"):
        provisioner(server, organizationID="1234")
    with pytest.raises(ProvisionerInitError, match="negative"):
        provisioner(server, instanceAge="-5m")
    with pytest.raises(ProvisionerInitError, match="https"):
        provisioner(server, certsURL="http://jwks.example/certs")


def test_unreachable_jwks_disables_the_provisioner(server: CloudMetadataServer) -> None:
    with pytest.raises(ProvisionerInitError):
        provisioner(server, certsURL=server.url + "/no-such-jwks")
    reg = registry(config(server, certsURL=server.url + "/404"))
    (prov,) = list(reg)
    assert isinstance(prov, DisabledProvisioner)
    assert prov.to_json()["state"] == "Uninitialized"
    token = parse_token(server.gcp.token(AUD))
    found = reg.for_token(token, SIGN)  # routed to the disabled stand-in by its fragment
    with pytest.raises(CAError) as err:
        found.authorize(token, Method.SIGN, SIGN)
    assert err.value.kind is ErrorKind.UNAUTHORIZED
    message = 'provisioner "gcp" is disabled due to an initialization error'
    assert http_error(err.value) == (401, message)


def test_registry_finds_it_by_audience_fragment(server: CloudMetadataServer) -> None:
    reg = registry(config(server, name="other"), config(server))
    assert reg.for_token(parse_token(server.gcp.token(AUD)), SIGN).name == "gcp"


# --- through the CA core ---------------------------------------------------------------------


def test_sign_once_per_instance(server: CloudMetadataServer, pki_dir: Path, tmp_path: Path) -> None:
    cfg = config(server)
    auth = make_authority(pki_dir, tmp_path, [cfg])
    try:
        csr = csr_pem(make_csr("vm-1", ["vm-1.c.my-project.internal"]))
        leaf = auth.sign(csr, gcp_identity_token(server.url, cfg, CA_URL)).certificate
        assert leaf.subject.rfc4514_string() == "CN=vm-1"
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["vm-1.c.my-project.internal"]
        ext = ProvisionerExtension.from_certificate(leaf)
        assert ext is not None and ext.type == ProvisionerType.GCP
        assert ext.key_value_pairs == ("InstanceID", INSTANCE_ID, "InstanceName", "vm-1")
        with pytest.raises(CAError) as err:  # trust on first use: one certificate per VM
            auth.sign(csr, gcp_identity_token(server.url, cfg, CA_URL))
        assert err.value.kind is ErrorKind.UNAUTHORIZED
        server.gcp.compute_engine["instance_id"] = "1"
        auth.sign(csr, gcp_identity_token(server.url, cfg, CA_URL))
    finally:
        auth.repository.engine.dispose()


def test_sign_with_disable_custom_sans(
    server: CloudMetadataServer, pki_dir: Path, tmp_path: Path
) -> None:
    cfg = config(server, disableCustomSANs=True, disableTrustOnFirstUse=True)
    auth = make_authority(pki_dir, tmp_path, [cfg])
    names = list(internal_dns_names("vm-1", "us-central1-a", "my-project"))
    try:
        with pytest.raises(CAError) as err:
            auth.sign(
                csr_pem(make_csr("vm-1", ["evil.example.com"])),
                gcp_identity_token(server.url, cfg, CA_URL),
            )
        assert err.value.kind is ErrorKind.FORBIDDEN
        leaf = auth.sign(
            csr_pem(make_csr("vm-1", names)), gcp_identity_token(server.url, cfg, CA_URL)
        ).certificate
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == names
    finally:
        auth.repository.engine.dispose()


def test_init_error_keeps_the_lookup_keys(server: CloudMetadataServer) -> None:
    with pytest.raises(ProvisionerInitError) as err:
        provisioner(server, certsURL=server.url + "/404")
    assert getattr(err.value, "lookup_keys", None) == ["gcp/gcp"]
