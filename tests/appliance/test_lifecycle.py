"""Renewal, rekey, revocation, CRL and OCSP at the authority."""

from __future__ import annotations

import base64
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from api.errors import http_error
from appliance import profiles
from appliance.authority import Authority, RevokeRequest
from appliance.config import CAConfig
from keystores import SigningKey
from pki.errors import CAError
from tests.appliance.conftest import PASSWORD, TokenMaker, approx, edit_config, make_csr


def _issue(authority: Authority, token: TokenMaker, key: ec.EllipticCurvePrivateKey, **kw: str):  # type: ignore[no-untyped-def]
    return authority.sign(make_csr("foo.test", [], key), token(), **kw).certificate


def _renew_token(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, aud: str) -> str:
    now = int(time.time())
    x5c = [base64.b64encode(cert.public_bytes(Encoding.DER)).decode()]
    claims = {
        "iss": "step-ca-client/1.0",
        "sub": "foo.test",
        "aud": aud,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"x5cInsecure": x5c})


def _status(exc: pytest.ExceptionInfo[CAError]) -> int:
    return http_error(exc.value)[0]


def test_renew_keeps_identity_and_lifetime(authority: Authority, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = _issue(authority, token, key, not_after="2h")
    new = authority.renew(old).certificate
    assert new.serial_number != old.serial_number
    assert new.subject == old.subject and new.public_key() == old.public_key()
    assert approx(
        new.not_valid_after_utc - new.not_valid_before_utc,  # type: ignore[arg-type]
        old.not_valid_after_utc - old.not_valid_before_utc,
        2,
    )
    old_exts = {e.oid for e in old.extensions}
    assert {e.oid for e in new.extensions} == old_exts
    san = x509.SubjectAlternativeName
    assert new.extensions.get_extension_for_class(san) == old.extensions.get_extension_for_class(
        san
    )


def test_renew_with_bearer_token_and_replay(authority: Authority, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = _issue(authority, token, key)
    raw = _renew_token(old, key, "https://ca.test/1.0/renew")
    assert authority.renew_with_token(raw).certificate.public_key() == old.public_key()
    with pytest.raises(CAError) as err:
        authority.renew_with_token(raw)
    assert _status(err) == 401


def test_renew_token_quirks(authority: Authority, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = _issue(authority, token, key)
    with pytest.raises(CAError) as err:
        authority.renew_with_token(_renew_token(old, key, "https://ca.test/1.0/sign"))
    assert _status(err) == 500  # step-ca's quirk for a wrong audience
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CAError) as err:
        authority.renew_with_token(_renew_token(old, other, "https://ca.test/1.0/renew"))
    assert _status(err) == 401


def test_foreign_certificate_cannot_renew(authority: Authority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "foo.test")])
    now = authority.intermediates[0].not_valid_before_utc + timedelta(days=1)
    fake = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(authority.intermediates[0].subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(CAError) as err:
        authority.renew(fake)
    assert _status(err) == 401


def test_expired_renewal_refused_unless_allowed(ca_dir: Path, token: TokenMaker) -> None:
    cfg = ca_dir / "config" / "ca.json"
    strict = Authority.open(CAConfig.load(cfg), password=PASSWORD)

    def allow(raw: dict) -> None:  # type: ignore[type-arg]
        raw["authority"]["provisioners"][0]["claims"] = {
            "allowRenewalAfterExpiry": True,
            "minTLSCertDuration": "1s",
        }

    edit_config(ca_dir, allow)
    lenient = Authority.open(CAConfig.load(cfg), password=PASSWORD)
    lenient.start_time -= 5
    key = ec.generate_private_key(ec.SECP256R1())
    short = lenient.sign(
        make_csr("foo.test", [], key), token(), not_before="0s", not_after="2s"
    ).certificate
    time.sleep(3)
    with pytest.raises(CAError) as err:
        strict.renew(short)
    assert _status(err) == 401 and "certificate expired on" in http_error(err.value)[1]
    renewed = lenient.renew_with_token(_renew_token(short, key, "https://ca.test/renew"))
    assert renewed.certificate.not_valid_after_utc > short.not_valid_after_utc


def test_rekey_changes_key_and_ski(authority: Authority, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = _issue(authority, token, key)
    new_key = ec.generate_private_key(ec.SECP256R1())
    new = authority.rekey(old, make_csr("anything", [], new_key)).certificate
    assert new.public_key() == new_key.public_key()
    ski = x509.SubjectKeyIdentifier
    assert (
        new.extensions.get_extension_for_class(ski).value.digest
        == ski.from_public_key(new_key.public_key()).digest
    )


def test_revoke_by_token_then_renew_is_401(authority: Authority, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(authority, token, key)
    serial = cert.serial_number
    revoke_token = token(str(serial), aud="https://ca.test/1.0/revoke", sans=None)
    with pytest.raises(CAError) as err:
        authority.revoke(RevokeRequest(serial + 1, 1, "", revoke_token), None)
    assert _status(err) == 403
    authority.revoke(
        RevokeRequest(
            serial, 1, "key leaked", token(str(serial), aud="https://ca.test/1.0/revoke", sans=None)
        ),
        None,
    )
    with pytest.raises(CAError) as err:
        authority.revoke(RevokeRequest(serial, 1, "", None), cert)
    assert _status(err) == 400 and "already revoked" in http_error(err.value)[1]
    for attempt in (
        lambda: authority.renew(cert),
        lambda: authority.rekey(cert, make_csr("x", [], key)),
    ):
        with pytest.raises(CAError) as err:
            attempt()
        assert _status(err) == 401


def test_revoke_needs_credentials_and_known_serial(authority: Authority, token: TokenMaker) -> None:
    with pytest.raises(CAError) as err:
        authority.revoke(RevokeRequest(5, 0, "", None), None)
    assert _status(err) == 400
    with pytest.raises(CAError) as err:
        authority.revoke(RevokeRequest(5, 0, "", token("5", aud="https://ca.test/revoke")), None)
    assert _status(err) == 404


def test_crl_lists_revocations_with_growing_numbers(
    authority: Authority, token: TokenMaker
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    certs = [_issue(authority, token, key) for _ in range(2)]
    first = authority.crl.generate()
    for cert in certs:
        authority.revoke(RevokeRequest(cert.serial_number, 4, "", None), cert)
        authority.crl.generate()
    crl = x509.load_der_x509_crl(authority.crl.current().der)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == first.number + 2
    assert {r.serial_number for r in crl} == {c.serial_number for c in certs}
    assert crl.is_signature_valid(authority.intermediates[0].public_key())  # type: ignore[arg-type]


def _ocsp(authority: Authority, cert: x509.Certificate, nonce: bytes) -> ocsp.OCSPResponse:
    req = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, authority.intermediates[0], hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    return ocsp.load_der_ocsp_response(authority.ocsp.respond(req.public_bytes(Encoding.DER)))


def test_ocsp_good_revoked_unknown_and_nonce(authority: Authority, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(authority, token, key)
    resp = _ocsp(authority, cert, b"n1")
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n1"
    authority.revoke(RevokeRequest(cert.serial_number, 1, "", None), cert)
    resp = _ocsp(authority, cert, b"n2")
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason == x509.ReasonFlags.key_compromise
    unknown = authority.issue_server_certificate(key.public_key(), timedelta(hours=1)).certificate
    assert _ocsp(authority, unknown, b"n3").certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    assert ocsp.load_der_ocsp_response(authority.ocsp.respond(b"junk")).response_status == (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def test_delegated_ocsp_signer(ca_dir: Path, authority: Authority, token: TokenMaker) -> None:
    """A delegated responder (issued by the intermediate, OCSPSigning EKU) signs responses."""
    from datetime import UTC, datetime

    from keystores import open_keystore

    delegate_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    inter = authority.intermediates[0]
    delegate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "OCSP")]))
        .issuer_name(inter.subject)
        .public_key(delegate_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.OCSP_SIGNING]), False)
        .add_extension(x509.OCSPNoCheck(), False)
        .sign(authority.signer, hashes.SHA256())
    )
    (ca_dir / "certs" / "ocsp.crt").write_bytes(delegate.public_bytes(Encoding.PEM))
    store = open_keystore("file:", password=PASSWORD)
    store.import_key(str(ca_dir / "secrets" / "ocsp_key"), delegate_key)  # type: ignore[attr-defined]

    def delegate_ocsp(raw: dict) -> None:  # type: ignore[type-arg]
        raw["crl"] = {"enabled": True, "ocspCrt": "certs/ocsp.crt", "ocspKey": "secrets/ocsp_key"}

    edit_config(ca_dir, delegate_ocsp)
    delegated = Authority.open(CAConfig.load(ca_dir / "config" / "ca.json"), password=PASSWORD)
    delegated.start_time -= 5
    cert = delegated.sign(make_csr("foo.test", []), token()).certificate
    resp = _ocsp(delegated, cert, b"n")
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert resp.certificates == [delegate]
    delegate.public_key().verify(  # type: ignore[union-attr, call-arg]
        resp.signature, resp.tbs_response_bytes, ec.ECDSA(hashes.SHA256())
    )


