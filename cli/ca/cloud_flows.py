"""Token flows of the cloud instance-identity provisioners (AWS, GCP, Azure).

On a cloud VM, `step ca token` / `step ca certificate` with such a provisioner asks the
instance metadata service for a signed statement about the VM, as step does:

* AWS: the instance identity document and its signature (IMDSv2 session token first, then
  v1, or as the provisioner's `imdsVersions` says), wrapped in an HS256 JWT keyed with the
  signature;
* GCP: an identity token for the audience `<ca>/1.0/sign#gcp/<name>` (`format=full`);
* Azure: the managed identity's access token for the cloud's management resource.

Where the metadata service is: the `metadata_url` option of the token request, else the
environment, else the cloud's own address:

    STEP_AWS_METADATA_URL    default http://169.254.169.254
    STEP_GCP_METADATA_URL    default http://metadata.google.internal
    STEP_AZURE_METADATA_URL  default http://169.254.169.254

Each is a base URL; the cloud's paths (e.g. `/latest/dynamic/instance-identity/document`)
are appended. Requests never go through a proxy (the metadata service is link-local).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt

from cli.ca import ui
from cli.ca.flows import TokenRequest
from cli.common import CLIError
from provisioners.azure import XMS_MIRID
from provisioners.iid import audience_fragment

AWS_METADATA_ENV = "STEP_AWS_METADATA_URL"
GCP_METADATA_ENV = "STEP_GCP_METADATA_URL"
AZURE_METADATA_ENV = "STEP_AZURE_METADATA_URL"
AWS_METADATA_DEFAULT = "http://169.254.169.254"
GCP_METADATA_DEFAULT = "http://metadata.google.internal"
AZURE_METADATA_DEFAULT = "http://169.254.169.254"

AWS_TOKEN_PATH = "/latest/api/token"
AWS_DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"
AWS_SIGNATURE_PATH = "/latest/dynamic/instance-identity/signature"
AWS_TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
AWS_TOKEN_HEADER = "X-aws-ec2-metadata-token"
AWS_TOKEN_TTL = "30"
AWS_ISSUER = "ec2.amazonaws.com"

GCP_IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"

AZURE_TOKEN_PATH = "/metadata/identity/oauth2/token"
AZURE_TOKEN_API_VERSION = "2018-02-01"
AZURE_ENVIRONMENT_PATH = "/metadata/instance/compute/azEnvironment"
AZURE_ENVIRONMENT_API_VERSION = "2021-02-01"
AZURE_ENVIRONMENTS = {
    "AzurePublicCloud": "https://management.azure.com/",
    "AzureCloud": "https://management.azure.com/",
    "AzureUSGovernmentCloud": "https://management.usgovcloudapi.net/",
    "AzureUSGovernment": "https://management.usgovcloudapi.net/",
    "AzureChinaCloud": "https://management.chinacloudapi.cn/",
    "AzureGermanCloud": "https://management.microsoftazure.de/",
}

TIMEOUT = 10.0
_AWS_HELP = (
    "error retrieving identity document:\n  Are you in an AWS VM?\n"
    "  Is the metadata service enabled?\n  Are you using the proper metadata service version?"
)


def metadata_url(req: TokenRequest, env: str, default: str) -> str:
    """The metadata service base URL: `--metadata-url`-style option, then `env`, then default."""
    value = req.options.get("metadata_url") or os.environ.get(env) or default
    return str(value).rstrip("/")


def sign_audience(ca_url: str, token_id: str) -> str:
    """step's generateSignAudience: `https://<ca host>/1.0/sign#<type>/<name>`."""
    parts = urlsplit(ca_url if "://" in ca_url else "https://" + ca_url)
    return urlunsplit(("https", parts.netloc, "/1.0/sign", "", audience_fragment(token_id)))


def _client() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, trust_env=False, follow_redirects=False)


# --- AWS ------------------------------------------------------------------------------------


