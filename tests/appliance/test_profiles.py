"""Certificate profiles: how names split, which hash an issuer key signs with, and what each
builder puts in root, intermediate, leaf and renewed certificates."""

from __future__ import annotations

import ipaddress
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from appliance import profiles
from appliance.profiles import (
    CA_VALIDITY,
    LeafRequest,
    RevocationPointers,
    build_intermediate,
    build_leaf,
    build_renewal,
    build_root,
    hash_for,
    subject_name,
)
from pki.certs import aki_for
from pki.sans import SubjectAltNames
from provisioners.extension import ProvisionerExtension

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = build_root("Acme", root_key, NOW)
    key = ec.generate_private_key(ec.SECP256R1())
    return build_intermediate("Acme", key.public_key(), root, root_key, NOW), key


def _leaf(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], **kw: Any) -> x509.Certificate:
    values: dict[str, Any] = {
        "subject": subject_name("foo.test"),
        "sans": SubjectAltNames.split(["foo.test"]),
        "public_key": ec.generate_private_key(ec.SECP256R1()).public_key(),
        "not_before": NOW,
        "not_after": NOW + timedelta(hours=1),
    }
    values.update(kw)
    return build_leaf(LeafRequest(**values), *ca)


def test_random_serial_is_positive_128_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    serials = {profiles.random_serial() for _ in range(50)}
    assert len(serials) == 50 and all(0 < s < 2**128 for s in serials)
    monkeypatch.setattr(secrets, "randbits", lambda _bits: 0)
    assert profiles.random_serial() == 1  # zero is not a valid serial


@pytest.mark.parametrize(
    ("key", "name"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "sha256"),
        (ec.generate_private_key(ec.SECP384R1()), "sha384"),
        (ec.generate_private_key(ec.SECP521R1()), "sha512"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "sha256"),
        (ed25519.Ed25519PrivateKey.generate(), None),
    ],
)
def test_hash_follows_the_issuer_key(key: Any, name: str | None) -> None:
    algorithm = hash_for(key)
    assert (algorithm.name if algorithm else None) == name


def test_names_split_like_step() -> None:
    names = SubjectAltNames.split(
        ["a.test", "10.0.0.1", "::1", "x@a.test", "spiffe://a/b", "mailto:x@a.test", "*.a.test"]
    )
    assert names.dns == ("a.test", "*.a.test")
    assert names.ips == (ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("::1"))
    assert names.emails == ("x@a.test",)
    assert names.uris == ("spiffe://a/b", "mailto:x@a.test")  # a scheme wins over the @
    assert bool(names) and not SubjectAltNames.split([])
    ext = x509.SubjectAlternativeName(names.general_names())
    assert SubjectAltNames.of(ext) == names
    assert SubjectAltNames.of(None) == SubjectAltNames()


def test_subject_name_puts_template_attributes_before_the_cn() -> None:
    template = {"country": "NZ", "organization": ["Acme", "Acme Labs"], "locality": ""}
    name = subject_name("foo.test", template)
    assert [(a.oid, a.value) for a in name] == [
        (NameOID.COUNTRY_NAME, "NZ"),
        (NameOID.ORGANIZATION_NAME, "Acme"),
        (NameOID.ORGANIZATION_NAME, "Acme Labs"),
        (NameOID.COMMON_NAME, "foo.test"),
    ]
    assert len(subject_name("")) == 0
    with pytest.raises(ValueError):
        subject_name("x" * 65)  # X.509 caps a CN at 64 characters


