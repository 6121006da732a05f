"""SSH grants of the instance-identity provisioners (AWS, GCP, Azure) and X5C, in process:
what step-ca's AuthorizeSSHSign allows, and how a request is matched against it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from appliance.ssh import _limit
from pki.errors import CAError, ErrorKind
from provisioners.audience import Method, audiences
from provisioners.aws import AWSProvisioner, private_dns_name
from provisioners.azure import AzureProvisioner
from provisioners.claims import Claims
from provisioners.gcp import GCPProvisioner
from provisioners.iid import FOREVER
from provisioners.registry import parse_token
from provisioners.schema import AWSSchema, AzureSchema, GCPSchema, parse_provisioner
from provisioners.ssh import HOST, REQUEST_CERT_TYPE, USER, SSHOptions, SSHSignGrant
from tests.cloud_metadata import CA_DNS, CloudMetadataServer, sign_audience

SIGN = audiences([CA_DNS, "127.0.0.1"], Method.SIGN)
SSH_CA = Claims(enable_ssh_ca=True)


@pytest.fixture(scope="module")
def server() -> Iterator[CloudMetadataServer]:
    with CloudMetadataServer() as srv:
        yield srv


def aws(server: CloudMetadataServer, claims: Claims = SSH_CA, **fields: Any) -> AWSProvisioner:
    entry = parse_provisioner({"type": "AWS", "name": "aws",
                               "iidRootsPEM": server.aws.certificate_pem, **fields})  # fmt: skip
    assert isinstance(entry, AWSSchema)
    return AWSProvisioner(entry, claims)


def gcp(server: CloudMetadataServer, **fields: Any) -> GCPProvisioner:
    entry = parse_provisioner({"type": "GCP", "name": "gcp", "certsURL": server.gcp_certs_url,
                               **fields})  # fmt: skip
    assert isinstance(entry, GCPSchema)
    return GCPProvisioner(entry, SSH_CA)


def azure(server: CloudMetadataServer, **fields: Any) -> AzureProvisioner:
    cfg = {"type": "Azure", "name": "azure", "tenantID": server.azure.tenant_id,
           "oidcDiscoveryURL": server.azure_discovery_url}  # fmt: skip
    entry = parse_provisioner({**cfg, **fields})
    assert isinstance(entry, AzureSchema)
    return AzureProvisioner(entry, SSH_CA)


def ssh_grant(prov: Any, token: str, cert_type: str = "") -> SSHSignGrant:
    asked = REQUEST_CERT_TYPE.set(cert_type)
    try:
        grant: SSHSignGrant = prov.authorize_ssh_sign(parse_token(token), SIGN)
        return grant
    finally:
        REQUEST_CERT_TYPE.reset(asked)


def kind_of(exc: pytest.ExceptionInfo[CAError]) -> ErrorKind:
    return exc.value.kind


def test_aws_host_grant_with_instance_names(server: CloudMetadataServer) -> None:
    doc = server.aws.document
    names = (doc["privateIp"], private_dns_name(doc["privateIp"], doc["region"]))
    grant = ssh_grant(aws(server, disableCustomSANs=True),
                      server.aws.token(sign_audience(CA_DNS, "aws/aws")))  # fmt: skip
    assert (grant.cert_type, grant.key_id, grant.principals) == (HOST, doc["instanceId"], names)
    assert grant.request_principals and not grant.require_principals
    # Trust on first use: the instance's id, shared with X.509.
    tofu = hashlib.sha256(f"aws/aws.{doc['instanceId']}".encode()).hexdigest()
    assert (grant.token_id, grant.token_expires) == (tofu, FOREVER)
    SSHOptions().check_grant(grant)
    SSHOptions(cert_type=HOST, principals=names[1:]).check_grant(grant)
    for wrong in (SSHOptions(principals=("other",)), SSHOptions(cert_type=USER)):
        with pytest.raises(CAError) as err:
            wrong.check_grant(grant)
        assert kind_of(err) is ErrorKind.FORBIDDEN
    # The request's key ID is not the certificate's: the instance ID always is.
    SSHOptions(key_id="anything").check_grant(grant)


def test_aws_custom_names_need_some(server: CloudMetadataServer) -> None:
    grant = ssh_grant(aws(server), server.aws.token(sign_audience(CA_DNS, "aws/aws")))
    assert grant.require_principals and grant.token_options.principals == ()
    with pytest.raises(CAError) as err:
        SSHOptions(cert_type=HOST).check_grant(grant)
    assert kind_of(err) is ErrorKind.BAD_REQUEST
    SSHOptions(principals=("web.example.com",)).check_grant(grant)


def test_enable_ssh_ca_is_required(server: CloudMetadataServer) -> None:
    with pytest.raises(CAError) as err:
        ssh_grant(aws(server, Claims()), server.aws.token(sign_audience(CA_DNS, "aws/aws")))
    assert kind_of(err) is ErrorKind.UNAUTHORIZED


def test_gcp_host_and_user(server: CloudMetadataServer) -> None:
    ce = server.gcp.compute_engine
    token = server.gcp.token(sign_audience(CA_DNS, "gcp/gcp"))
    grant = ssh_grant(gcp(server), token)
    assert grant.cert_type == HOST and grant.key_id == ce["instance_name"]
    assert grant.principals == (
        f"{ce['instance_name']}.c.{ce['project_id']}.internal",
        f"{ce['instance_name']}.{ce['zone']}.c.{ce['project_id']}.internal",
    )
    # Users: off unless disableSSHCAUser is false; then the service account's names, forced.
    with pytest.raises(CAError) as err:
        ssh_grant(gcp(server), token, USER)
    assert kind_of(err) is ErrorKind.UNAUTHORIZED
    grant = ssh_grant(gcp(server, disableSSHCAUser=False), token, USER)
    names = (f"sa_{server.gcp.subject}", server.gcp.email)
    assert (grant.cert_type, grant.key_id, grant.principals) == (USER, server.gcp.email, names)
    assert not grant.request_principals
    with pytest.raises(CAError):
        SSHOptions(cert_type=USER, principals=("root",)).check_grant(grant)
    with pytest.raises(CAError) as err:
        ssh_grant(gcp(server, disableSSHCAHost=True), token)
    assert kind_of(err) is ErrorKind.UNAUTHORIZED


def test_azure_vm_name_and_allow_lists(server: CloudMetadataServer) -> None:
    grant = ssh_grant(azure(server, disableCustomSANs=True), server.azure.token())
    name = server.azure.vm_name
    assert (grant.cert_type, grant.key_id, grant.principals) == (HOST, name, (name,))
    assert grant.token_options.principals == (name,)
    with pytest.raises(CAError) as err:
        ssh_grant(azure(server, resourceGroups=["rg-other"]), server.azure.token())
    assert kind_of(err) is ErrorKind.UNAUTHORIZED


def test_limit_to_the_credential() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    after = int(now.timestamp())
    end = now + timedelta(hours=2)
    day = timedelta(hours=16)
    assert _limit(after, 0, day, end) == int(end.timestamp())
    assert _limit(after, 0, timedelta(hours=1), end) == after + 3600
    assert _limit(after, after + 60, day, end) == after + 60
    for start, stop in ((after, after + 3 * 3600), (int(end.timestamp()) + 1, 0)):
        with pytest.raises(CAError) as err:
            _limit(start, stop, day, end)
        assert kind_of(err) is ErrorKind.FORBIDDEN
