"""Stand-ins for the clouds, on 127.0.0.1 only: instance metadata services and token issuers.

One `CloudMetadataServer` (a threaded HTTP server on a free loopback port) plays all three:

* AWS IMDS: `PUT /latest/api/token` (IMDSv2 session), `GET
  /latest/dynamic/instance-identity/document` and `.../signature` (base64 PKCS #1 v1.5
  SHA-256 signature by a test RSA key whose self-signed certificate the CA is given);
* GCP: `GET /computeMetadata/v1/instance/service-accounts/default/identity` (needs
  `Metadata-Flavor: Google`) returning an RS256 identity token, and Google's JWKS at
  `/oauth2/v3/certs`;
* Azure IMDS: `GET /metadata/identity/oauth2/token` (needs `Metadata: true`) returning a
  managed-identity access token, `GET /metadata/instance/compute/azEnvironment`, and the
  tenant's OpenID discovery document and JWKS at `/<tenant>/.well-known/openid-configuration`
  and `/<tenant>/discovery/keys`.

What each cloud says about "its" VM is plain mutable data (`server.aws.document`,
`server.gcp.compute_engine`, `server.azure.xms_mirid`...), so a test changes exactly one fact.
Every request is recorded in `server.requests`. The module also builds tokens directly (with
any claim overridden) for the refusal cases, and a CA core (Authority) for the sign path.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pki.jose import public_jwk
from tests.http_server import QuietServer

HOST = "127.0.0.1"
AWS_TOKEN_PATH = "/latest/api/token"
AWS_DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"
AWS_SIGNATURE_PATH = "/latest/dynamic/instance-identity/signature"
GCP_IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
GCP_CERTS_PATH = "/oauth2/v3/certs"
AZURE_TOKEN_PATH = "/metadata/identity/oauth2/token"
AZURE_ENVIRONMENT_PATH = "/metadata/instance/compute/azEnvironment"

AWS_ISSUER = "ec2.amazonaws.com"
GOOGLE_ISSUER = "https://accounts.google.com"
AZURE_RESOURCE = "https://management.azure.com/"


# --- keys ------------------------------------------------------------------------------------


@cache
def rsa_key(label: str) -> rsa.RSAPrivateKey:
    """One RSA 2048 key per label for the whole test session (key generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    """A self-signed certificate for `key` (AWS publishes such certificates)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Issuer:
    """An RS256 token issuer with a JWKS: Google or a Microsoft tenant, for tests."""

    key: rsa.RSAPrivateKey
    kid: str
    extra_keys: list[tuple[str, rsa.RSAPrivateKey]] = field(default_factory=list)

    def jwks(self) -> dict[str, Any]:
        keys = [public_jwk(self.key, kid=self.kid, alg="RS256")]
        keys += [public_jwk(k, kid=kid, alg="RS256") for kid, k in self.extra_keys]
        return {"keys": keys}

    def sign(
        self,
        claims: dict[str, Any],
        *,
        kid: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        headers = {"kid": self.kid if kid is None else kid, "typ": "JWT"}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers=headers)


def _times(lifetime: int = 3600) -> dict[str, int]:
    now = int(time.time())
    return {"iat": now, "exp": now + lifetime}


def _without_none(claims: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if v is not None}


# --- AWS -------------------------------------------------------------------------------------


@dataclass
class AWSCloud:
    """The EC2 instance and the key AWS signs its identity documents with."""

    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa_key("aws"))
    document: dict[str, Any] = field(default_factory=dict)
    #: True: the document and signature are only served with an IMDSv2 session token.
    require_v2: bool = True
    #: True: `PUT /latest/api/token` answers 403 (IMDSv2 switched off).
    v2_disabled: bool = False
    sessions: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.certificate = self_signed(self.key, "ec2.amazonaws.com (test)")
        if not self.document:
            self.document = {
                "accountId": "123456789012",
                "architecture": "x86_64",
                "availabilityZone": "us-east-1a",
                "billingProducts": None,
                "devpayProductCodes": None,
                "marketplaceProductCodes": None,
                "imageId": "ami-0abcdef1234567890",
                "instanceId": "i-0123456789abcdef0",
                "instanceType": "t3.micro",
                "kernelId": None,
                "pendingTime": rfc3339(datetime.now(UTC) - timedelta(minutes=5)),
                "privateIp": "10.0.1.23",
                "ramdiskId": None,
                "region": "us-east-1",
                "version": "2017-09-30",
            }

    @property
    def certificate_pem(self) -> str:
        return cert_pem(self.certificate)

    def document_bytes(self) -> bytes:
        """The document as IMDS serves it (pretty-printed JSON)."""
        return json.dumps(self.document, indent=2).encode()

    def sign(self, document: bytes, key: rsa.RSAPrivateKey | None = None) -> bytes:
        return (key or self.key).sign(document, padding.PKCS1v15(), hashes.SHA256())

    def signature_text(self) -> str:
        """The `/signature` body: base64 in 64-column lines, as IMDS serves it."""
        b64 = base64.b64encode(self.sign(self.document_bytes())).decode()
        return "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))

    def token(
        self,
        audience: str,
        subject: str = "",
        *,
        document: bytes | None = None,
        signature: bytes | None = None,
        hmac_key: bytes | None = None,
        alg: str = "HS256",
        **claims: Any,
    ) -> str:
        """A token as step builds it on the instance; anything may be overridden."""
        document = self.document_bytes() if document is None else document
        signature = self.sign(document) if signature is None else signature
        instance = str(self.document.get("instanceId"))
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": AWS_ISSUER,
            "sub": subject or instance,
            "aud": audience,
            "exp": now + 300,
            "nbf": now,
            "iat": now,
            "jti": hashlib.sha256(f"aws/x.{instance}".encode()).hexdigest(),
            "amazon": {
                "document": base64.b64encode(document).decode(),
                "signature": base64.b64encode(signature).decode(),
            },
        }
        payload.update(claims)
        return jwt.encode(
            _without_none(payload),
            signature if hmac_key is None else hmac_key,
            algorithm=alg,
            headers={"typ": "JWT"},
        )


# --- GCP -------------------------------------------------------------------------------------


@dataclass
class GCPCloud:
    """A Compute Engine VM, its service account, and Google's signing key."""

    issuer: Issuer = field(default_factory=lambda: Issuer(rsa_key("google"), "google-key-1"))
    iss: str = GOOGLE_ISSUER
    subject: str = "104242424242424242424"
    email: str = "vm-sa@my-project.iam.gserviceaccount.com"
    compute_engine: dict[str, Any] = field(default_factory=dict)
    lifetime: int = 3600

    def __post_init__(self) -> None:
        if not self.compute_engine:
            self.compute_engine = {
                "instance_creation_timestamp": int(time.time()) - 600,
                "instance_id": "5712345678901234567",
                "instance_name": "vm-1",
                "project_id": "my-project",
                "project_number": 123456789012,
                "zone": "us-central1-a",
            }

    def claims(self, audience: str) -> dict[str, Any]:
        return {
            "aud": audience,
            "azp": self.subject,
            "email": self.email,
            "email_verified": True,
            **_times(self.lifetime),
            "iss": self.iss,
            "sub": self.subject,
            "google": {"compute_engine": dict(self.compute_engine)},
        }

    def token(self, audience: str, *, kid: str | None = None,
              key: rsa.RSAPrivateKey | None = None, **overrides: Any) -> str:
        """An identity token (format=full) for `audience`; claims may be overridden."""
        claims = self.claims(audience)
        claims.update(overrides)
        return self.issuer.sign(_without_none(claims), kid=kid, key=key)


# --- Azure -----------------------------------------------------------------------------------


@dataclass
class AzureCloud:
    """An Azure VM with a managed identity, and its tenant's signing key."""

    tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    issuer: Issuer = field(default_factory=lambda: Issuer(rsa_key("azure"), "azure-key-1"))
    subscription: str = "9b6c8f2e-1111-4222-8333-444455556666"
    resource_group: str = "rg-web"
    vm_name: str = "web-vm-1"
    object_id: str = "f0e1d2c3-b4a5-4687-9788-a9b0c1d2e3f4"
    environment: str = "AzurePublicCloud"
    iss: str = ""
    lifetime: int = 3600

    def __post_init__(self) -> None:
        if not self.iss:
            self.iss = f"https://sts.windows.net/{self.tenant_id}/"

    @property
    def xms_mirid(self) -> str:
        # IMDS writes "resourcegroups" in lower case; step-ca matches case-insensitively.
        return (
            f"/subscriptions/{self.subscription}/resourcegroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.vm_name}"
        )

    def claims(self, resource: str = AZURE_RESOURCE) -> dict[str, Any]:
        now = int(time.time())
        return {
            "aud": resource,
            "iss": self.iss,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "aio": "E2ZgYDi0test",
            "appid": "5e29a1f8-0000-4b11-a222-333344445555",
            "appidacr": "2",
            "idp": self.iss,
            "oid": self.object_id,
            "rh": "0.test.",
            "sub": self.object_id,
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
            "xms_mirid": self.xms_mirid,
        }

    def token(self, resource: str = AZURE_RESOURCE, *, kid: str | None = None,
              key: rsa.RSAPrivateKey | None = None, **overrides: Any) -> str:
        claims = self.claims(resource)
        claims.update(overrides)
        return self.issuer.sign(_without_none(claims), kid=kid, key=key)


# --- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class CloudMetadataServer:
    """All three metadata services and the issuers' key endpoints, on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        self.aws = AWSCloud()
        self.gcp = GCPCloud()
        self.azure = AzureCloud()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._closed = False
        self._httpd = QuietServer((HOST, 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    @property
    def gcp_certs_url(self) -> str:
        return self.url + GCP_CERTS_PATH

    @property
    def azure_discovery_url(self) -> str:
        return f"{self.url}/{self.azure.tenant_id}/.well-known/openid-configuration"

    @property
    def azure_jwks_url(self) -> str:
        return f"{self.url}/{self.azure.tenant_id}/discovery/keys"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> CloudMetadataServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def record(self, item: Recorded) -> None:
        with self._lock:
            self.requests.append(item)

    def seen(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # --- routes (called from the handler threads) -----------------------------------------

    def route(self, req: Recorded) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request."""
        text, js = "text/plain", "application/json"
        aws, gcp, azure = self.aws, self.gcp, self.azure
        if req.path == AWS_TOKEN_PATH:
            if req.method != "PUT" or "x-aws-ec2-metadata-token-ttl-seconds" not in req.headers:
                return 400, text, b"missing ttl"
            if aws.v2_disabled:
                return 403, text, b"IMDSv2 disabled"
            new_session = secrets.token_urlsafe(24)
            aws.sessions.add(new_session)
            return 200, text, new_session.encode()
        if req.path in (AWS_DOCUMENT_PATH, AWS_SIGNATURE_PATH):
            if req.method != "GET":
                return 405, text, b""
            session = req.headers.get("x-aws-ec2-metadata-token")
            if session is not None and session not in aws.sessions:
                return 401, text, b"bad session token"
            if session is None and aws.require_v2:
                return 401, text, b"IMDSv2 session token required"
            if req.path == AWS_DOCUMENT_PATH:
                return 200, text, aws.document_bytes()
            return 200, text, aws.signature_text().encode()
        if req.path == GCP_IDENTITY_PATH:
            if req.headers.get("metadata-flavor") != "Google":
                return 403, text, b"Missing Metadata-Flavor:Google header."
            audience = req.query.get("audience", [""])[0]
            if not audience or req.query.get("format") != ["full"]:
                return 400, text, b"non-empty audience and format=full required"
            return 200, text, gcp.token(audience).encode()
        if req.path == GCP_CERTS_PATH:
            return 200, js, json.dumps(gcp.issuer.jwks()).encode()
        if req.path == AZURE_ENVIRONMENT_PATH:
            if req.headers.get("metadata", "").lower() != "true":
                return 400, text, b"Required metadata header not specified"
            return 200, text, azure.environment.encode()
        if req.path == AZURE_TOKEN_PATH:
            if req.headers.get("metadata", "").lower() != "true":
                return 400, js, b'{"error":"invalid_request"}'
            resource = req.query.get("resource", [""])[0]
            if req.query.get("api-version") != ["2018-02-01"] or not resource:
                return 400, js, b'{"error":"invalid_request"}'
            token = azure.token(resource)
            body = {
                "access_token": token,
                "client_id": "5e29a1f8-0000-4b11-a222-333344445555",
                "expires_in": str(azure.lifetime),
                "expires_on": str(int(time.time()) + azure.lifetime),
                "ext_expires_in": str(azure.lifetime),
                "not_before": str(int(time.time())),
                "resource": resource,
                "token_type": "Bearer",
            }
            return 200, js, json.dumps(body).encode()
        tenant = f"/{azure.tenant_id}"
        if req.path == f"{tenant}/.well-known/openid-configuration":
            doc = {
                "issuer": azure.iss,
                "jwks_uri": self.azure_jwks_url,
                "token_endpoint": f"{self.url}{tenant}/oauth2/token",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
            return 200, js, json.dumps(doc).encode()
        if req.path == f"{tenant}/discovery/keys":
            return 200, js, json.dumps(azure.issuer.jwks()).encode()
        return 404, text, b"not found"


def _handler_for(server: CloudMetadataServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            req = Recorded(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            server.record(req)
            status, content_type, body = server.route(req)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _serve
        do_PUT = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


# --- a CA core for the sign path -------------------------------------------------------------

CA_PASSWORD = b"cloud-tests-ca-password"
CA_DNS = "ca.test"


@cache
def _pki(base: str) -> Path:
    from appliance.pki import InitRequest, init_pki

    steppath = Path(base) / "step"
    init_pki(
        InitRequest(
            steppath, "Cloud Test", [CA_DNS, HOST], "127.0.0.1:9000", "admin", CA_PASSWORD,
            b"provisioner-password",
        )
    )
    return steppath


def make_authority(pki_dir: Path, db_dir: Path, provisioners: list[dict[str, Any]]) -> Any:
    """An Authority over a PKI made once in `pki_dir`, with these provisioners and a fresh
    SQLite database in `db_dir` (so trust-on-first-use ids of one test never leak into
    another)."""
    from appliance.authority import Authority
    from appliance.config import CAConfig
    from appliance.config_schema import DBSchema
    from provisioners.schema import parse_provisioner

    steppath = _pki(str(pki_dir))
    config = CAConfig.load(steppath / "config" / "ca.json")
    config = dataclasses.replace(
        config,
        provisioners=[parse_provisioner(p) for p in provisioners],
        db=DBSchema(type="sqlite", dataSource=str(db_dir / "ca.db")),
    )
    auth = Authority.open(config, password=CA_PASSWORD)
    auth.start_time -= 5  # tokens made right after start must not look older than the CA
    return auth


def sign_audience(host: str, token_id: str, port: int = 9000) -> str:
    """The audience step puts in AWS and GCP tokens: `https://<ca>/1.0/sign#<type>/<name>`."""
    return f"https://{host}:{port}/1.0/sign#{token_id}"

