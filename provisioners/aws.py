"""The AWS provisioner: EC2 instance identity documents signed by AWS.

The client (`step ca certificate` on the instance) reads the identity document and its
PKCS #1 v1.5 SHA-256 signature from the instance metadata service and wraps both in an HS256
JWT whose HMAC key is the raw signature. The CA checks the HMAC, then the signature of the
document against the configured AWS certificates, then the document and the claims.

ca.json (step-ca's fields, plus one Stepstone field):

    {"type": "AWS", "name": "aws",
     "accounts": ["123456789012"],          # allow-list of accountId (empty: any)
     "disableCustomSANs": false,            # true: only the instance's private IP and DNS name
     "disableTrustOnFirstUse": false,       # true: an instance may get more than one certificate
     "imdsVersions": ["v2", "v1"],          # what the client tries, in order (client side)
     "instanceAge": "1h",                   # refuse instances started longer ago (pendingTime)
     "iidRoots": "/path/to/aws.pem",        # PEM file with the AWS signing certificates
     "iidRootsPEM": "-----BEGIN CERTIFICATE-----..."}   # Stepstone: the same, inline

`iidRoots` and `iidRootsPEM` may both be given; every certificate of either is trusted. With
neither, the bundle `provisioners/aws_certificates.pem` is used when it is installed (step-ca
embeds AWS's published certificates); without one the provisioner fails to initialise (listed
as Uninitialized, its tokens get a 401).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pki.durations import parse_rfc3339
from pki.errors import unauthorized
from provisioners.audience import Method, matches
from provisioners.base import (
    ProvisionerInitError,
    SignOptions,
    Token,
)
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.iid import (
    ALLOWED_COMMON_NAMES,
    FragmentIIDProvisioner,
    check_times,
    host_grant,
    instance_age,
    with_fragment,
)
from provisioners.schema import AWSSchema
from provisioners.ssh import SSHSignGrant, require_ssh_enabled

AWS_ISSUER = "ec2.amazonaws.com"
IMDS_VERSIONS = ("v1", "v2")
DEFAULT_IMDS_VERSIONS = ["v2", "v1"]
#: Optional bundle of AWS's published instance identity certificates, used when the
#: provisioner names none.
BUNDLED_CERTIFICATES = Path(__file__).with_name("aws_certificates.pem")
#: Stepstone's field for inline PEM certificates (step-ca only knows the `iidRoots` path).
INLINE_ROOTS_FIELD = "iidRootsPEM"

_HMAC_ALGS = ["HS256", "HS384", "HS512"]
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)
_REQUIRED_DOC_FIELDS = (
    ("accountId", "accountId"),
    ("instanceId", "instanceId"),
    ("privateIp", "privateIp"),
    ("region", "region"),
)
_PREFIX = "aws.authorizeToken"


def parse_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """Every `CERTIFICATE` block (without PEM headers) of `data`, as step-ca reads iidRoots."""
    certs: list[x509.Certificate] = []
    for match in _PEM_BLOCK.finditer(data):
        if match.group(1) != b"CERTIFICATE" or b":" in match.group(2).split(b"\n", 1)[0]:
            continue
        try:
            der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
            certs.append(x509.load_der_x509_certificate(der))
        except (ValueError, binascii.Error):
            raise ProvisionerInitError(
                f"error parsing AWS IID certificate in {source}"
            ) from None
    return certs


def load_iid_certificates(config: AWSSchema) -> list[x509.Certificate]:
    """The certificates an identity document signature must verify with."""
    path = config.iidRoots or ""
    inline = config.iidRootsPEM or ""
    certs: list[x509.Certificate] = []
    if path:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ProvisionerInitError(f"error reading {path}: {exc.strerror}") from None
        certs += parse_certificates(data, path)
    if inline:
        certs += parse_certificates(inline.encode("utf-8"), INLINE_ROOTS_FIELD)
    if not path and not inline:
        if not BUNDLED_CERTIFICATES.is_file():
            raise ProvisionerInitError(
                "no AWS instance identity certificates: set iidRoots (a PEM file) or "
                f"{INLINE_ROOTS_FIELD} (inline PEM)"
            )
        certs += parse_certificates(BUNDLED_CERTIFICATES.read_bytes(), str(BUNDLED_CERTIFICATES))
    if not certs:
        raise ProvisionerInitError("error parsing AWS IID certificate: no certificates found")
    return certs


def private_dns_name(private_ip: str, region: str) -> str:
    """EC2's internal host name: ip-10-0-0-1.us-east-1.compute.internal."""
    return f"ip-{private_ip.replace('.', '-')}.{region}.compute.internal"