def _aws_read(client: httpx.Client, base: str, path: str, versions: list[str]) -> bytes:
    """step's AWS readURL: each IMDS version in turn until one answers below 400."""
    last = ""
    for version in versions:
        try:
            if version == "v1":
                resp = client.get(base + path)
            elif version == "v2":
                session = client.put(
                    base + AWS_TOKEN_PATH, headers={AWS_TOKEN_TTL_HEADER: AWS_TOKEN_TTL}
                )
                if session.status_code >= 400:
                    last = f"request for API token returned status code {session.status_code}"
                    continue
                resp = client.get(base + path, headers={AWS_TOKEN_HEADER: session.text})
            else:
                raise CLIError(f"{version}: not a supported AWS Instance Metadata Service version")
        except httpx.HTTPError as exc:
            last = str(exc)
            continue
        if resp.status_code < 400:
            return resp.content
        last = f"request for metadata returned status code {resp.status_code}"
    raise CLIError(f"{_AWS_HELP}\n{last}".rstrip())


def aws_identity_token(
    base: str,
    provisioner: dict[str, Any],
    subject: str,
    ca_url: str,
    *,
    not_before: datetime | None = None,
    expires: datetime | None = None,
) -> str:
    """An AWS provisioner token from the identity document at `base` (step's GetIdentityToken)."""
    name = str(provisioner.get("name", ""))
    versions = provisioner.get("imdsVersions") or ["v2", "v1"]
    if not isinstance(versions, list):
        raise CLIError("provisioner imdsVersions must be a list")
    versions = [str(v) for v in versions]
    with _client() as client:
        document = _aws_read(client, base, AWS_DOCUMENT_PATH, versions)
        encoded = _aws_read(client, base, AWS_SIGNATURE_PATH, versions)
    try:
        doc = json.loads(document)
        instance_id = str(doc["instanceId"])
    except (ValueError, KeyError, TypeError):
        raise CLIError("error unmarshaling identity document") from None
    try:
        text = encoded.decode("ascii").replace("\r", "").replace("\n", "")
        signature = base64.b64decode(text, validate=True)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        raise CLIError("error decoding identity document signature") from None
    if not signature:
        raise CLIError("error decoding identity document signature")
    token_id = f"aws/{name}"
    now = datetime.now(UTC)
    nbf = not_before or now
    exp = expires or datetime.fromtimestamp(now.timestamp() + 300, UTC)
    claims: dict[str, Any] = {
        "iss": AWS_ISSUER,
        "sub": subject,
        "aud": sign_audience(ca_url, token_id),
        "exp": int(exp.timestamp()),
        "nbf": int(nbf.timestamp()),
        "iat": int(now.timestamp()),
        "jti": hashlib.sha256(f"{token_id}.{instance_id}".encode()).hexdigest(),
        "amazon": {
            "document": base64.b64encode(document).decode("ascii"),
            "signature": base64.b64encode(signature).decode("ascii"),
        },
    }
    return jwt.encode(claims, signature, algorithm="HS256", headers={"typ": "JWT"})


def aws_flow(req: TokenRequest, provisioner: dict[str, Any]) -> str:
    """`step ca token` with an AWS provisioner."""
    ui.selected("Provisioner", f"{provisioner.get('name')} (AWS)")
    return aws_identity_token(
        metadata_url(req, AWS_METADATA_ENV, AWS_METADATA_DEFAULT),
        provisioner,
        req.subject,
        req.client.ca_url,
        not_before=req.not_before,
        expires=req.expires,
    )


# --- GCP ------------------------------------------------------------------------------------


def gcp_identity_token(base: str, provisioner: dict[str, Any], ca_url: str) -> str:
    """A Google-signed identity token for this CA and provisioner (step's GetIdentityToken)."""
    audience = sign_audience(ca_url, f"gcp/{provisioner.get('name', '')}")
    params = {"audience": audience, "format": "full", "licenses": "FALSE"}
    try:
        with _client() as client:
            resp = client.get(
                base + GCP_IDENTITY_PATH, params=params, headers={"Metadata-Flavor": "Google"}
            )
    except httpx.HTTPError as exc:
        raise CLIError(f"error doing identity request, are you in a GCP VM?: {exc}") from None
    if resp.status_code >= 400:
        raise CLIError(
            f"error on identity request: status={resp.status_code}, response={resp.text.strip()}"
        )
    return resp.text.strip()