def test_root_and_intermediate_profiles(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    inter, _ = ca
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = build_root("Acme", root_key, NOW)
    assert root.subject == root.issuer
    assert root.subject.rfc4514_string() == "CN=Acme Root CA,O=Acme"
    assert root.not_valid_after_utc - root.not_valid_before_utc == CA_VALIDITY
    assert root.signature_hash_algorithm is not None
    assert root.signature_hash_algorithm.name == "sha384"
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 1
    ku = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    assert inter.subject.rfc4514_string() == "CN=Acme Intermediate CA,O=Acme"
    assert inter.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0


def test_aki_falls_back_to_the_issuer_key_without_an_ski() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")])
    bare = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    expected = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    assert aki_for(bare).key_identifier == expected


def test_leaf_without_subject_gets_a_critical_san(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    leaf = _leaf(ca, subject=x509.Name([]))
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    named = _leaf(ca)
    assert not named.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    with pytest.raises(x509.ExtensionNotFound):
        _leaf(ca, sans=SubjectAltNames()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )


def test_leaf_carries_the_provisioner_and_revocation_pointers(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    pointers = RevocationPointers(
        "https://ca.test/1.0/crl", "https://ca.test/ocsp", "https://ca.test/1.0/intermediate.crt"
    )
    ext = ProvisionerExtension(1, "admin", "kid")
    leaf = _leaf(ca, extension=ext, revocation=pointers)
    assert ProvisionerExtension.from_certificate(leaf) == ext
    dp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name == [x509.UniformResourceIdentifier("https://ca.test/1.0/crl")]
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, "https://ca.test/ocsp"),
        (AuthorityInformationAccessOID.CA_ISSUERS, "https://ca.test/1.0/intermediate.crt"),
    ]
    plain = _leaf(ca)
    assert ProvisionerExtension.from_certificate(plain) is None
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.CRLDistributionPoints)


def test_values_built_once_are_not_shared_mutably(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    # Names, revocation pointers and the provisioner extension are built once per request or
    # per CA and reused; what a caller gets back can be changed without touching the next leaf.
    names = SubjectAltNames.split(["foo.test", "10.0.0.1"])
    first = names.general_names()
    first.clear()
    assert names.general_names() == [
        x509.DNSName("foo.test"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    ]
    pointers = RevocationPointers("https://c/crl", "https://c/ocsp", "https://c/i.crt")
    pointers.extensions().clear()
    assert len(pointers.extensions()) == 2
    ext = ProvisionerExtension(1, "admin", "kid")
    leaves = [_leaf(ca, sans=names, extension=ext, revocation=pointers) for _ in range(2)]
    assert [len(leaf.extensions) for leaf in leaves] == [8, 8]
    for a, b in zip(leaves[0].extensions, leaves[1].extensions, strict=True):
        assert a.oid == b.oid and a.critical == b.critical
        if not isinstance(a.value, x509.SubjectKeyIdentifier):  # each leaf has its own key
            assert a.value == b.value
    rsa_leaf = _leaf(ca, public_key=rsa.generate_private_key(65537, 2048).public_key())
    assert rsa_leaf.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    assert not leaves[0].extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_renewal_copies_all_but_the_issuer_bound_extensions(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    old = _leaf(ca, extension=ProvisionerExtension(1, "admin", "kid"))
    new_inter_key = ec.generate_private_key(ec.SECP256R1())
    root_key = ec.generate_private_key(ec.SECP256R1())
    new_inter = build_intermediate(
        "Acme", new_inter_key.public_key(), build_root("Acme", root_key, NOW), root_key, NOW
    )
    later = NOW + timedelta(minutes=30)
    renewed = build_renewal(
        old, old.public_key(), later, later + timedelta(hours=1), new_inter, new_inter_key
    )
    assert renewed.serial_number != old.serial_number
    assert (renewed.not_valid_before_utc, renewed.issuer) == (later, new_inter.subject)
    ski = x509.SubjectKeyIdentifier
    aki = x509.AuthorityKeyIdentifier
    exts = renewed.extensions
    assert exts.get_extension_for_class(ski) == old.extensions.get_extension_for_class(ski)
    assert renewed.extensions.get_extension_for_class(aki).value == aki_for(new_inter)
    assert renewed.extensions.get_extension_for_class(aki).value != aki_for(ca[0])
    assert ProvisionerExtension.from_certificate(renewed) == ProvisionerExtension.from_certificate(
        old
    )


def test_rekey_gets_an_ski_of_the_new_key(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> None:
    old = _leaf(ca)
    new_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    rekeyed = build_renewal(old, new_key, NOW, NOW + timedelta(hours=1), *ca)
    skis = [e for e in rekeyed.extensions if isinstance(e.value, x509.SubjectKeyIdentifier)]
    assert len(skis) == 1
    assert skis[0].value == x509.SubjectKeyIdentifier.from_public_key(new_key)
    assert {e.oid for e in rekeyed.extensions} == {e.oid for e in old.extensions}