def _b64_bytes(value: object, what: str) -> bytes:
    """A Go `[]byte` JSON value: standard base64 with padding (line breaks ignored)."""
    if not isinstance(value, str) or not value:
        raise unauthorized(f"{_PREFIX}; error unmarshaling claims: amazon.{what} is missing")
    try:
        return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise unauthorized(
            f"{_PREFIX}; error unmarshaling claims: amazon.{what} is not base64"
        ) from None


class AWSProvisioner(FragmentIIDProvisioner):
    """step-ca's AWS provisioner (X.509 and SSH host sign, like step-ca: no revoke tokens)."""

    type_name = "AWS"
    fragment_type = "aws"
    config: AWSSchema

    def __init__(self, config: AWSSchema, claims: Claims) -> None:  # the type's own schema
        super().__init__(config, claims)

    def _load(self) -> None:
        config = self.config
        self.accounts = tuple(config.accounts or ())
        self.disable_custom_sans = bool(config.disableCustomSANs)
        self.disable_tofu = bool(config.disableTrustOnFirstUse)
        self.instance_age = instance_age(config.instanceAge)
        versions = config.imdsVersions or []
        for version in versions:
            if version not in IMDS_VERSIONS:
                raise ProvisionerInitError(
                    f"{version}: not a supported AWS Instance Metadata Service version"
                )
        self.imds_versions = list(versions) or list(DEFAULT_IMDS_VERSIONS)
        self.certificates = load_iid_certificates(config)
        self._jwt = jwt.PyJWT()

    def check_signature(self, document: bytes, signature: bytes) -> bool:
        """Whether any configured certificate verifies the document (RSA PKCS #1 v1.5 SHA-256)."""
        for cert in self.certificates:
            key = cert.public_key()
            if not isinstance(key, rsa.RSAPublicKey):
                continue
            try:
                key.verify(signature, document, padding.PKCS1v15(), hashes.SHA256())
                return True
            except (InvalidSignature, ValueError):
                continue
        return False

    def authorize(self, token: Token, method: Method, audiences: list[str]) -> SignOptions:
        if method is not Method.SIGN:
            raise unauthorized("provisioner.AuthorizeRevoke not implemented")
        claims, doc, expires = self._authorize_token(token, audiences)
        account, instance = str(doc["accountId"]), str(doc["instanceId"])
        private_ip, region = str(doc["privateIp"]), str(doc["region"])
        subject = str(claims.get("sub") or "")
        extension = None
        if not self.claims.disable_smallstep_extensions:
            extension = ProvisionerExtension(
                int(ProvisionerType.AWS), self.name, account, ("InstanceID", instance)
            )
        common: dict[str, Any] = {
            "subject": subject,
            "extension": extension,
            "extra": {ALLOWED_COMMON_NAMES: (subject,)},
        }
        if self.disable_custom_sans:
            # Names are the instance's own: CN the subject (or empty), SANs exactly its
            # private DNS name and IP; the CSR may ask for no others.
            return self.sign_options(
                token,
                instance,
                expires,
                sans=(private_dns_name(private_ip, region), private_ip),
                **common,
            )
        # Trust on first use: the CSR's names are taken as they are.
        return self.sign_options(token, instance, expires, sans=(), names_from_csr=True, **common)

    def authorize_ssh_sign(self, token: Token, audiences: list[str]) -> SSHSignGrant:
        """step-ca's AWS AuthorizeSSHSign: `enableSSHCA`; a host certificate, key ID the
        instance ID, principals the private IP and its internal DNS name (provisioners.iid)."""
        require_ssh_enabled(self.claims, "aws", self.name)
        _, doc, expires = self._authorize_token(token, audiences)
        instance, private_ip = str(doc["instanceId"]), str(doc["privateIp"])
        return host_grant(
            self,
            key_id=instance,
            principals=(private_ip, private_dns_name(private_ip, str(doc["region"]))),
            disable_custom_sans=self.disable_custom_sans,
            token_id=self.token_id(token, instance, expires),
        )

    def _authorize_token(
        self, token: Token, audiences: list[str]
    ) -> tuple[dict[str, Any], dict[str, Any], datetime]:
        """step-ca's AWS authorizeToken, in its order; returns (claims, document, exp)."""
        alg = token.header.get("alg")
        if alg not in _HMAC_ALGS:
            raise unauthorized(f"{_PREFIX}; error verifying claims: unexpected algorithm {alg}")
        amazon = token.claims.get("amazon")
        if not isinstance(amazon, dict):
            raise unauthorized(f"{_PREFIX}; error unmarshaling claims: amazon is missing")
        signature = _b64_bytes(amazon.get("signature"), "signature")
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token.raw,
                key=signature,
                algorithms=[str(alg)],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise unauthorized(f"{_PREFIX}; error verifying claims: {exc}") from None
        verified_amazon = claims.get("amazon")
        assert isinstance(verified_amazon, dict)  # the same payload, now authenticated
        document = _b64_bytes(verified_amazon.get("document"), "document")
        if not self.check_signature(document, signature):
            raise unauthorized(
                f"{_PREFIX}; invalid aws token signature: "
                "error validating identity document signature"
            )
        doc = _parse_document(document)
        for key, label in _REQUIRED_DOC_FIELDS:
            if not doc.get(key):
                raise unauthorized(f"{_PREFIX}; aws identity document {label} cannot be empty")

        now = datetime.now(UTC)
        if claims.get("iss") != AWS_ISSUER:
            raise unauthorized(f"{_PREFIX}; invalid aws token: invalid issuer claim (iss)")
        expires = check_times(claims, f"{_PREFIX}; invalid aws token", now)
        if not matches(claims.get("aud"), with_fragment(audiences, self.token_id_prefix)):
            raise unauthorized(f"{_PREFIX}; invalid token - invalid audience claim (aud)")
        subject = claims.get("sub")
        if subject is not None and not isinstance(subject, str):
            raise unauthorized(f"{_PREFIX}; invalid token - invalid subject claim (sub)")
        if self.disable_custom_sans and subject not in (
            doc["instanceId"],
            doc["privateIp"],
            private_dns_name(str(doc["privateIp"]), str(doc["region"])),
        ):
            raise unauthorized(f"{_PREFIX}; invalid token - invalid subject claim (sub)")
        if self.accounts and doc["accountId"] not in self.accounts:
            raise unauthorized(
                f"{_PREFIX}; invalid aws identity document - accountId is not valid"
            )
        if self.instance_age is not None:
            pending = doc.get("pendingTime")
            started = pending if isinstance(pending, datetime) else datetime.min.replace(tzinfo=UTC)
            if now - started > self.instance_age:
                raise unauthorized(f"{_PREFIX}; aws identity document pendingTime is too old")
        return claims, doc, expires


def _parse_document(raw: bytes) -> dict[str, Any]:
    """The identity document JSON with Go's typing: strings are strings, pendingTime a time."""
    failure = f"{_PREFIX}; error unmarshaling aws identity document"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise unauthorized(failure) from None
    if not isinstance(doc, dict):
        raise unauthorized(failure)
    for key in ("accountId", "instanceId", "privateIp", "region", "availabilityZone"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise unauthorized(f"{failure}: {key} is not a string")
    pending = doc.get("pendingTime")
    if pending is not None:
        if not isinstance(pending, str):
            raise unauthorized(f"{failure}: pendingTime is not a time")
        try:
            doc["pendingTime"] = parse_rfc3339(pending)
        except ValueError:
            raise unauthorized(f"{failure}: pendingTime is not a time") from None
    return doc