def test_renew_token_replay_costs_no_signature(
    authority: Authority, token: TokenMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = _issue(authority, token, key)
    raw = _renew_token(old, key, "https://ca.test/1.0/renew")
    authority.renew_with_token(raw)
    fetched: list[int] = []
    real = authority.issuer_signer.get

    def counting() -> SigningKey:
        fetched.append(1)
        return real()

    monkeypatch.setattr(authority.issuer_signer, "get", counting)
    with pytest.raises(CAError) as err:
        authority.renew_with_token(raw)
    assert _status(err) == 401 and fetched == []


def test_renewal_serial_collision_is_retried(
    authority: Authority, token: TokenMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = _issue(authority, token, key)
    serials = iter([old.serial_number, 777])
    monkeypatch.setattr(profiles, "random_serial", lambda: next(serials))
    assert authority.renew(old).certificate.serial_number == 777
    assert authority.repository.certificate(old.serial_number) == old


def test_revoke_token_replay_is_401(authority: Authority, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    certs = [_issue(authority, token, key) for _ in range(2)]
    jti = "one-revoke-token"
    for cert, status in ((certs[0], None), (certs[1], 401)):
        ott = token(str(cert.serial_number), aud="https://ca.test/1.0/revoke", sans=None, jti=jti)
        if status is None:
            authority.revoke(RevokeRequest(cert.serial_number, 1, "", ott), None)
            continue
        with pytest.raises(CAError) as err:
            authority.revoke(RevokeRequest(cert.serial_number, 1, "", ott), None)
        assert _status(err) == status
    assert authority.repository.is_revoked(certs[0].serial_number)
    assert not authority.repository.is_revoked(certs[1].serial_number)
