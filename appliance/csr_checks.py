"""Checks of a CSR against what a token allows (step-ca's CSR validators)."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pki.errors import CAError, ErrorKind, bad_request, forbidden
from pki.sans import SubjectAltNames
from provisioners.base import SignOptions

MIN_RSA_BITS = 2048
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def parse_csr(pem: str) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR and check its self-signature (400 `invalid csr` when it is wrong)."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except (ValueError, TypeError, UnicodeEncodeError):
        # step-ca decodes the CSR while decoding the JSON body: same message.
        raise CAError(
            ErrorKind.BAD_REQUEST,
            "csr is not a PEM certificate request",
            public="error decoding json",
        ) from None
    try:
        ok = csr.is_signature_valid
    except (UnsupportedAlgorithm, ValueError):  # a key or algorithm that cannot be checked
        ok = False
    if not ok:
        raise bad_request("invalid csr")
    return csr


def common_name(csr: x509.CertificateSigningRequest) -> str:
    """The CSR's CN, or ""."""
    attrs = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _fmt(values: tuple[object, ...] | list[object]) -> str:
    return "[" + " ".join(str(v) for v in values) + "]"


def check_key(
    csr: x509.CertificateSigningRequest, key: CertificatePublicKeyTypes | None = None
) -> None:
    """RSA >= 2048 bits; ECDSA on P-256/384/521; Ed25519. Anything else is refused. `key`:
    the CSR's public key when the caller has it already (each `public_key()` builds one)."""
    if key is None:
        key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise forbidden(
                f"certificate request RSA key must be at least {MIN_RSA_BITS} bits "
                f"({MIN_RSA_BITS // 8} bytes)"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise forbidden(f"certificate request EC key curve {key.curve.name} is not supported")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise bad_request(
            f"certificate request key of type '{type(key).__name__}' is not supported"
        )


def check_common_name(csr: x509.CertificateSigningRequest, options: SignOptions) -> None:
    """The CSR's CN must be empty or the token's subject (step-ca's JWK rule)."""
    cn = common_name(csr)
    if cn and cn != options.subject:
        raise forbidden(
            f"certificate request does not contain the valid common name - got {cn}, "
            f"want {options.subject}"
        )


def check_sans(
    csr: x509.CertificateSigningRequest,
    options: SignOptions,
    want: SubjectAltNames | None = None,
) -> None:
    """Each SAN type present in the CSR must equal the token's names of that type (`want`:
    `options.sans` already split, when the caller has it)."""
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        ext = None
    got = SubjectAltNames.of(ext)
    if want is None:
        want = SubjectAltNames.split(options.sans)
    for label, got_v, want_v in (
        ("DNS names", got.dns, want.dns),
        ("email addresses", got.emails, want.emails),
        ("IP addresses", got.ips, want.ips),
        ("URIs", got.uris, want.uris),
    ):
        if got_v and set(got_v) != set(want_v):
            raise forbidden(
                f"certificate request does not contain the valid {label} - "
                f"got {_fmt(list(got_v))}, want {_fmt(list(want_v))}"
            )


def check_fingerprint(csr: x509.CertificateSigningRequest, options: SignOptions) -> None:
    """A token's `cnf` binds it to one CSR: base64url SHA-256 of the CSR's DER."""
    if options.csr_fingerprint is None:
        return
    digest = hashlib.sha256(csr.public_bytes(Encoding.DER)).digest()
    actual = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    if actual != options.csr_fingerprint:
        raise forbidden(
            f'certificate request fingerprint does not match "{options.csr_fingerprint}"'
        )


def names_from_csr(
    csr: x509.CertificateSigningRequest, options: SignOptions
) -> tuple[str, tuple[str, ...]]:
    """The CSR's own CN and SANs (IID, OIDC admins, X5C), within `allowed_names` if set."""
    cn = common_name(csr) or options.subject
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        ext = None
    names = SubjectAltNames.of(ext)
    sans = (*names.dns, *(str(ip) for ip in names.ips), *names.emails, *names.uris)
    allowed_cns = options.extra.get("allowed_common_names")
    if allowed_cns is not None and common_name(csr) and common_name(csr) not in allowed_cns:
        raise forbidden(
            f"certificate request does not contain the valid common name - got "
            f"{common_name(csr)}, want {_fmt(list(allowed_cns))}"
        )
    if options.allowed_names is not None:
        allowed = set(options.allowed_names)
        for name in (cn, *sans):
            if name and name not in allowed:
                raise forbidden(
                    f"certificate request contains a name that is not allowed - got {name}, "
                    f"want one of {_fmt(list(options.allowed_names))}"
                )
    return cn, sans
