"""AWS, GCP and Azure provisioners end to end: `step ca certificate --provisioner NAME` on a
"cloud VM" whose metadata service (and the clouds' key endpoints) run on 127.0.0.1.

The CA (a real `step-ca` subprocess) fetches the GCP and Azure JWKS from the test server at
start-up and verifies AWS documents against the test AWS certificate; the `step` subprocess
finds the metadata service through STEP_{AWS,GCP,AZURE}_METADATA_URL.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from provisioners.extension import ProvisionerExtension, ProvisionerType
from tests.cloud_metadata import CloudMetadataServer, rfc3339
from tests.e2e.harness import (
    CA,
    DEFAULT_401,
    STEP,
    CAFactory,
    clean_env,
    csr_pem,
    error_body,
    load_chain,
    make_csr,
    run_step,
)


@pytest.fixture(scope="module")
def cloud() -> Iterator[CloudMetadataServer]:
    with CloudMetadataServer() as server:
        yield server


@pytest.fixture(scope="module")
def cloud_ca(cloud: CloudMetadataServer, ca_factory: CAFactory) -> CA:
    def edit(cfg: dict[str, Any]) -> None:
        provisioners = cfg["authority"]["provisioners"]
        provisioners += [
            {"type": "AWS", "name": "aws", "accounts": ["123456789012"],
             "iidRootsPEM": cloud.aws.certificate_pem},
            {"type": "AWS", "name": "aws-many", "disableTrustOnFirstUse": True,
             "iidRootsPEM": cloud.aws.certificate_pem},
            {"type": "GCP", "name": "gcp", "projectIDs": ["my-project"],
             "serviceAccounts": [cloud.gcp.email], "certsURL": cloud.gcp_certs_url},
            {"type": "Azure", "name": "azure", "tenantID": cloud.azure.tenant_id,
             "resourceGroups": [cloud.azure.resource_group],
             "oidcDiscoveryURL": cloud.azure_discovery_url},
        ]

    return ca_factory("cloud", edit)


@pytest.fixture(scope="module")
def steppath(cloud_ca: CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cloud-client") / "step"
    run_step(["ca", "bootstrap", "--ca-url", cloud_ca.url, "--fingerprint",
              cloud_ca.fingerprint], path)
    return path


def step_on_vm(
    args: list[str | Path], steppath: Path, cloud: CloudMetadataServer
) -> subprocess.CompletedProcess[str]:
    """`step ARGS` as on a cloud VM: the metadata services are the test server."""
    env = clean_env(steppath)
    for var in ("STEP_AWS_METADATA_URL", "STEP_GCP_METADATA_URL", "STEP_AZURE_METADATA_URL"):
        env[var] = cloud.url
    return subprocess.run(
        [str(STEP), *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def certificate(
    subject: str, provisioner: str, steppath: Path, cloud: CloudMetadataServer, out: Path
) -> subprocess.CompletedProcess[str]:
    crt, key = out / f"{subject}.crt", out / f"{subject}.key"
    return step_on_vm(
        ["ca", "certificate", subject, crt, key, "--provisioner", provisioner, "--force"],
        steppath,
        cloud,
    )


def issued(out: Path, subject: str, ca: CA) -> x509.Certificate:
    chain = load_chain((out / f"{subject}.crt").read_bytes())
    leaf = chain[0]
    leaf.verify_directly_issued_by(ca.intermediate)
    assert leaf.subject.rfc4514_string() == f"CN={subject}"
    return leaf


def dns_names(leaf: x509.Certificate) -> list[str]:
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(san.get_values_for_type(x509.DNSName))


def extension(leaf: x509.Certificate) -> ProvisionerExtension:
    ext = ProvisionerExtension.from_certificate(leaf)
    assert ext is not None
    return ext


def test_provisioners_are_listed(cloud_ca: CA) -> None:
    with cloud_ca.http() as http:
        items = http.get("/provisioners").json()["provisioners"]
    types = {p["name"]: p["type"] for p in items}
    assert types == {"admin": "JWK", "aws": "AWS", "aws-many": "AWS", "gcp": "GCP",
                     "azure": "Azure"}
    assert all("state" not in p for p in items), items


def test_aws(cloud: CloudMetadataServer, cloud_ca: CA, steppath: Path, tmp_path: Path) -> None:
    cloud.aws.document["instanceId"] = "i-0e2e0000000000001"
    done = certificate("web.internal", "aws", steppath, cloud, tmp_path)
    assert done.returncode == 0, done.stderr
    leaf = issued(tmp_path, "web.internal", cloud_ca)
    # step's default CSR names for an AWS token: the instance's DNS name and private IP,
    # plus the subject.
    ip = cloud.aws.document["privateIp"]
    region = cloud.aws.document["region"]
    internal = f"ip-{ip.replace('.', '-')}.{region}.compute.internal"
    assert sorted(dns_names(leaf)) == sorted([internal, "web.internal"])
    ext = extension(leaf)
    assert (ext.type, ext.name, ext.credential_id) == (ProvisionerType.AWS, "aws", "123456789012")
    assert ext.key_value_pairs == ("InstanceID", "i-0e2e0000000000001")
    assert cloud.seen("/latest/api/token"), "the client must use an IMDSv2 session"

    # Trust on first use: the same instance gets no second certificate.
    again = certificate("web2.internal", "aws", steppath, cloud, tmp_path)
    assert again.returncode != 0
    assert DEFAULT_401 in again.stderr


def test_aws_refusals(cloud: CloudMetadataServer, cloud_ca: CA, steppath: Path,
                      tmp_path: Path) -> None:
    cloud.aws.document["instanceId"] = "i-0e2e0000000000002"
    cloud.aws.document["accountId"] = "210987654321"
    try:
        done = certificate("acct.internal", "aws", steppath, cloud, tmp_path)
        assert done.returncode != 0 and DEFAULT_401 in done.stderr
    finally:
        cloud.aws.document["accountId"] = "123456789012"
    # The refusal burnt nothing: the instance still gets its one certificate.
    done = certificate("acct.internal", "aws", steppath, cloud, tmp_path)
    assert done.returncode == 0, done.stderr


def test_aws_without_trust_on_first_use(cloud: CloudMetadataServer, cloud_ca: CA,
                                        steppath: Path, tmp_path: Path) -> None:
    cloud.aws.document["instanceId"] = "i-0e2e0000000000003"
    for subject in ("many1.internal", "many2.internal"):
        done = certificate(subject, "aws-many", steppath, cloud, tmp_path)
        assert done.returncode == 0, done.stderr
        assert extension(issued(tmp_path, subject, cloud_ca)).name == "aws-many"


def test_aws_token_then_sign(cloud: CloudMetadataServer, cloud_ca: CA, steppath: Path) -> None:
    """`step ca token` makes the AWS token; POST /1.0/sign with it, then replay it."""
    cloud.aws.document["instanceId"] = "i-0e2e0000000000004"
    cloud.aws.document["pendingTime"] = rfc3339(datetime.now(UTC))
    done = step_on_vm(["ca", "token", "tok.internal", "--provisioner", "aws"], steppath, cloud)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    body = {"csr": csr_pem(make_csr("tok.internal", ["tok.internal", "10.0.1.23"])),
            "ott": token}
    with cloud_ca.http() as http:
        first = http.post("/1.0/sign", json=body)
        assert first.status_code == 201, first.text
        leaf = load_chain(first.json()["crt"])[0]
        assert dns_names(leaf) == ["tok.internal"]
        replay = http.post("/1.0/sign", json=body)
        assert replay.status_code == 401
        assert replay.json() == error_body(401, DEFAULT_401)


def test_gcp(cloud: CloudMetadataServer, cloud_ca: CA, steppath: Path, tmp_path: Path) -> None:
    cloud.gcp.compute_engine["instance_id"] = "9000000000000000001"
    done = certificate("vm-1", "gcp", steppath, cloud, tmp_path)
    assert done.returncode == 0, done.stderr
    leaf = issued(tmp_path, "vm-1", cloud_ca)
    assert dns_names(leaf) == ["vm-1"]
    ext = extension(leaf)
    assert (ext.type, ext.name, ext.credential_id) == (
        ProvisionerType.GCP, "gcp", cloud.gcp.subject
    )
    assert ext.key_value_pairs == ("InstanceID", "9000000000000000001", "InstanceName", "vm-1")
    again = certificate("vm-1", "gcp", steppath, cloud, tmp_path)
    assert again.returncode != 0 and DEFAULT_401 in again.stderr


def test_gcp_wrong_project(cloud: CloudMetadataServer, cloud_ca: CA, steppath: Path,
                           tmp_path: Path) -> None:
    cloud.gcp.compute_engine["instance_id"] = "9000000000000000002"
    cloud.gcp.compute_engine["project_id"] = "someone-elses-project"
    try:
        done = certificate("vm-2", "gcp", steppath, cloud, tmp_path)
    finally:
        cloud.gcp.compute_engine["project_id"] = "my-project"
    assert done.returncode != 0 and DEFAULT_401 in done.stderr


def test_azure(cloud: CloudMetadataServer, cloud_ca: CA, steppath: Path, tmp_path: Path) -> None:
    cloud.azure.vm_name = "e2e-vm-1"
    done = certificate("e2e-vm-1", "azure", steppath, cloud, tmp_path)
    assert done.returncode == 0, done.stderr
    leaf = issued(tmp_path, "e2e-vm-1", cloud_ca)
    assert dns_names(leaf) == ["e2e-vm-1"]
    ext = extension(leaf)
    assert (ext.type, ext.name, ext.credential_id) == (
        ProvisionerType.AZURE, "azure", cloud.azure.tenant_id
    )
    again = certificate("e2e-vm-1", "azure", steppath, cloud, tmp_path)
    assert again.returncode != 0 and DEFAULT_401 in again.stderr


def test_azure_wrong_resource_group(cloud: CloudMetadataServer, cloud_ca: CA, steppath: Path,
                                    tmp_path: Path) -> None:
    cloud.azure.vm_name = "e2e-vm-2"
    cloud.azure.resource_group = "rg-other"
    try:
        done = certificate("e2e-vm-2", "azure", steppath, cloud, tmp_path)
    finally:
        cloud.azure.resource_group = "rg-web"
    assert done.returncode != 0 and DEFAULT_401 in done.stderr


def test_metadata_service_unreachable(cloud_ca: CA, steppath: Path, tmp_path: Path) -> None:
    env = clean_env(steppath)
    env["STEP_AWS_METADATA_URL"] = "http://127.0.0.1:9"  # discard port: nothing listens
    crt, key = tmp_path / "x.crt", tmp_path / "x.key"
    done = subprocess.run(
        [str(STEP), "ca", "certificate", "x", str(crt), str(key), "--provisioner", "aws"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode != 0
    assert "Are you in an AWS VM?" in done.stderr
    assert not crt.exists()

