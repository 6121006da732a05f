"""The Azure provisioner and its client flow, against IMDS, discovery and JWKS on 127.0.0.1."""

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

from cli.ca import cloud_flows
from cli.ca.cloud_flows import azure_identity_token, default_sans
from cli.common import CLIError
from pki.errors import CAError, ErrorKind
from provisioners.audience import Method, audiences
from provisioners.azure import AzureProvisioner
from provisioners.base import ProvisionerConfigError, ProvisionerInitError
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.iid import FOREVER
from provisioners.registry import DisabledProvisioner, parse_token
from provisioners.schema import AzureSchema, parse_provisioner
from tests.cloud_metadata import (
    AZURE_ENVIRONMENT_PATH,
    AZURE_RESOURCE,
    AZURE_TOKEN_PATH,
    CA_DNS,
    CloudMetadataServer,
    make_authority,
    rsa_key,
)
from tests.e2e.harness import csr_pem, make_csr
from tests.provisioners.iid_helpers import SIGN, authorize, refused, registry


@pytest.fixture
def server() -> Iterator[CloudMetadataServer]:
    with CloudMetadataServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("azure-pki")


def config(server: CloudMetadataServer, **fields: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "type": "Azure",
        "name": "azure",
        "tenantID": server.azure.tenant_id,
        "oidcDiscoveryURL": server.azure_discovery_url,
    }
    cfg.update(fields)
    return {k: v for k, v in cfg.items() if v is not None}


def provisioner(server: CloudMetadataServer, **fields: Any) -> AzureProvisioner:
    entry = parse_provisioner(config(server, **fields))
    assert isinstance(entry, AzureSchema)
    return AzureProvisioner(entry, Claims())


# --- the client flow -------------------------------------------------------------------------


