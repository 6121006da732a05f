"""The authority's signing path: what a caller of /sign gets, and what it never gets."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func, select

from api.errors import http_error
from appliance import profiles
from appliance.authority import Authority
from appliance.db.models import used_tokens, x509_certs
from keystores import KeyStoreError, SigningKey
from pki.errors import CAError
from provisioners.extension import ProvisionerExtension
from tests.appliance.conftest import TokenMaker, approx, make_csr, now_utc


def _rows(authority: Authority) -> tuple[int, int]:
    with authority.repository.engine.connect() as conn:
        certs = conn.execute(select(func.count()).select_from(x509_certs)).scalar_one()
        tokens = conn.execute(select(func.count()).select_from(used_tokens)).scalar_one()
    return int(certs), int(tokens)


def _fails(status: int, message: str | None = None):  # type: ignore[no-untyped-def]
    class _Ctx:
        def __enter__(self) -> None:
            return None

        def __exit__(self, typ, exc, tb):  # type: ignore[no-untyped-def]
            assert isinstance(exc, CAError), f"expected CAError, got {exc!r}"
            assert http_error(exc)[0] == status, exc.reason
            if message is not None:
                assert http_error(exc)[1] == message
            return True

    return _Ctx()


def test_sign_builds_step_ca_leaf(authority: Authority, token: TokenMaker) -> None:
    ott = token("foo.test", sans=["foo.test", "10.0.0.5"])
    result = authority.sign(make_csr("foo.test", ["foo.test", "10.0.0.5"]), ott)
    cert = result.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "foo.test"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["foo.test"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    now = now_utc()
    assert approx(cert.not_valid_before_utc, now - timedelta(minutes=1))
    assert approx(cert.not_valid_after_utc, now + timedelta(hours=24))
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_encipherment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = (
        authority.intermediates[0]
        .extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        .value
    )
    assert aki.key_identifier == ski.digest
    ext = ProvisionerExtension.from_certificate(cert)
    assert ext is not None and ext.name == "admin" and ext.credential_id == token.kid
    assert result.chain == [cert, *authority.intermediates]
    assert cert.serial_number.bit_length() > 64
    assert _rows(authority) == (1, 1)


def test_rsa_leaf_gets_key_encipherment(authority: Authority, token: TokenMaker) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = authority.sign(make_csr("foo.test", [], key), token()).certificate
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_replay_is_refused_and_writes_nothing(authority: Authority, token: TokenMaker) -> None:
    ott = token()
    authority.sign(make_csr("foo.test", []), ott)
    with _fails(401):
        authority.sign(make_csr("foo.test", []), ott)
    assert _rows(authority) == (1, 1)


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"aud": "https://other.test/1.0/sign"}, "audience"),
        ({"aud": "https://ca.test:9000/1.0/revoke"}, "audience of another method"),
        ({"iss": "nobody"}, "issuer"),
        ({"exp": -120}, "expired"),
        ({"nbf": 300}, "not yet valid"),
        ({"sub": ""}, "empty subject"),
    ],
)
def test_bad_tokens_are_401(
    authority: Authority, token: TokenMaker, overrides: dict[str, object], why: str
) -> None:
    now = int(now_utc().timestamp())  # times are offsets from the test's own start
    claims = {k: now + v if k in ("exp", "nbf") and isinstance(v, int) else v
              for k, v in overrides.items()}
    with _fails(401):
        authority.sign(make_csr(None, ["foo.test"]), token(**claims))
    assert _rows(authority) == (0, 0), why


def test_port_in_audience_is_ignored(authority: Authority, token: TokenMaker) -> None:
    authority.sign(make_csr("foo.test", []), token(aud="https://ca.test:443/sign"))


def test_token_from_before_start_is_refused(authority: Authority, token: TokenMaker) -> None:
    with _fails(401):
        authority.sign(make_csr("foo.test", []), token(iat=authority.start_time - 60))


def test_token_signed_by_another_key_is_401(authority: Authority, token: TokenMaker) -> None:
    token.key = ec.generate_private_key(ec.SECP256R1())
    with _fails(401):
        authority.sign(make_csr("foo.test", []), token())


def test_garbage_token_is_401(authority: Authority) -> None:
    with _fails(401):
        authority.sign(make_csr("foo.test", []), "not.a.jwt")


def test_sans_must_match_token(authority: Authority, token: TokenMaker) -> None:
    msg = (
        "The request was forbidden by the certificate authority: certificate request does not "
        "contain the valid DNS names - got [evil.test], want [foo.test]."
    )
    with _fails(403, msg):
        authority.sign(make_csr("foo.test", ["evil.test"]), token())
    assert _rows(authority) == (0, 0)


def test_common_name_must_be_subject_or_san(authority: Authority, token: TokenMaker) -> None:
    with _fails(403):
        authority.sign(make_csr("evil.test", []), token())


def test_weak_rsa_key_is_403(authority: Authority, token: TokenMaker) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    msg = (
        "The request was forbidden by the certificate authority: certificate request RSA key "
        "must be at least 2048 bits (256 bytes)."
    )
    with _fails(403, msg):
        authority.sign(make_csr("foo.test", [], key), token())


def test_requested_durations(authority: Authority, token: TokenMaker) -> None:
    cert = authority.sign(make_csr("foo.test", []), token(), not_after="2h").certificate
    assert approx(
        cert.not_valid_after_utc - cert.not_valid_before_utc, timedelta(hours=2, minutes=1), 5
    )  # type: ignore[arg-type]
    msg = (
        "The request was forbidden by the certificate authority: requested duration of "
        "2000h1m0s is more than the authorized maximum certificate duration of 24h1m0s."
    )
    with _fails(403, msg):
        authority.sign(make_csr("foo.test", []), token(), not_after="2000h")
    with _fails(403):
        authority.sign(make_csr("foo.test", []), token(), not_after="1m")
    with _fails(400):
        authority.sign(make_csr("foo.test", []), token(), not_after="2020-01-01T00:00:00Z")
    with _fails(400):
        authority.sign(make_csr("foo.test", []), token(), not_after="tomorrow")


def test_unparseable_and_badly_signed_csrs_are_400(authority: Authority, token: TokenMaker) -> None:
    garbage = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    with _fails(400, "The request could not be completed: error decoding json."):
        authority.sign(garbage, token())
    good = x509.load_pem_x509_csr(make_csr("foo.test", []).encode())
    der = bytearray(good.public_bytes(Encoding.DER))
    der[-5] ^= 0x01  # inside the signature
    bad = x509.load_der_x509_csr(bytes(der)).public_bytes(Encoding.PEM).decode()
    with _fails(400, "The request could not be completed: invalid csr."):
        authority.sign(bad, token())


def test_root_lookup(authority: Authority) -> None:
    from pki.fingerprint import certificate_fingerprint as fingerprint

    fp = fingerprint(authority.roots[0])
    assert authority.root_by_fingerprint(fp.upper()) == authority.roots[0]
    dashed = "-".join(fp[i : i + 8] for i in range(0, 64, 8))
    assert authority.root_by_fingerprint(dashed) == authority.roots[0]
    with _fails(404):
        authority.root_by_fingerprint("00" * 32)


class _CountingSigner:
    """Stands in for `issuer_signer.get`: counts every time the key is fetched to sign."""

    def __init__(self, authority: Authority, fail: Exception | None = None) -> None:
        self._real = authority.issuer_signer.get
        self.fail = fail
        self.calls = 0

    def __call__(self) -> SigningKey:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return self._real()


def test_replay_costs_no_signature(
    authority: Authority, token: TokenMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = _CountingSigner(authority)
    monkeypatch.setattr(authority.issuer_signer, "get", counting)
    ott = token()
    authority.sign(make_csr("foo.test", []), ott)
    assert counting.calls == 1
    with _fails(401):
        authority.sign(make_csr("foo.test", []), ott)
    assert counting.calls == 1, "the replay reached the signer"


def test_serial_collision_is_signed_again_not_a_replay(
    authority: Authority, token: TokenMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = authority.sign(make_csr("foo.test", []), token()).certificate
    serials = iter([first.serial_number, 4242])
    monkeypatch.setattr(profiles, "random_serial", lambda: next(serials))
    second = authority.sign(make_csr("foo.test", []), token()).certificate
    assert second.serial_number == 4242
    assert authority.repository.certificate(4242) == second
    assert authority.repository.certificate(first.serial_number) == first
    assert _rows(authority) == (2, 2)


def test_signer_failure_after_the_burn_keeps_the_token(
    authority: Authority, token: TokenMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HSM failing after the token was burned rolls the burn back: the token still buys
    its certificate once the signer is back, and nothing unrecorded was issued."""
    ott = token()
    broken = _CountingSigner(authority, fail=KeyStoreError("HSM unplugged"))
    monkeypatch.setattr(authority.issuer_signer, "get", broken)
    with pytest.raises(KeyStoreError):
        authority.sign(make_csr("foo.test", []), ott)
    assert broken.calls == 1 and _rows(authority) == (0, 0)
    monkeypatch.undo()
    authority.sign(make_csr("foo.test", []), ott)
    assert _rows(authority) == (1, 1)
