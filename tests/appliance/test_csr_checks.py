"""CSR checks against what a token allows: keys, common name, SANs by type, `cnf`, and the
names a CSR may bring itself (IID, OIDC admins, X5C)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from api.errors import http_error
from appliance import csr_checks
from pki.errors import CAError
from provisioners.base import SignOptions
from provisioners.claims import Claims
from tests.appliance.conftest import make_csr


def _options(
    subject: str = "foo.test", sans: tuple[str, ...] = ("foo.test",), **kw: Any
) -> SignOptions:
    return SignOptions(
        provisioner_name="admin",
        subject=subject,
        sans=sans,
        claims=Claims(),
        extension=None,
        token_id="jti",
        token_expires=datetime.now(UTC),
        **kw,
    )


def _csr(
    cn: str | None = "foo.test", sans: list[str] | None = None, key: Any = None
) -> x509.CertificateSigningRequest:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or "x")])
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, None)
        return csr_checks.parse_csr(csr.public_bytes(Encoding.PEM).decode())
    return csr_checks.parse_csr(make_csr(cn, sans or [], key))


def _refused(status: int, call: Any, *args: Any) -> str:
    with pytest.raises(CAError) as err:
        call(*args)
    got, message = http_error(err.value)
    assert got == status, err.value.reason
    return message


# --- parse_csr ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "not pem at all",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "\ud800",  # a lone surrogate cannot even be encoded
    ],
)
def test_undecodable_csr_reads_like_step_ca_json_error(pem: str) -> None:
    message = _refused(400, csr_checks.parse_csr, pem)
    assert message == "The request could not be completed: error decoding json."


def test_a_good_csr_parses() -> None:
    assert csr_checks.common_name(_csr("foo.test")) == "foo.test"
    assert csr_checks.common_name(_csr(None, ["foo.test"])) == ""


# --- check_key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP521R1()),
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
)
def test_supported_keys_pass(key: Any) -> None:
    csr_checks.check_key(_csr(key=key))


def test_other_curves_are_403() -> None:
    key = ec.generate_private_key(ec.SECP224R1())
    message = _refused(403, csr_checks.check_key, _csr(key=key))
    assert "EC key curve secp224r1 is not supported" in message


def test_other_key_types_are_400() -> None:
    message = _refused(400, csr_checks.check_key, _csr(key=ed448.Ed448PrivateKey.generate()))
    assert message == (
        "The request could not be completed: certificate request key of type "
        "'Ed448PublicKey' is not supported."
    )


# --- check_common_name / check_sans ---------------------------------------------------------


def test_common_name_may_be_empty_or_the_subject() -> None:
    csr_checks.check_common_name(_csr(None, ["foo.test"]), _options())
    csr_checks.check_common_name(_csr("foo.test"), _options())
    message = _refused(403, csr_checks.check_common_name, _csr("bar.test"), _options())
    assert "valid common name - got bar.test, want foo.test" in message


def test_sans_compare_as_sets_per_type() -> None:
    options = _options(sans=("a.test", "b.test", "10.0.0.1"))
    csr_checks.check_sans(_csr(None, ["b.test", "a.test", "10.0.0.1"]), options)
    # A type the CSR does not carry is not checked: the certificate gets the token's names.
    csr_checks.check_sans(_csr(None, ["a.test", "b.test"]), options)
    csr_checks.check_sans(_csr("foo.test"), options)


@pytest.mark.parametrize(
    ("csr_sans", "token_sans", "label"),
    [
        (["a.test"], ("a.test", "b.test"), "DNS names - got [a.test], want [a.test b.test]"),
        (["x@a.test"], ("y@a.test",), "email addresses - got [x@a.test], want [y@a.test]"),
        (["10.0.0.2"], ("10.0.0.1",), "IP addresses - got [10.0.0.2], want [10.0.0.1]"),
        (["spiffe://a/b"], ("a.test",), "URIs - got [spiffe://a/b], want []"),
    ],
)
def test_a_san_type_that_differs_is_403(
    csr_sans: list[str], token_sans: tuple[str, ...], label: str
) -> None:
    message = _refused(403, csr_checks.check_sans, _csr(None, csr_sans), _options(sans=token_sans))
    assert message == (
        "The request was forbidden by the certificate authority: certificate request does "
        f"not contain the valid {label}."
    )


# --- check_fingerprint ----------------------------------------------------------------------


def test_cnf_fingerprint_binds_one_csr() -> None:
    csr = _csr()
    digest = hashlib.sha256(csr.public_bytes(Encoding.DER)).digest()
    good = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    csr_checks.check_fingerprint(csr, _options())  # no cnf: nothing to check
    csr_checks.check_fingerprint(csr, _options(csr_fingerprint=good))
    message = _refused(403, csr_checks.check_fingerprint, _csr(), _options(csr_fingerprint=good))
    assert f'fingerprint does not match "{good}"' in message


# --- names_from_csr -------------------------------------------------------------------------


def test_names_come_from_the_csr_in_type_order() -> None:
    csr = _csr("host.test", ["spiffe://a/b", "x@a.test", "10.0.0.1", "host.test"])
    cn, sans = csr_checks.names_from_csr(csr, _options(subject="token-sub"))
    assert cn == "host.test"
    assert sans == ("host.test", "10.0.0.1", "x@a.test", "spiffe://a/b")


def test_without_a_cn_the_token_subject_is_used() -> None:
    cn, sans = csr_checks.names_from_csr(_csr(None, ["a.test"]), _options(subject="i-123"))
    assert (cn, sans) == ("i-123", ("a.test",))


def test_allowed_names_limit_every_name() -> None:
    options = _options(allowed_names=("a.test", "10.0.0.1"))
    assert csr_checks.names_from_csr(_csr("a.test", ["10.0.0.1"]), options)[1] == ("10.0.0.1",)
    message = _refused(403, csr_checks.names_from_csr, _csr("a.test", ["evil.test"]), options)
    assert "contains a name that is not allowed - got evil.test, want one of [a.test 10.0.0.1]" in (
        message
    )


def test_allowed_common_names_limit_the_cn() -> None:
    options = _options(extra={"allowed_common_names": ["admin@a.test"]})
    assert csr_checks.names_from_csr(_csr("admin@a.test"), options)[0] == "admin@a.test"
    assert csr_checks.names_from_csr(_csr(None, ["a.test"]), options)[0] == "foo.test"
    message = _refused(403, csr_checks.names_from_csr, _csr("root@a.test"), options)
    assert "valid common name - got root@a.test, want [admin@a.test]" in message