def gcp_flow(req: TokenRequest, provisioner: dict[str, Any]) -> str:
    """`step ca token` with a GCP provisioner (the subject is not part of the token)."""
    ui.selected("Provisioner", f"{provisioner.get('name')} (GCP)")
    return gcp_identity_token(
        metadata_url(req, GCP_METADATA_ENV, GCP_METADATA_DEFAULT), provisioner, req.client.ca_url
    )


# --- Azure ----------------------------------------------------------------------------------


def azure_identity_token(base: str) -> str:
    """The managed identity's access token for the VM's cloud (step's GetIdentityToken)."""
    try:
        with _client() as client:
            env = client.get(
                base + AZURE_ENVIRONMENT_PATH,
                params={"format": "text", "api-version": AZURE_ENVIRONMENT_API_VERSION},
                headers={"Metadata": "True"},
            )
            if env.status_code >= 400:
                raise CLIError(
                    f"error getting azure environment: status={env.status_code}, "
                    f"response={env.text.strip()}"
                )
            resource = AZURE_ENVIRONMENTS.get(
                env.text.strip(), AZURE_ENVIRONMENTS["AzurePublicCloud"]
            )
            resp = client.get(
                base + AZURE_TOKEN_PATH,
                params={"resource": resource, "api-version": AZURE_TOKEN_API_VERSION},
                headers={"Metadata": "true"},
            )
    except httpx.HTTPError as exc:
        raise CLIError(f"error getting identity token, are you in a Azure VM?: {exc}") from None
    if resp.status_code >= 400:
        raise CLIError(
            f"error getting identity token: status={resp.status_code}, "
            f"response={resp.text.strip()}"
        )
    try:
        token = resp.json()["access_token"]
    except (ValueError, KeyError, TypeError):
        raise CLIError("error unmarshaling identity token response") from None
    if not isinstance(token, str) or not token:
        raise CLIError("error unmarshaling identity token response")
    return token


def azure_flow(req: TokenRequest, provisioner: dict[str, Any]) -> str:
    """`step ca token` with an Azure provisioner (the subject is not part of the token)."""
    ui.selected("Provisioner", f"{provisioner.get('name')} (Azure)")
    return azure_identity_token(metadata_url(req, AZURE_METADATA_ENV, AZURE_METADATA_DEFAULT))


# --- the CSR step makes for a cloud token ---------------------------------------------------


def default_sans(token: str, subject: str, disable_custom_sans: bool) -> list[str] | None:
    """The SANs `step ca certificate` puts in the CSR for a cloud token when no --san is given.

    AWS: the private IP and `ip-<a-b-c-d>.<region>.compute.internal`; GCP:
    `<vm>.c.<project>.internal` and `<vm>.<zone>.c.<project>.internal`; Azure: the VM name;
    plus SUBJECT unless the provisioner has disableCustomSANs. None for other tokens.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    names: list[str] | None = None
    amazon, google = claims.get("amazon"), claims.get("google")
    if isinstance(amazon, dict):
        try:
            doc = json.loads(base64.b64decode(str(amazon.get("document", ""))))
            ip, region = str(doc["privateIp"]), str(doc["region"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        names = [ip, f"ip-{ip.replace('.', '-')}.{region}.compute.internal"]
    elif isinstance(google, dict) and isinstance(google.get("compute_engine"), dict):
        ce = google["compute_engine"]
        vm, zone, project = ce.get("instance_name"), ce.get("zone"), ce.get("project_id")
        names = [f"{vm}.c.{project}.internal", f"{vm}.{zone}.c.{project}.internal"]
    elif isinstance(claims.get("xms_mirid"), str):
        match = XMS_MIRID.match(claims["xms_mirid"])
        if match is None:
            return None
        names = [match.group(4)]
    if names is None:
        return None
    if not disable_custom_sans and subject not in names:
        names.append(subject)
    return names
