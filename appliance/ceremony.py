"""Key ceremonies: make the offline root and sign the appliance's intermediate with it.

The root is born in a key store that can be carried away (an HSM token, a security key, an
encrypted file on removable media), signs the intermediate's CSR on a machine that is not the
appliance, and leaves. Everything here works on any key store through `open_keystore` and the
`KeyStore` interface only. Each step is logged in the ceremony record
(`appliance.ceremony_record`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from appliance.ceremony_record import CeremonyError, public_key_sha256

# Re-exported for tests/e2e/test_ceremony.py and tests/cli/test_kms.py, which reach the
# record's helpers through this module.
from appliance.ceremony_record import verify_record as verify_record
from appliance.profiles import build_intermediate, build_root
from keystores import KeyNotFoundError, KeySpec, KeyStore, PublicKey, SigningKey, open_keystore
from pki.certs import is_ca
from pki.fingerprint import certificate_fingerprint as certificate_sha256

__all__ = [
    "RootResult",
    "certificate_sha256",
    "check_issued_by",
    "create_root",
    "csr_name",
    "ensure_key",
    "public_key_sha256",
    "same_key",
    "sign_intermediate",
    "utc_now",
    "verify_record",
]


def utc_now() -> datetime:
    """Now in UTC, to the second (certificates carry no fractions)."""
    return datetime.now(UTC).replace(microsecond=0)


def ensure_key(store: KeyStore, uri: str, spec: KeySpec) -> tuple[PublicKey, bool]:
    """The key at `uri`: taken when it exists, else created. Returns (public key, created)."""
    try:
        return store.public_key(uri), False
    except KeyNotFoundError:
        return store.create_key(uri, spec), True


def same_key(a: PublicKeyTypes | x509.Certificate, b: PublicKeyTypes | x509.Certificate) -> bool:
    """Whether two public keys (or certificates' keys) are the same key."""
    return public_key_sha256(a) == public_key_sha256(b)


def check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    """`cert` names `issuer` as its issuer and carries its valid signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError) as exc:
        raise CeremonyError(f"{what} was not issued by the root: {exc}") from None
    except InvalidSignature:  # it has no message
        raise CeremonyError(f"{what} was not signed by the root (InvalidSignature)") from None


@dataclass(frozen=True)
class RootResult:
    """A root made (or re-made) from a key in some store."""

    certificate: x509.Certificate
    public_key: PublicKey
    key_created: bool


def create_root(
    root_uri: str,
    name: str,
    spec: KeySpec,
    password: bytes | None,
    now: datetime | None = None,
    base_dir: Path | None = None,
) -> RootResult:
    """Generate (or take) the root key at `root_uri` and self-sign `<name> Root CA`."""
    with open_keystore(root_uri, password=password, base_dir=base_dir) as store:
        public, created = ensure_key(store, root_uri, spec)
        signer = store.signer(root_uri)
        cert = build_root(name, signer, now or utc_now())
    return RootResult(cert, public, created)


def _csr_public_key(csr: x509.CertificateSigningRequest) -> PublicKey:
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise CeremonyError(f"the CSR's {type(key).__name__} key cannot be an intermediate key")
    return key


def csr_name(csr: x509.CertificateSigningRequest) -> str | None:
    """The PKI name a CSR from `step ca init --intermediate-csr` carries (its O attribute)."""
    values = csr.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else None


def sign_intermediate(
    csr: x509.CertificateSigningRequest,
    root_uri: str,
    root: x509.Certificate,
    password: bytes | None,
    name: str | None = None,
    now: datetime | None = None,
    base_dir: Path | None = None,
) -> tuple[x509.Certificate, PublicKey]:
    """Sign the intermediate CSR with the root key: step's intermediate profile (10 years,
    path length 0, `<name> Intermediate CA`, O `<name>`). `name` defaults to the CSR's O.

    Returns the certificate and the root's public key (from the store).
    """
    if not csr.is_signature_valid:
        raise CeremonyError("the CSR's signature does not verify")
    public = _csr_public_key(csr)
    pki_name = name or csr_name(csr)
    if not pki_name:
        raise CeremonyError("the CSR has no organization (O): give the PKI name with --name")
    if not is_ca(root):
        raise CeremonyError("the root certificate is not a CA certificate")
    with open_keystore(root_uri, password=password, base_dir=base_dir) as store:
        root_public = store.public_key(root_uri)
        if not same_key(root_public, root.public_key()):
            raise CeremonyError("the root key does not match the root certificate")
        signer: SigningKey = store.signer(root_uri)
        cert = build_intermediate(pki_name, public, root, signer, now or utc_now())
    check_issued_by(cert, root, "the new intermediate")
    return cert, root_public
