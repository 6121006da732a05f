"""SSH certificates from instance identities (AWS, GCP) and X5C, and `/ssh/bastion`, against
the real appliance (`step ca init --ssh`, `step-ca`) with the clouds' metadata services on
127.0.0.1 (tests.cloud_metadata). Every certificate is read back by `ssh-keygen -L`.

step-ca's rules checked here: instance identities get host certificates only (GCP user
certificates only when `disableSSHCAUser: false`), key ID the instance, principals the
instance's own names with `disableCustomSANs` (the request may pick some; naming none gets
them all) and the request's without it (it must name some); `enableSSHCA` is required; an
X5C certificate never outlives the certificate that authorised it.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    SSHCertificate,
    SSHCertificateType,
    load_ssh_public_identity,
)

from tests.cloud_metadata import CloudMetadataServer
from tests.e2e.harness import (
    CA,
    DEFAULT_401,
    STEP,
    clean_env,
    error_body,
    free_port,
    run_step,
)
from tests.e2e.test_x5c import write_credential
from tests.provisioners.test_x5c import X5CPKI
from tests.sshd import require_openssh

ENABLED = {"enableSSHCA": True}
BASTION = {"hostname": "bastion.internal", "user": "jump", "port": "2222",
           "cmd": "nc %h %p", "flags": "-A"}  # fmt: skip


@dataclass
class Env:
    ca: CA
    cloud: CloudMetadataServer
    pki: X5CPKI
    steppath: Path
    work: Path

    def step(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """`step ARGS` as on a cloud VM: the metadata services are the test server."""
        env = clean_env(self.steppath)
        for var in ("STEP_AWS_METADATA_URL", "STEP_GCP_METADATA_URL", "STEP_AZURE_METADATA_URL"):
            env[var] = self.cloud.url
        return subprocess.run(
            [str(STEP), *map(str, args)],
            cwd=self.work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def ok(self, *args: str | Path) -> str:
        proc = self.step(*args)
        assert proc.returncode == 0, f"{args}\n{proc.stderr}\n{self.ca.log_tail()}"
        return proc.stdout

    def audience(self, token_id: str) -> str:
        """step's audience for an identity token: the sign URL with `#<type>/<name>`."""
        return f"{self.ca.url}/1.0/sign#{token_id}"

    def aws_token(self, provisioner: str, subject: str = "") -> str:
        # A fresh jti makes each token distinct (its hash is the single-use id).
        return self.cloud.aws.token(
            self.audience(f"aws/{provisioner}"), subject, jti=uuid.uuid4().hex
        )

    def gcp_token(self, provisioner: str) -> str:
        return self.cloud.gcp.token(self.audience(f"gcp/{provisioner}"), nonce=uuid.uuid4().hex)

    def sign(self, ott: str, **fields: Any) -> httpx.Response:
        key = ed25519.Ed25519PrivateKey.generate().public_key()
        blob = key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()[1]
        with self.ca.http() as http:
            return http.post("/1.0/ssh/sign", json={"publicKey": blob.decode(), "ott": ott,
                                                    **fields})  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    require_openssh()
    base = tmp_path_factory.mktemp("ca-ssh-cloud")
    pki = X5CPKI.make("SSH X5C")
    with CloudMetadataServer() as cloud:
        ca = CA(base=base, port=free_port(), name="SSH cloud")
        ca.steppath.mkdir(parents=True)
        ca.password_file.write_text("ca-password-for-tests\n")
        ca.provisioner_password_file.write_text("provisioner-password-for-tests\n")
        init = run_step(["ca", "init", "--ssh", *ca.init_flags()], ca.steppath, check=False)
        assert init.returncode == 0, init.stderr
        aws_roots = cloud.aws.certificate_pem

        def edit(cfg: dict[str, Any]) -> None:
            cfg["authority"]["provisioners"] += [
                # Instance names only, many certificates per instance.
                {"type": "AWS", "name": "aws", "disableCustomSANs": True,
                 "disableTrustOnFirstUse": True, "iidRootsPEM": aws_roots, "claims": ENABLED},
                # Custom names, one certificate per instance (trust on first use).
                {"type": "AWS", "name": "aws-open", "iidRootsPEM": aws_roots,
                 "claims": ENABLED},
                {"type": "AWS", "name": "aws-no-ssh", "disableTrustOnFirstUse": True,
                 "iidRootsPEM": aws_roots},
                {"type": "GCP", "name": "gcp", "projectIDs": ["my-project"],
                 "disableCustomSANs": True, "disableTrustOnFirstUse": True,
                 "certsURL": cloud.gcp_certs_url, "claims": ENABLED},
                {"type": "GCP", "name": "gcp-users", "disableSSHCAUser": False,
                 "disableTrustOnFirstUse": True, "certsURL": cloud.gcp_certs_url,
                 "claims": ENABLED},
                {"type": "Azure", "name": "azure", "tenantID": cloud.azure.tenant_id,
                 "resourceGroups": [cloud.azure.resource_group], "disableCustomSANs": True,
                 "disableTrustOnFirstUse": True, "oidcDiscoveryURL": cloud.azure_discovery_url,
                 "claims": ENABLED},
                {"type": "X5C", "name": "x5c", "roots": pki.roots_value, "claims": ENABLED},
            ]  # fmt: skip
            cfg["ssh"]["bastion"] = dict(BASTION)

        ca.edit_config(edit)
        ca.start()
        try:
            steppath = base / "client"
            run_step(["ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint],
                     steppath)  # fmt: skip
            work = base / "work"
            work.mkdir()
            yield Env(ca, cloud, pki, steppath, work)
        finally:
            ca.stop()


def keygen_list(cert: Path) -> str:
    proc = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(cert)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def principals_listed(listing: str) -> list[str]:
    """The `Principals:` block of `ssh-keygen -L`."""
    lines = listing.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Principals:")
    out = []
    for line in lines[start + 1 :]:
        if not line.startswith(" " * 16):
            break
        out.append(line.strip())
    return out


def issued(resp: httpx.Response, tmp_path: Path) -> tuple[SSHCertificate, str]:
    """The certificate of a 201 from /ssh/sign, and what `ssh-keygen -L` says of it."""
    assert resp.status_code == 201, resp.text
    blob = base64.b64decode(resp.json()["crt"])
    kind = blob[4 : 4 + int.from_bytes(blob[:4], "big")]
    line = kind + b" " + resp.json()["crt"].encode()
    cert = load_ssh_public_identity(line)
    assert isinstance(cert, SSHCertificate)
    path = tmp_path / f"{uuid.uuid4().hex}-cert.pub"
    path.write_bytes(line + b"\n")
    return cert, keygen_list(path)


def names(cert: SSHCertificate) -> list[str]:
    return [p.decode() for p in cert.valid_principals]


# --- AWS ---------------------------------------------------------------------------------------


def test_aws_host_certificate_with_step(env: Env) -> None:
    """`step ssh certificate --host` on the instance: the principal asked for (one of the
    instance's names), key ID the instance ID."""
    env.cloud.aws.document["instanceId"] = "i-0550000000000001"
    ip = env.cloud.aws.document["privateIp"]
    key = env.work / "aws_host_key"
    env.ok("ssh", "certificate", "--host", ip, key, "--provisioner", "aws",
           "--no-password", "--insecure", "--force")  # fmt: skip
    listing = keygen_list(Path(f"{key}-cert.pub"))
    assert "host certificate" in listing
    assert 'Key ID: "i-0550000000000001"' in listing
    assert principals_listed(listing) == [ip]
    assert "Extensions: (none)" in listing


def test_aws_forced_principals(env: Env, tmp_path: Path) -> None:
    env.cloud.aws.document["instanceId"] = "i-0550000000000002"
    ip, region = env.cloud.aws.document["privateIp"], env.cloud.aws.document["region"]
    internal = f"ip-{ip.replace('.', '-')}.{region}.compute.internal"
    # No principals asked for: the instance's names, 30 days (plus the 1 minute backdate).
    cert, listing = issued(env.sign(env.aws_token("aws", ip), certType="host"), tmp_path)
    assert cert.type == SSHCertificateType.HOST
    assert names(cert) == [ip, internal]
    assert principals_listed(listing) == [ip, internal]
    assert cert.key_id == b"i-0550000000000002"
    month = int(timedelta(days=30, minutes=1).total_seconds())
    assert cert.valid_before - cert.valid_after == month
    # A subset is fine; a request with no certType is a host request.
    cert, _ = issued(env.sign(env.aws_token("aws", ip), principals=[internal]), tmp_path)
    assert names(cert) == [internal]
    # Another name is not.
    resp = env.sign(env.aws_token("aws", ip), certType="host", principals=["web.example.com"])
    assert resp.status_code == 403, resp.text
    # A user certificate is refused.
    resp = env.sign(env.aws_token("aws", ip), certType="user", principals=[ip])
    assert resp.status_code == 403, resp.text
    assert "ssh certificate type does not match" in resp.json()["message"]


def test_aws_custom_names_and_trust_on_first_use(env: Env, tmp_path: Path) -> None:
    env.cloud.aws.document["instanceId"] = "i-0550000000000003"
    # Custom names allowed: the request must name some.
    resp = env.sign(env.aws_token("aws-open"), certType="host")
    assert resp.status_code == 400, resp.text
    assert "ssh certificate principals cannot be empty" in resp.json()["message"]
    cert, listing = issued(
        env.sign(env.aws_token("aws-open"), certType="host", principals=["web.example.com"]),
        tmp_path,
    )
    assert names(cert) == ["web.example.com"] and 'Key ID: "i-0550000000000003"' in listing
    # One certificate per instance, as for X.509.
    resp = env.sign(env.aws_token("aws-open"), certType="host", principals=["web.example.com"])
    assert resp.status_code == 401 and resp.json() == error_body(401, DEFAULT_401)


def test_aws_without_enable_ssh_ca(env: Env) -> None:
    resp = env.sign(env.aws_token("aws-no-ssh"), certType="host", principals=["x"])
    assert resp.status_code == 401 and resp.json() == error_body(401, DEFAULT_401)


def test_aws_replayed_token(env: Env, tmp_path: Path) -> None:
    token = env.aws_token("aws", env.cloud.aws.document["privateIp"])
    issued(env.sign(token), tmp_path)
    assert env.sign(token).status_code == 401


# --- GCP ---------------------------------------------------------------------------------------


def test_gcp_host_certificate_with_step(env: Env) -> None:
    ce = env.cloud.gcp.compute_engine
    internal = f"{ce['instance_name']}.c.{ce['project_id']}.internal"
    key = env.work / "gcp_host_key"
    env.ok("ssh", "certificate", "--host", internal, key, "--provisioner", "gcp",
           "--no-password", "--insecure", "--force")  # fmt: skip
    listing = keygen_list(Path(f"{key}-cert.pub"))
    assert "host certificate" in listing
    assert f'Key ID: "{ce["instance_name"]}"' in listing
    assert principals_listed(listing) == [internal]


def test_gcp_forced_principals_and_users(env: Env, tmp_path: Path) -> None:
    ce = env.cloud.gcp.compute_engine
    vm, zone, project = ce["instance_name"], ce["zone"], ce["project_id"]
    cert, _ = issued(env.sign(env.gcp_token("gcp")), tmp_path)
    assert names(cert) == [f"{vm}.c.{project}.internal", f"{vm}.{zone}.c.{project}.internal"]
    assert cert.type == SSHCertificateType.HOST
    # User certificates: refused by default (disableSSHCAUser), else the service account's.
    resp = env.sign(env.gcp_token("gcp"), certType="user")
    assert resp.status_code == 401 and resp.json() == error_body(401, DEFAULT_401)
    cert, listing = issued(env.sign(env.gcp_token("gcp-users"), certType="user"), tmp_path)
    gcp = env.cloud.gcp
    assert cert.type == SSHCertificateType.USER
    assert names(cert) == [f"sa_{gcp.subject}", gcp.email]
    assert cert.key_id == gcp.email.encode()
    assert "permit-pty" in listing
    resp = env.sign(env.gcp_token("gcp-users"), certType="user", principals=["root"])
    assert resp.status_code == 403, resp.text


# --- Azure -------------------------------------------------------------------------------------


def test_azure_host_certificate(env: Env, tmp_path: Path) -> None:
    azure = env.cloud.azure
    key = env.work / "azure_host_key"
    env.ok("ssh", "certificate", "--host", azure.vm_name, key, "--provisioner", "azure",
           "--no-password", "--insecure", "--force")  # fmt: skip
    listing = keygen_list(Path(f"{key}-cert.pub"))
    assert "host certificate" in listing and f'Key ID: "{azure.vm_name}"' in listing
    assert principals_listed(listing) == [azure.vm_name]
    cert, _ = issued(env.sign(azure.token()), tmp_path)
    assert names(cert) == [azure.vm_name] and cert.type == SSHCertificateType.HOST
    assert env.sign(azure.token(), principals=["db.internal"]).status_code == 403
    assert env.sign(azure.token(), certType="user").status_code == 403
    # The resource group allow-list applies to SSH too (step-ca checks it for X.509 only).
    azure.resource_group = "rg-other"
    try:
        resp = env.sign(azure.token())
    finally:
        azure.resource_group = "rg-web"
    assert resp.status_code == 401 and resp.json() == error_body(401, DEFAULT_401)


# --- X5C ---------------------------------------------------------------------------------------


def test_x5c_user_certificate_with_step(env: Env) -> None:
    crt, key = write_credential(env.pki, env.work, "alice")
    out = env.work / "alice_ssh"
    env.ok("ssh", "certificate", "alice", out, "--x5c-cert", crt, "--x5c-key", key,
           "--provisioner", "x5c", "--no-password", "--insecure", "--no-agent",
           "--force")  # fmt: skip
    listing = keygen_list(Path(f"{out}-cert.pub"))
    assert "user certificate" in listing
    assert 'Key ID: "alice"' in listing
    assert principals_listed(listing) == ["alice"]
    assert "permit-pty" in listing
    # The X5C leaf lives 2 hours: the certificate (16 hours by default) ends with it.
    cert = load_ssh_public_identity(Path(f"{out}-cert.pub").read_bytes())
    assert isinstance(cert, SSHCertificate)
    leaf = x509.load_pem_x509_certificates(crt.read_bytes())[0]
    assert cert.valid_before == int(leaf.not_valid_after_utc.timestamp())


def test_x5c_ssh_token_by_hand(env: Env) -> None:
    """`step ca token --ssh --x5c-cert` carries `step.ssh` (no `sans`), and `step ssh
    certificate --token` spends it."""
    crt, key = write_credential(env.pki, env.work, "carol")
    token = env.ok("ca", "token", "carol", "--ssh", "--principal", "carol", "--x5c-cert", crt,
                   "--x5c-key", key, "--provisioner", "x5c").strip()  # fmt: skip
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["step"]["ssh"]["principals"] == ["carol"] and "sans" not in claims
    assert claims["aud"].endswith("/1.0/ssh/sign#x5c/x5c")
    out = env.work / "carol_ssh"
    env.ok("ssh", "certificate", "carol", out, "--token", token, "--no-password", "--insecure",
           "--no-agent", "--force")  # fmt: skip
    assert principals_listed(keygen_list(Path(f"{out}-cert.pub"))) == ["carol"]


def test_x5c_host_certificate_and_refusals(env: Env) -> None:
    crt, key = write_credential(env.pki, env.work, "x5c-host")
    out = env.work / "x5c_host_key"
    env.ok("ssh", "certificate", "--host", "web.x5c.internal", out, "--x5c-cert", crt,
           "--x5c-key", key, "--provisioner", "x5c", "--no-password", "--insecure",
           "--force")  # fmt: skip
    listing = keygen_list(Path(f"{out}-cert.pub"))
    assert "host certificate" in listing and principals_listed(listing) == ["web.x5c.internal"]
    # Half a credential, and a validity beyond the leaf's.
    bad = env.step("ssh", "certificate", "bob", env.work / "bob", "--x5c-cert", crt,
                   "--no-password", "--insecure", "--no-agent", "--force")  # fmt: skip
    assert bad.returncode != 0 and "--x5c-key" in bad.stderr
    assert "Traceback" not in bad.stderr
    late = env.step("ssh", "certificate", "bob", env.work / "bob", "--x5c-cert", crt,
                    "--x5c-key", key, "--provisioner", "x5c", "--not-after", "10h",
                    "--no-password", "--insecure", "--no-agent", "--force")  # fmt: skip
    assert late.returncode != 0 and "Traceback" not in late.stderr
    assert "provisioning credential expiration" in late.stderr


# --- /ssh/bastion ------------------------------------------------------------------------------


def test_bastion(env: Env) -> None:
    with env.ca.http() as http:
        for prefix in ("", "/1.0"):
            resp = http.post(f"{prefix}/ssh/bastion",
                             json={"user": "joe", "hostname": "web.internal"})  # fmt: skip
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"hostname": "web.internal", "bastion": BASTION}
        # The bastion itself goes direct (names compared case-insensitively).
        resp = http.post("/ssh/bastion", json={"user": "joe", "hostname": "BASTION.internal"})
        assert resp.json() == {"hostname": "BASTION.internal"}
        resp = http.post("/ssh/bastion", json={"user": "joe"})
        assert resp.status_code == 400
        assert "missing or empty hostname" in resp.json()["message"]


def test_bastion_without_ssh(main_ca: CA) -> None:
    with main_ca.http() as http:
        resp = http.post("/ssh/bastion", json={"user": "joe", "hostname": "web.internal"})
    assert resp.status_code == 404, resp.text
