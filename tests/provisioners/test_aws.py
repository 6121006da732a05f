"""The AWS provisioner and its client flow, against an IMDS stand-in on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cli.ca import cloud_flows
from cli.ca.cloud_flows import aws_identity_token, default_sans
from cli.common import CLIError
from pki.errors import CAError, ErrorKind
from provisioners import aws as aws_module
from provisioners.audience import Method, audiences
from provisioners.aws import AWSProvisioner, private_dns_name
from provisioners.base import ProvisionerConfigError, ProvisionerInitError, token_hash
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.iid import ALLOWED_COMMON_NAMES, FOREVER
from provisioners.registry import DisabledProvisioner, parse_token
from provisioners.schema import AWSSchema, parse_provisioner
from tests.cloud_metadata import (
    AWS_DOCUMENT_PATH,
    AWS_SIGNATURE_PATH,
    AWS_TOKEN_PATH,
    CA_DNS,
    CloudMetadataServer,
    cert_pem,
    make_authority,
    rfc3339,
    rsa_key,
    self_signed,
    sign_audience,
)
from tests.e2e.harness import csr_pem, load_chain, make_csr
from tests.provisioners.iid_helpers import SIGN, authorize, refused, registry

CA_URL = f"https://{CA_DNS}:9000"
AUD = sign_audience(CA_DNS, "aws/aws")


@pytest.fixture
def server() -> Iterator[CloudMetadataServer]:
    with CloudMetadataServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aws-pki")


def config(server: CloudMetadataServer, **fields: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "type": "AWS",
        "name": "aws",
        "iidRootsPEM": server.aws.certificate_pem,
    }
    cfg.update(fields)
    return {k: v for k, v in cfg.items() if v is not None}


def provisioner(server: CloudMetadataServer, **fields: Any) -> AWSProvisioner:
    entry = parse_provisioner(config(server, **fields))
    assert isinstance(entry, AWSSchema)
    return AWSProvisioner(entry, Claims())


def tofu(instance: str, name: str = "aws") -> str:
    return hashlib.sha256(f"aws/{name}.{instance}".encode()).hexdigest()


# --- the client flow against IMDS ------------------------------------------------------------


def test_flow_token_is_accepted(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    token = aws_identity_token(server.url, prov.to_json(), "host.internal", CA_URL)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert claims["iss"] == "ec2.amazonaws.com"
    assert claims["aud"] == AUD
    assert claims["sub"] == "host.internal"
    instance = server.aws.document["instanceId"]
    assert claims["jti"] == tofu(instance)
    assert base64.b64decode(claims["amazon"]["document"]) == server.aws.document_bytes()

    opts = authorize(prov, token)
    assert opts.provisioner_name == "aws"
    assert opts.subject == "host.internal"
    assert opts.names_from_csr and opts.allowed_names is None and opts.sans == ()
    assert opts.extra[ALLOWED_COMMON_NAMES] == ("host.internal",)
    assert opts.token_id == tofu(instance)
    assert opts.token_expires == FOREVER
    assert opts.extension == ProvisionerExtension(
        int(ProvisionerType.AWS), "aws", "123456789012", ("InstanceID", instance)
    )


def test_flow_uses_imdsv2_session(server: CloudMetadataServer) -> None:
    aws_identity_token(server.url, config(server), "x", CA_URL)
    puts = server.seen(AWS_TOKEN_PATH)
    assert puts and all(r.method == "PUT" for r in puts)
    assert puts[0].headers["x-aws-ec2-metadata-token-ttl-seconds"] == "30"
    for path in (AWS_DOCUMENT_PATH, AWS_SIGNATURE_PATH):
        (get,) = server.seen(path)
        assert get.headers["x-aws-ec2-metadata-token"]


def test_flow_falls_back_to_imdsv1(server: CloudMetadataServer) -> None:
    server.aws.v2_disabled = True
    server.aws.require_v2 = False
    token = aws_identity_token(server.url, config(server), "x", CA_URL)
    assert authorize(provisioner(server), token).subject == "x"
    assert all("x-aws-ec2-metadata-token" not in r.headers for r in server.seen(AWS_DOCUMENT_PATH))


def test_flow_follows_imds_versions(server: CloudMetadataServer) -> None:
    with pytest.raises(CLIError, match="Are you in an AWS VM"):
        aws_identity_token(server.url, config(server, imdsVersions=["v1"]), "x", CA_URL)
    assert server.seen(AWS_TOKEN_PATH) == []
    server.aws.require_v2 = False
    aws_identity_token(server.url, config(server, imdsVersions=["v1"]), "x", CA_URL)
    assert server.seen(AWS_TOKEN_PATH) == []


def test_flow_without_metadata_service(server: CloudMetadataServer) -> None:
    url = server.url
    server.close()
    with pytest.raises(CLIError, match="error retrieving identity document"):
        aws_identity_token(url, config(server), "x", CA_URL)
    with CloudMetadataServer() as again, pytest.raises(CLIError):
        aws_identity_token(again.url + "/nothing-here", config(again), "x", CA_URL)


def test_metadata_url_from_options_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.ca.flows import TokenRequest

    req = TokenRequest(
        client=None,  # type: ignore[arg-type]
        root=Path("root.crt"),
        root_fingerprint="",
        subject="s",
        sans=[],
        audience=f"{CA_URL}/1.0/sign",
        not_before=datetime.now(UTC),
        expires=datetime.now(UTC) + timedelta(minutes=5),
    )
    env, default = cloud_flows.AWS_METADATA_ENV, cloud_flows.AWS_METADATA_DEFAULT
    monkeypatch.delenv(env, raising=False)
    assert cloud_flows.metadata_url(req, env, default) == "http://169.254.169.254"
    monkeypatch.setenv(env, "http://127.0.0.1:1234/")
    assert cloud_flows.metadata_url(req, env, default) == "http://127.0.0.1:1234"
    req.options["metadata_url"] = "http://127.0.0.1:5678"
    assert cloud_flows.metadata_url(req, env, default) == "http://127.0.0.1:5678"
    assert cloud_flows.AWS_METADATA_ENV == "STEP_AWS_METADATA_URL"


def test_default_sans_for_the_csr(server: CloudMetadataServer) -> None:
    token = server.aws.token(AUD, "host.internal")
    dns = private_dns_name("10.0.1.23", "us-east-1")
    assert default_sans(token, "host.internal", False) == ["10.0.1.23", dns, "host.internal"]
    assert default_sans(token, "host.internal", True) == ["10.0.1.23", dns]
    assert default_sans("not-a-token", "x", False) is None


# --- refusals --------------------------------------------------------------------------------


def test_wrong_account(server: CloudMetadataServer) -> None:
    token = server.aws.token(AUD)
    assert authorize(provisioner(server, accounts=["123456789012"]), token)
    err = refused(provisioner(server, accounts=["999999999999"]), token)
    assert "accountId is not valid" in err.reason


def test_instance_too_old(server: CloudMetadataServer) -> None:
    prov = provisioner(server, instanceAge="1h")
    assert authorize(prov, server.aws.token(AUD))
    server.aws.document["pendingTime"] = rfc3339(datetime.now(UTC) - timedelta(hours=2))
    err = refused(prov, server.aws.token(AUD))
    assert "pendingTime is too old" in err.reason
    del server.aws.document["pendingTime"]
    refused(prov, server.aws.token(AUD))
    server.aws.document["pendingTime"] = "yesterday"
    refused(provisioner(server), server.aws.token(AUD))


def test_expired_and_not_yet_valid(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    now = int(time.time())
    err = refused(prov, server.aws.token(AUD, exp=now - 120, nbf=now - 600, iat=now - 600))
    assert "expired" in err.reason
    # Within step-ca's minute of leeway.
    assert authorize(prov, server.aws.token(AUD, exp=now - 10, nbf=now - 600, iat=now - 600))
    refused(prov, server.aws.token(AUD, nbf=now + 600, exp=now + 900))
    refused(prov, server.aws.token(AUD, iat=now + 600))
    refused(prov, server.aws.token(AUD, exp=None))


def test_wrong_audience(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    for aud in (
        "https://other.test:9000/1.0/sign#aws/aws",
        "https://ca.test:9000/1.0/sign",
        "https://ca.test:9000/1.0/sign#aws/other",
        "https://ca.test:9000/1.0/revoke#aws/aws",
    ):
        assert "invalid audience" in refused(prov, server.aws.token(aud)).reason
    # The port does not matter, and every CA name and path form is accepted.
    assert authorize(prov, server.aws.token("https://127.0.0.1/sign#aws/aws"))


def test_wrong_issuer(server: CloudMetadataServer) -> None:
    refused(provisioner(server), server.aws.token(AUD, iss="ec2.example.com"))


def test_hmac_must_be_the_signature(server: CloudMetadataServer) -> None:
    err = refused(provisioner(server), server.aws.token(AUD, hmac_key=b"x" * 64))
    assert "error verifying claims" in err.reason


def test_document_must_be_signed_by_a_configured_certificate(
    server: CloudMetadataServer,
) -> None:
    prov = provisioner(server)
    # A changed document with the original signature (the HMAC recomputed to match).
    forged = json.dumps({**server.aws.document, "accountId": "999999999999"}).encode()
    original = server.aws.sign(server.aws.document_bytes())
    err = refused(prov, server.aws.token(AUD, document=forged, signature=original))
    assert "invalid aws token signature" in err.reason
    # A document signed by somebody else's key.
    other = rsa_key("not-aws")
    foreign = server.aws.sign(server.aws.document_bytes(), other)
    refused(prov, server.aws.token(AUD, signature=foreign))
    # Trusting that key instead of AWS's refuses the real documents.
    stranger = provisioner(server, iidRootsPEM=cert_pem(self_signed(other, "x")))
    refused(stranger, server.aws.token(AUD))


def test_algorithm_must_be_hmac(server: CloudMetadataServer) -> None:
    payload = server.aws.token(AUD).split(".")[1]
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    refused(provisioner(server), f"{none_header}.{payload}.")


def test_document_fields_required(server: CloudMetadataServer) -> None:
    prov = provisioner(server)
    for key in ("accountId", "instanceId", "privateIp", "region"):
        saved = server.aws.document[key]
        server.aws.document[key] = ""
        assert "cannot be empty" in refused(prov, server.aws.token(AUD, sub="x")).reason
        server.aws.document[key] = saved
    refused(prov, server.aws.token(AUD, document=b"[]"))
    refused(prov, server.aws.token(AUD, amazon=None))


def test_disable_custom_sans(server: CloudMetadataServer) -> None:
    prov = provisioner(server, disableCustomSANs=True)
    doc = server.aws.document
    dns = private_dns_name(doc["privateIp"], doc["region"])
    for subject in (doc["instanceId"], doc["privateIp"], dns):
        opts = authorize(prov, server.aws.token(AUD, subject))
        assert opts.subject == subject
        assert not opts.names_from_csr
        assert opts.sans == (dns, doc["privateIp"])
    err = refused(prov, server.aws.token(AUD, "evil.example.com"))
    assert "invalid subject" in err.reason


def test_disable_trust_on_first_use(server: CloudMetadataServer) -> None:
    token = server.aws.token(AUD)
    opts = authorize(provisioner(server, disableTrustOnFirstUse=True), token)
    assert opts.token_id == token_hash(token)
    assert opts.token_expires == datetime.fromtimestamp(
        jwt.decode(token, options={"verify_signature": False})["exp"], UTC
    )


def test_revoke_is_not_allowed(server: CloudMetadataServer) -> None:
    with pytest.raises(CAError) as err:
        provisioner(server).authorize(
            parse_token(server.aws.token(AUD)), Method.REVOKE, audiences([CA_DNS], Method.REVOKE)
        )
    assert err.value.kind is ErrorKind.UNAUTHORIZED


def test_smallstep_extension_can_be_disabled(server: CloudMetadataServer) -> None:
    prov = AWSProvisioner(
        AWSSchema.model_validate(config(server)), Claims(disable_smallstep_extensions=True)
    )
    assert authorize(prov, server.aws.token(AUD)).extension is None


# --- configuration ---------------------------------------------------------------------------


def test_config_errors(
    server: CloudMetadataServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ProvisionerConfigError):
        provisioner(server, accounts="123")
    with pytest.raises(ProvisionerConfigError):
        provisioner(server, disableCustomSANs="yes")
    with pytest.raises(ProvisionerConfigError):
        provisioner(server, name="")
    with pytest.raises(ProvisionerConfigError):
        provisioner(server, instanceAge="an hour")
    with pytest.raises(ProvisionerInitError, match="cannot be negative"):
        provisioner(server, instanceAge="-1h")
    with pytest.raises(ProvisionerInitError, match="v3: not a supported"):
        provisioner(server, imdsVersions=["v2", "v3"])
    with pytest.raises(ProvisionerInitError, match="error reading"):
        provisioner(server, iidRootsPEM=None, iidRoots=str(tmp_path / "missing.pem"))
    with pytest.raises(ProvisionerInitError, match="no certificates found"):
        provisioner(server, iidRootsPEM="not a certificate")
    monkeypatch.setattr(aws_module, "BUNDLED_CERTIFICATES", tmp_path / "none.pem")
    with pytest.raises(ProvisionerInitError, match="iidRoots"):
        provisioner(server, iidRootsPEM=None)


def test_iid_roots_file_and_inline_together(server: CloudMetadataServer, tmp_path: Path) -> None:
    path = tmp_path / "aws.pem"
    path.write_text(server.aws.certificate_pem)
    from_file = provisioner(server, iidRootsPEM=None, iidRoots=str(path))
    assert authorize(from_file, server.aws.token(AUD))
    other = self_signed(rsa_key("not-aws"), "other")
    both = provisioner(server, iidRoots=str(path), iidRootsPEM=cert_pem(other))
    assert len(both.certificates) == 2
    assert authorize(both, server.aws.token(AUD))


def test_registry_finds_it_by_audience_fragment(server: CloudMetadataServer) -> None:
    reg = registry(config(server), config(server, name="other"))
    token = parse_token(server.aws.token(AUD))
    found = reg.for_token(token, SIGN)
    assert found.name == "aws"
    item = reg.page("", None)[0][0]
    assert item["type"] == "AWS" and item["name"] == "aws"


def test_init_failure_disables_only_this_provisioner(server: CloudMetadataServer) -> None:
    reg = registry(config(server, imdsVersions=["v9"]))
    (prov,) = list(reg)
    assert isinstance(prov, DisabledProvisioner)
    assert prov.to_json()["state"] == "Uninitialized"


# --- through the CA core ---------------------------------------------------------------------


def test_sign_once_per_instance(server: CloudMetadataServer, pki_dir: Path, tmp_path: Path) -> None:
    auth = make_authority(pki_dir, tmp_path, [config(server)])
    try:
        token = aws_identity_token(server.url, config(server), "web.internal", CA_URL)
        csr = csr_pem(make_csr("web.internal", ["web.internal", "10.0.1.23"]))
        result = auth.sign(csr, token)
        leaf = result.certificate
        assert leaf.subject.rfc4514_string() == "CN=web.internal"
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["web.internal"]
        ext = ProvisionerExtension.from_certificate(leaf)
        assert ext is not None and ext.type == ProvisionerType.AWS and ext.name == "aws"
        assert ext.credential_id == "123456789012"
        # Trust on first use: the same instance gets no second certificate, new token or not.
        again = aws_identity_token(server.url, config(server), "web.internal", CA_URL)
        with pytest.raises(CAError) as err:
            auth.sign(csr_pem(make_csr("web.internal", ["web.internal"])), again)
        assert err.value.kind is ErrorKind.UNAUTHORIZED
        # Another instance does.
        server.aws.document["instanceId"] = "i-0fedcba9876543210"
        other = aws_identity_token(server.url, config(server), "db.internal", CA_URL)
        chain = auth.sign(csr_pem(make_csr("db.internal", ["db.internal"])), other).chain
        pem = "".join(c.public_bytes(Encoding.PEM).decode() for c in chain)
        assert len(load_chain(pem)) == 2
    finally:
        auth.repository.engine.dispose()


def test_sign_without_trust_on_first_use(
    server: CloudMetadataServer, pki_dir: Path, tmp_path: Path
) -> None:
    cfg = config(server, disableTrustOnFirstUse=True)
    auth = make_authority(pki_dir, tmp_path, [cfg])
    try:
        first = aws_identity_token(server.url, cfg, "a.internal", CA_URL)
        csr = csr_pem(make_csr("a.internal", ["a.internal"]))
        auth.sign(csr, first)
        with pytest.raises(CAError):  # the very same token is still single use
            auth.sign(csr, first)
        second = server.aws.token(AUD, "a.internal", jti="x")
        auth.sign(csr, second)
    finally:
        auth.repository.engine.dispose()


def test_sign_with_disable_custom_sans(
    server: CloudMetadataServer, pki_dir: Path, tmp_path: Path
) -> None:
    cfg = config(server, disableCustomSANs=True)
    auth = make_authority(pki_dir, tmp_path, [cfg])
    dns = private_dns_name("10.0.1.23", "us-east-1")
    try:
        token = aws_identity_token(server.url, cfg, dns, CA_URL)
        with pytest.raises(CAError) as err:
            auth.sign(csr_pem(make_csr(dns, [dns, "evil.example.com"])), token)
        assert err.value.kind is ErrorKind.FORBIDDEN
        leaf = auth.sign(csr_pem(make_csr(dns, [dns])), token).certificate
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [dns]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.1.23"]
        assert leaf.subject.rfc4514_string() == f"CN={dns}"
    finally:
        auth.repository.engine.dispose()


def test_name_with_a_space_is_escaped_in_the_audience(server: CloudMetadataServer) -> None:
    cfg = config(server, name="aws prod")
    token = aws_identity_token(server.url, cfg, "x", CA_URL)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == f"{CA_URL}/1.0/sign#aws/aws%20prod"  # as Go writes the URL
    assert claims["jti"] == tofu(server.aws.document["instanceId"], "aws prod")
    reg = registry(cfg)
    prov = reg.for_token(parse_token(token), SIGN)
    opts = prov.authorize(parse_token(token), Method.SIGN, SIGN)
    assert opts.token_id == tofu(server.aws.document["instanceId"], "aws prod")


def test_init_error_keeps_the_lookup_keys(server: CloudMetadataServer) -> None:
    with pytest.raises(ProvisionerInitError) as err:
        provisioner(server, name="aws prod", imdsVersions=["v0"])
    assert getattr(err.value, "lookup_keys", None) == ["aws/aws prod", "aws/aws%20prod"]