def test_flow_token_is_accepted(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    token = azure_identity_token(server.url)
    (env,) = server.seen(AZURE_ENVIRONMENT_PATH)
    assert env.headers["metadata"] == "True" and env.query["format"] == ["text"]
    (req,) = server.seen(AZURE_TOKEN_PATH)
    assert req.headers["metadata"] == "true"
    assert req.query == {"resource": [AZURE_RESOURCE], "api-version": ["2018-02-01"]}

    opts = authorize(prov, token)
    assert opts.subject == "web-vm-1"
    assert opts.names_from_csr and opts.sans == ()
    assert opts.token_id == hashlib.sha256(server.azure.xms_mirid.encode()).hexdigest()
    assert opts.token_expires == FOREVER
    assert opts.extension == ProvisionerExtension(
        int(ProvisionerType.AZURE), "azure", server.azure.tenant_id
    )


def test_flow_picks_the_resource_of_the_cloud(server: CloudMetadataServer) -> None:
    server.azure.environment = "AzureUSGovernmentCloud"
    token = azure_identity_token(server.url)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "https://management.usgovcloudapi.net/"
    refused(provisioner(server), token)
    assert authorize(provisioner(server, audience="https://management.usgovcloudapi.net/"), token)


def test_flow_errors(server: CloudMetadataServer) -> None:
    with pytest.raises(CLIError, match="azure environment"):
        azure_identity_token(server.url + "/x")
    url = server.url
    server.close()
    with pytest.raises(CLIError, match="are you in a Azure VM"):
        azure_identity_token(url)
    assert cloud_flows.AZURE_METADATA_ENV == "STEP_AZURE_METADATA_URL"


def test_default_sans_for_the_csr(server: CloudMetadataServer) -> None:
    token = server.azure.token()
    assert default_sans(token, "web.example", False) == ["web-vm-1", "web.example"]
    assert default_sans(token, "web-vm-1", True) == ["web-vm-1"]


# --- refusals --------------------------------------------------------------------------------


def test_registry_finds_it_by_tenant(server: CloudMetadataServer) -> None:
    reg = registry(config(server))
    assert reg.for_token(parse_token(server.azure.token()), SIGN).name == "azure"
    with pytest.raises(CAError) as err:  # another tenant's token finds no provisioner
        reg.for_token(
            parse_token(server.azure.token(tid="11111111-2222-3333-4444-555555555555")), SIGN
        )
    assert err.value.kind is ErrorKind.UNAUTHORIZED


def test_wrong_tenant(server: CloudMetadataServer) -> None:
    err = refused(provisioner(server), server.azure.token(tid="another-tenant"))
    assert "invalid tenant id" in err.reason


def test_wrong_resource_group(server: CloudMetadataServer) -> None:
    token = server.azure.token()
    assert authorize(provisioner(server, resourceGroups=["rg-web"]), token)
    err = refused(provisioner(server, resourceGroups=["rg-db"]), token)
    assert "invalid resource group" in err.reason


def test_wrong_subscription(server: CloudMetadataServer) -> None:
    token = server.azure.token()
    assert authorize(provisioner(server, subscriptionIDs=[server.azure.subscription]), token)
    err = refused(
        provisioner(server, subscriptionIDs=["00000000-0000-0000-0000-000000000000"]), token
    )
    assert "invalid subscription id" in err.reason


def test_wrong_object_id(server: CloudMetadataServer) -> None:
    token = server.azure.token()
    assert authorize(provisioner(server, objectIDs=[server.azure.object_id]), token)
    err = refused(provisioner(server, objectIDs=["someone-else"]), token)
    assert "invalid identity object id" in err.reason


def test_wrong_audience(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    assert "invalid audience" in refused(prov, server.azure.token("https://vault.azure.net")).reason
    assert authorize(prov, server.azure.token(aud=["https://x.test", AZURE_RESOURCE]))
    custom = provisioner(server, audience="api://stepstone")
    refused(custom, server.azure.token())
    assert authorize(custom, server.azure.token("api://stepstone"))


def test_wrong_issuer(server: CloudMetadataServer) -> None:
    token = server.azure.token(iss="https://sts.windows.net/another/")
    assert "invalid issuer" in refused(provisioner(server), token).reason


def test_expired_and_not_yet_valid(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    now = int(time.time())
    assert (
        "expired"
        in refused(prov, server.azure.token(iat=now - 7200, nbf=now - 7200, exp=now - 3600)).reason
    )
    refused(prov, server.azure.token(nbf=now + 600))
    refused(prov, server.azure.token(exp=None))


def test_unknown_kid_and_wrong_key(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    assert "cannot validate" in refused(prov, server.azure.token(kid="unknown")).reason
    refused(prov, server.azure.token(key=rsa_key("not-microsoft")))


def test_xms_mirid_must_name_a_vm_or_identity(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    for bad in (
        None,
        "",
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/x",
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/a/b",
    ):
        assert "xms_mirid" in refused(prov, server.azure.token(xms_mirid=bad)).reason
    identity = (
        "/subscriptions/s/resourceGroups/g/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/my-id"
    )
    assert authorize(prov, server.azure.token(xms_mirid=identity)).subject == "my-id"


def test_disable_custom_sans(server: CloudMetadataServer) -> None:
    opts = authorize(provisioner(server, disableCustomSANs=True), server.azure.token())
    assert not opts.names_from_csr
    assert opts.subject == "web-vm-1" and opts.sans == ("web-vm-1",)


def test_disable_trust_on_first_use_allows_reuse(server: CloudMetadataServer) -> None:
    prov = provisioner(server, disableTrustOnFirstUse=True)
    token = server.azure.token()
    first, second = authorize(prov, token), authorize(prov, token)
    assert first.token_id != second.token_id
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert first.token_expires == datetime.fromtimestamp(exp, UTC)


def test_revoke_is_not_allowed(server: CloudMetadataServer) -> None:
    with pytest.raises(CAError):
        provisioner(server).authorize(
            parse_token(server.azure.token()), Method.REVOKE, audiences([CA_DNS], Method.REVOKE)
        )


# --- configuration ---------------------------------------------------------------------------


def test_config_errors(server: CloudMetadataServer) -> None:
    with pytest.raises(ProvisionerInitError, match="tenantId cannot be empty"):
        provisioner(server, tenantID=None)
    with pytest.raises(ProvisionerConfigError):
        provisioner(server, resourceGroups="rg")
    with pytest.raises(ProvisionerConfigError):
        provisioner(server, disableTrustOnFirstUse=1)


def test_discovery(server: CloudMetadataServer) -> None:
    template = server.url + "/{tenantid}/.well-known/openid-configuration"
    assert provisioner(server, oidcDiscoveryURL=template).issuer == server.azure.iss
    with pytest.raises(ProvisionerInitError):
        provisioner(server, oidcDiscoveryURL=server.url + "/nope/.well-known/openid-configuration")
    with pytest.raises(ProvisionerInitError, match="https"):
        provisioner(server, oidcDiscoveryURL="http://login.example/x")
    reg = registry(config(server, oidcDiscoveryURL=server.url + "/404"))
    (prov,) = list(reg)
    assert isinstance(prov, DisabledProvisioner)


def test_jwks_and_issuer_without_discovery(server: CloudMetadataServer) -> None:
    prov = provisioner(
        server,
        oidcDiscoveryURL=server.url + "/404",  # not fetched
        jwksURL=server.azure_jwks_url,
        issuer=server.azure.iss,
    )
    assert authorize(prov, server.azure.token()).subject == "web-vm-1"


# --- through the CA core ---------------------------------------------------------------------


def test_sign_once_per_identity(server: CloudMetadataServer, pki_dir: Path, tmp_path: Path) -> None:
    auth = make_authority(pki_dir, tmp_path, [config(server)])
    try:
        csr = csr_pem(make_csr("web-vm-1", ["web-vm-1", "web.example"]))
        leaf = auth.sign(csr, azure_identity_token(server.url)).certificate
        assert leaf.subject.rfc4514_string() == "CN=web-vm-1"
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["web-vm-1", "web.example"]
        ext = ProvisionerExtension.from_certificate(leaf)
        assert ext is not None and ext.type == ProvisionerType.AZURE
        assert ext.credential_id == server.azure.tenant_id
        with pytest.raises(CAError) as err:  # a fresh token of the same VM: refused
            auth.sign(csr, azure_identity_token(server.url))
        assert err.value.kind is ErrorKind.UNAUTHORIZED
    finally:
        auth.repository.engine.dispose()


def test_sign_reusing_a_token_without_tofu(
    server: CloudMetadataServer, pki_dir: Path, tmp_path: Path
) -> None:
    auth = make_authority(
        pki_dir, tmp_path, [config(server, disableTrustOnFirstUse=True, disableCustomSANs=True)]
    )
    try:
        token = azure_identity_token(server.url)
        for _ in range(2):
            leaf = auth.sign(csr_pem(make_csr("web-vm-1", ["web-vm-1"])), token).certificate
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert san.get_values_for_type(x509.DNSName) == ["web-vm-1"]
        with pytest.raises(CAError) as err:
            auth.sign(csr_pem(make_csr("other", ["web-vm-1"])), token)
        assert err.value.kind is ErrorKind.FORBIDDEN
    finally:
        auth.repository.engine.dispose()


def test_init_error_keeps_the_lookup_keys(server: CloudMetadataServer) -> None:
    with pytest.raises(ProvisionerInitError) as err:
        provisioner(server, oidcDiscoveryURL=server.url + "/404")
    assert getattr(err.value, "lookup_keys", None) == [server.azure.tenant_id]
