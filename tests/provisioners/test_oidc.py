"""The OIDC provisioner against a real identity provider on 127.0.0.1 (tests/oidc_idp.py):
discovery, the JWKS cache, every token refusal, admins, the CA's single use of the nonce, the
disabled provisioner, and the CLI login flow with an HTTP client standing in for the browser."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from api.errors import DEFAULT_MESSAGES, http_error
from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki
from cli.ca.oidc_flow import csr_names, oidc_login, pkce_pair
from cli.common import CLIError
from pki.errors import CAError, ErrorKind
from pki.jose import public_jwk
from pki.sans import SubjectAltNames
from provisioners.audience import Method
from provisioners.base import ProvisionerConfigError, ProvisionerInitError, SignOptions
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.jwks import (
    DEFAULT_MAX_AGE,
    Fetched,
    FetchError,
    JWKSCache,
    check_url,
    parse_jwks,
    parse_max_age,
)
from provisioners.oidc import OIDCInitError, OIDCProvisioner, configuration_url
from provisioners.registry import DisabledProvisioner, ProvisionerRegistry, parse_token
from provisioners.schema import OIDCSchema, parse_provisioner
from tests.oidc_idp import CLIENT_ID, TestIdP, User, new_key

DEFAULT_401 = DEFAULT_MESSAGES[401]
ADMIN = User(sub="admin-0001", email="boss@Example.COM", groups=["staff"])


class Clock:
    """A monotonic clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def idp() -> Iterator[TestIdP]:
    with TestIdP() as provider:
        yield provider


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _oidc(config: dict[str, Any], claims: Claims | None = None, **options: Any) -> OIDCProvisioner:
    return OIDCProvisioner(OIDCSchema.model_validate(config), claims or Claims(), **options)


def _registry(*configs: dict[str, Any]) -> ProvisionerRegistry:
    return ProvisionerRegistry([parse_provisioner(c) for c in configs], Claims())


def _prov(idp: TestIdP, clock: Clock | None = None, **extra: Any) -> OIDCProvisioner:
    return _oidc(idp.provisioner(**extra), clock=clock or Clock())


def _authorize(prov: OIDCProvisioner, raw: str, method: Method = Method.SIGN) -> SignOptions:
    return prov.authorize(parse_token(raw), method, [])


def _refused(prov: OIDCProvisioner, raw: str, method: Method = Method.SIGN) -> CAError:
    with pytest.raises(CAError) as err:
        _authorize(prov, raw, method)
    assert err.value.kind is ErrorKind.UNAUTHORIZED
    assert http_error(err.value)[1] == DEFAULT_401  # the reason is for the log only
    return err.value


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the accepted token ---------------------------------------------------------------------


def test_token_gives_sub_email_and_issuer_uri(idp: TestIdP) -> None:
    prov = _prov(idp)
    claims = idp.claims_for()
    opts = _authorize(prov, idp.sign(claims))
    assert opts.provisioner_name == "sso"
    assert opts.subject == idp.user.sub
    assert opts.sans == ("jane@example.com", f"{idp.issuer}#{idp.user.sub}")
    assert opts.token_id == claims["nonce"]
    assert int(opts.token_expires.timestamp()) == claims["exp"]
    assert not opts.names_from_csr
    assert opts.extension == ProvisionerExtension(int(ProvisionerType.OIDC), "sso", CLIENT_ID)
    assert prov.id == CLIENT_ID and prov.lookup_keys == [CLIENT_ID]


def test_es256_provider_and_audience_list() -> None:
    with TestIdP(alg="ES256") as idp:
        prov = _prov(idp)
        opts = _authorize(prov, idp.id_token(aud=["other-client", CLIENT_ID], azp=None))
        assert opts.subject == idp.user.sub


def test_no_email_means_only_the_uri_san(idp: TestIdP) -> None:
    opts = _authorize(_prov(idp), idp.id_token(User(sub="svc|42", email=None)))
    assert opts.sans == (f"{idp.issuer}#svc%7C42",)


def test_subject_escaped_like_go_in_the_uri(idp: TestIdP) -> None:
    opts = _authorize(_prov(idp), idp.id_token(User(sub="a b/c@d!", email=None)))
    assert opts.sans == (f"{idp.issuer}#a%20b/c@d!",)


def test_disable_smallstep_extensions(idp: TestIdP) -> None:
    prov = _oidc(idp.provisioner(), Claims(disable_smallstep_extensions=True))
    assert _authorize(prov, idp.id_token()).extension is None


def test_times_within_leeway_pass(idp: TestIdP) -> None:
    now = int(time.time())
    raw = idp.id_token(iat=now + 30, nbf=now + 30, exp=now - 30)
    assert _authorize(_prov(idp), raw).subject == idp.user.sub


# --- refusals -------------------------------------------------------------------------------


def test_wrong_issuer(idp: TestIdP) -> None:
    err = _refused(_prov(idp), idp.id_token(iss="https://evil.example.com"))
    assert "iss" in err.reason


def test_wrong_audience(idp: TestIdP) -> None:
    err = _refused(_prov(idp), idp.id_token(aud="another-client", azp=None))
    assert "aud" in err.reason


def test_missing_audience(idp: TestIdP) -> None:
    _refused(_prov(idp), idp.id_token(aud=None, azp=None))


def test_wrong_azp(idp: TestIdP) -> None:
    err = _refused(_prov(idp), idp.id_token(azp="another-client"))
    assert "azp" in err.reason


def test_expired(idp: TestIdP) -> None:
    now = int(time.time())
    err = _refused(_prov(idp), idp.id_token(iat=now - 900, exp=now - 120))
    assert "exp" in err.reason


def test_not_yet_valid(idp: TestIdP) -> None:
    now = int(time.time())
    err = _refused(_prov(idp), idp.id_token(nbf=now + 600, exp=now + 900))
    assert "nbf" in err.reason


def test_issued_in_the_future(idp: TestIdP) -> None:
    now = int(time.time())
    err = _refused(_prov(idp), idp.id_token(iat=now + 600, exp=now + 900))
    assert "iat" in err.reason


def test_no_expiry(idp: TestIdP) -> None:
    _refused(_prov(idp), idp.id_token(exp=None))


def test_non_numeric_time(idp: TestIdP) -> None:
    _refused(_prov(idp), idp.id_token(exp="tomorrow"))


def test_nonce_required(idp: TestIdP) -> None:
    claims = idp.claims_for()
    del claims["nonce"]
    err = _refused(_prov(idp), idp.sign(claims))
    assert "nonce" in err.reason


def test_subject_required(idp: TestIdP) -> None:
    _refused(_prov(idp), idp.id_token(sub=""))


def test_domain_not_allowed(idp: TestIdP) -> None:
    prov = _prov(idp, domains=["example.org"])
    err = _refused(prov, idp.id_token())
    assert "email is not allowed" in err.reason


def test_domain_is_case_insensitive_and_exact(idp: TestIdP) -> None:
    prov = _prov(idp, domains=["EXAMPLE.com"])
    assert _authorize(prov, idp.id_token(User(sub="1", email="a@Example.COM"))).subject == "1"
    _refused(prov, idp.id_token(User(sub="2", email="a@sub.example.com")))
    _refused(prov, idp.id_token(User(sub="3", email="a@notexample.com")))


def test_group_required(idp: TestIdP) -> None:
    prov = _prov(idp, groups=["engineering"])
    err = _refused(prov, idp.id_token(User(sub="1", groups=["sales"])))
    assert "invalid group" in err.reason
    _refused(prov, idp.id_token(User(sub="2", groups=None)))
    assert _authorize(prov, idp.id_token(User(sub="3", groups=["sales", "engineering"])))


def test_bad_signature(idp: TestIdP) -> None:
    prov = _prov(idp)
    impostor = new_key("RS256")
    # Same kid as the provider's key, signed by another key.
    raw = idp.sign(idp.claims_for(), key=impostor, headers={"kid": idp.key.kid})
    err = _refused(prov, raw)
    assert "cannot validate" in err.reason


def test_tampered_payload(idp: TestIdP) -> None:
    header, _, sig = idp.id_token().split(".")
    forged = jwt.utils.base64url_encode(json.dumps(idp.claims_for(sub="root")).encode()).decode()
    _refused(_prov(idp), f"{header}.{forged}.{sig}")


def _forge(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    b64 = jwt.utils.base64url_encode
    signing_input = b64(json.dumps(header).encode()) + b"." + b64(json.dumps(claims).encode())
    sig = b"" if secret is None else hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(sig)).decode()


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_symmetric_and_unsigned_tokens_refused(idp: TestIdP, alg: str) -> None:
    prov = _prov(idp)
    # HS256 keyed with the provider's public JWK text: the classic algorithm confusion.
    secret = json.dumps(idp.key.jwk).encode() if alg == "HS256" else None
    raw = _forge({"alg": alg, "kid": idp.key.kid, "typ": "JWT"}, idp.claims_for(), secret)
    _refused(prov, raw)


def test_alg_must_match_the_key(idp: TestIdP) -> None:
    # An ES256 key published under the RS256 key's kid with alg RS256 is not usable for ES256.
    prov = _prov(idp)
    es = new_key("ES256")
    raw = idp.sign(idp.claims_for(), key=es, headers={"kid": idp.key.kid})
    _refused(prov, raw)


def test_renew_tokens_refused(idp: TestIdP) -> None:
    _refused(_prov(idp), idp.id_token(), Method.RENEW)


def test_revoke_is_for_admins(idp: TestIdP) -> None:
    prov = _prov(idp, admins=["boss@example.com"])
    _refused(prov, idp.id_token(), Method.REVOKE)
    assert _authorize(prov, idp.id_token(ADMIN), Method.REVOKE).subject == ADMIN.sub


# --- admins ---------------------------------------------------------------------------------


def test_admin_by_email_gets_csr_names(idp: TestIdP) -> None:
    # admins compare with the domain lower-cased; the local part is exact.
    prov = _prov(idp, admins=["boss@EXAMPLE.COM"], domains=["example.org"])
    opts = _authorize(prov, idp.id_token(ADMIN))  # admin e-mail also bypasses `domains`
    assert opts.names_from_csr and opts.allowed_names is None
    assert not _authorize(
        prov, idp.id_token(User(sub="x", email="boss@example.org"))
    ).names_from_csr
    _refused(
        _prov(idp, admins=["boss@example.com"], domains=["example.org"]),
        idp.id_token(User(sub="y", email="BOSS@example.com")),
    )


def test_admin_by_group(idp: TestIdP) -> None:
    prov = _prov(idp, admins=["ca-admins"])
    opts = _authorize(prov, idp.id_token(User(sub="z", groups=["staff", "ca-admins"])))
    assert opts.names_from_csr
    assert not _authorize(prov, idp.id_token(User(sub="w", groups=["staff"]))).names_from_csr


# --- the JWKS cache -------------------------------------------------------------------------


def test_unknown_kid_refreshes_once_then_401(idp: TestIdP, clock: Clock) -> None:
    prov = _prov(idp, clock)
    assert idp.count("/jwks") == 1
    stranger = new_key("RS256")
    _refused(prov, idp.sign(idp.claims_for(), key=stranger))
    assert idp.count("/jwks") == 2
    # A second unknown kid right away does not hit the provider again (rate limit).
    _refused(prov, idp.sign(idp.claims_for(), key=new_key("ES256")))
    assert idp.count("/jwks") == 2
    clock.advance(61)
    _refused(prov, idp.sign(idp.claims_for(), key=stranger))
    assert idp.count("/jwks") == 3


def test_rotated_key_is_picked_up(idp: TestIdP, clock: Clock) -> None:
    prov = _prov(idp, clock)
    old = idp.key
    clock.advance(61)
    idp.rotate("ES256")
    assert _authorize(prov, idp.id_token()).subject == idp.user.sub
    assert idp.count("/jwks") == 2
    # The old key still verifies while published; a known kid needs no fetch.
    assert _authorize(prov, idp.sign(idp.claims_for(), key=old))
    assert idp.count("/jwks") == 2


def test_key_dropped_by_the_provider_stops_working_after_reload(idp: TestIdP, clock: Clock) -> None:
    prov = _prov(idp, clock)
    old = idp.key
    idp.rotate(keep_old=False)
    clock.advance(3601)  # the IdP's max-age
    _refused(prov, idp.sign(idp.claims_for(), key=old))
    assert idp.count("/jwks") == 2


def test_cache_honours_max_age(idp: TestIdP, clock: Clock) -> None:
    idp.max_age = 300
    prov = _prov(idp, clock)
    for _ in range(3):
        _authorize(prov, idp.id_token())
    assert idp.count("/jwks") == 1
    clock.advance(299)
    _authorize(prov, idp.id_token())
    assert idp.count("/jwks") == 1
    clock.advance(2)
    _authorize(prov, idp.id_token())
    assert idp.count("/jwks") == 2


def test_cache_default_age_without_max_age(idp: TestIdP, clock: Clock) -> None:
    idp.max_age = None
    prov = _prov(idp, clock)
    clock.advance(DEFAULT_MAX_AGE - 1)
    _authorize(prov, idp.id_token())
    assert idp.count("/jwks") == 1
    clock.advance(2)
    _authorize(prov, idp.id_token())
    assert idp.count("/jwks") == 2


def test_provider_down_keeps_the_cached_keys(clock: Clock) -> None:
    calls: list[str] = []
    key = new_key("ES256")

    def fetch(url: str) -> Fetched:
        calls.append(url)
        if len(calls) > 1:
            raise FetchError("connection refused")
        return Fetched({"keys": [key.jwk]}, 60.0)

    cache = JWKSCache("https://idp.example/jwks", clock=clock, fetch=fetch)
    cache.load()
    clock.advance(120)
    assert [k.kid for k in cache.get(key.kid)] == [key.kid]  # expired, reload failed: stale ok
    assert len(calls) == 2
    assert cache.get(key.kid) and len(calls) == 2  # the retry waits for the interval
    clock.advance(60)
    cache.get(key.kid)
    assert len(calls) == 3


def test_max_age_parsing() -> None:
    assert parse_max_age("public, max-age=19204, must-revalidate, no-transform") == 19204
    assert parse_max_age('max-age="60"') == 60
    assert parse_max_age("s-maxage=10") is None
    assert parse_max_age("no-store") == 0
    assert parse_max_age("") is None


def test_max_age_has_a_floor(clock: Clock) -> None:
    calls: list[int] = []
    key = new_key("ES256")

    def fetch(url: str) -> Fetched:
        calls.append(1)
        return Fetched({"keys": [key.jwk]}, 0.0)

    cache = JWKSCache("https://idp.example/jwks", clock=clock, fetch=fetch)
    cache.load()
    cache.get(key.kid)
    cache.get(key.kid)
    assert len(calls) == 1


def test_parse_jwks_keeps_signature_keys_only() -> None:
    rsa_key, ec_key = new_key("RS256"), new_key("ES256")
    enc = dict(new_key("ES256").jwk, use="enc")
    document = {
        "keys": [
            rsa_key.jwk,
            dict(ec_key.jwk, alg=None),
            enc,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "x": "bad", "y": "bad", "kid": "broken"},
            dict(public_jwk(ec.generate_private_key(ec.SECP384R1())), alg="RS256"),
            "junk",
        ]
    }
    keys = parse_jwks(document)
    assert [(k.kid, k.algorithms) for k in keys] == [
        (rsa_key.kid, ("RS256",)),
        (ec_key.kid, ("ES256",)),
    ]
    with pytest.raises(FetchError):
        parse_jwks({"keys": "nope"})


def test_urls_must_be_https_unless_loopback() -> None:
    for ok in (
        "https://idp.example.com/x",
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://[::1]:80/",
    ):
        assert check_url(ok) == ok
    for bad in ("http://idp.example.com/x", "ftp://127.0.0.1/", "file:///etc/passwd", "nope"):
        with pytest.raises(FetchError):
            check_url(bad)


def test_configuration_url() -> None:
    assert configuration_url("https://a.example") == (
        "https://a.example/.well-known/openid-configuration"
    )
    assert configuration_url("https://a.example/realms/x/") == (
        "https://a.example/realms/x/.well-known/openid-configuration"
    )
    same = "https://a.example/.well-known/openid-configuration"
    assert configuration_url(same) == same


# --- configuration and initialisation -------------------------------------------------------


def test_discovery_unreachable_is_an_init_error() -> None:
    config = {
        "type": "OIDC",
        "name": "sso",
        "clientID": CLIENT_ID,
        "configurationEndpoint": f"http://127.0.0.1:{_closed_port()}",
    }
    with pytest.raises(OIDCInitError) as err:
        _oidc(config)
    assert isinstance(err.value, ProvisionerInitError)
    assert err.value.lookup_keys == [CLIENT_ID]
    assert "failed to connect" in str(err.value)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"clientID": ""}, "clientID cannot be empty"),
        ({"configurationEndpoint": ""}, "configurationEndpoint cannot be empty"),
        ({"listenAddress": "127.0.0.1"}, "listenAddress"),
        ({"configurationEndpoint": "http://idp.example.com/"}, "https"),
    ],
)
def test_init_errors(idp: TestIdP, change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ProvisionerInitError) as err:
        _oidc({**idp.provisioner(), **change})
    assert fragment in str(err.value)


def test_discovery_without_jwks_uri(idp: TestIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = idp.discovery()
    del doc["jwks_uri"]
    monkeypatch.setattr(idp, "discovery", lambda: doc)
    with pytest.raises(ProvisionerInitError, match="jwks_uri cannot be empty"):
        _oidc(idp.provisioner())


def test_insecure_jwks_uri(idp: TestIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = dict(idp.discovery(), jwks_uri="http://keys.example.com/jwks")
    monkeypatch.setattr(idp, "discovery", lambda: doc)
    with pytest.raises(ProvisionerInitError, match="https"):
        _oidc(idp.provisioner())


def test_tenant_id_in_issuer(idp: TestIdP) -> None:
    idp.issuer_override = "https://login.example.com/{tenantid}/v2.0"
    prov = _prov(idp, tenantID="t-123")
    assert prov.issuer == "https://login.example.com/t-123/v2.0"
    opts = _authorize(prov, idp.id_token(iss="https://login.example.com/t-123/v2.0"))
    assert opts.sans[1] == f"https://login.example.com/t-123/v2.0#{idp.user.sub}"


def test_bad_list_fields_are_config_errors(idp: TestIdP) -> None:
    with pytest.raises(ProvisionerConfigError, match=r'^admins: expected a list, got "boss@'):
        parse_provisioner({**idp.provisioner(), "admins": "boss@example.com"})


def test_json_in_step_ca_order(idp: TestIdP) -> None:
    cfg = idp.provisioner(admins=["a@example.com"], domains=[], claims={"enableSSHCA": True})
    cfg.pop("clientSecret")
    out = _oidc(cfg).to_json()
    assert list(out) == [
        "type",
        "name",
        "clientID",
        "clientSecret",
        "configurationEndpoint",
        "admins",
        "claims",
    ]
    assert out["clientSecret"] == ""


def test_registry_keeps_a_disabled_provisioner(idp: TestIdP) -> None:
    down = {
        "type": "OIDC",
        "name": "down",
        "clientID": "down-client",
        "configurationEndpoint": f"http://127.0.0.1:{_closed_port()}",
    }
    reg = _registry(idp.provisioner(), down)
    prov = reg.by_name("down")
    assert isinstance(prov, DisabledProvisioner)
    listed = reg.page("", None)[0][1]
    assert listed["state"] == "Uninitialized" and listed["stateReason"]
    raw = idp.id_token(aud="down-client", azp="down-client")
    message = 'provisioner "down" is disabled due to an initialization error'
    with pytest.raises(CAError) as err:
        prov.authorize(parse_token(raw), Method.SIGN, [])
    assert http_error(err.value) == (401, message)
    # The working provisioner next to it is unaffected.
    assert reg.for_token(parse_token(idp.id_token()), []).name == "sso"


def test_registry_routes_tokens_to_the_disabled_provisioner(idp: TestIdP) -> None:
    """step-ca finds an uninitialised OIDC provisioner by its client ID and answers 401 with
    the "disabled" message. Needs the registry to use OIDCInitError.lookup_keys."""
    down = {
        "type": "OIDC",
        "name": "down",
        "clientID": "down-client",
        "configurationEndpoint": f"http://127.0.0.1:{_closed_port()}",
    }
    reg = _registry(down)
    raw = idp.id_token(aud="down-client", azp="down-client")
    token = parse_token(raw)
    with pytest.raises(CAError) as err:
        reg.for_token(token, []).authorize(token, Method.SIGN, [])
    assert err.value.kind is ErrorKind.UNAUTHORIZED
    message = 'provisioner "down" is disabled due to an initialization error'
    assert http_error(err.value) == (401, message)


# --- through the authority: names, single use -----------------------------------------------

PASSWORD = b"ca-password"


def _authority(tmp_path: Path, idp: TestIdP, **extra: Any) -> Authority:
    steppath = tmp_path / "step"
    init_pki(InitRequest(steppath, "Test", ["ca.test"], "127.0.0.1:9000", "admin", PASSWORD, b"pp"))
    path = steppath / "config" / "ca.json"
    raw = json.loads(path.read_text())
    raw["authority"]["provisioners"].append(idp.provisioner(**extra))
    path.write_text(json.dumps(raw))
    auth = Authority.open(CAConfig.load(path), password=PASSWORD)
    auth.start_time -= 5
    return auth


def _csr(cn: str | None, sans: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(SubjectAltNames.split(sans).general_names()), False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


def _names(cert: x509.Certificate) -> tuple[str, SubjectAltNames]:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return str(cn), SubjectAltNames.of(san)


@pytest.fixture
def authority(tmp_path: Path, idp: TestIdP) -> Iterator[Authority]:
    auth = _authority(tmp_path, idp, admins=["boss@example.com", "ca-admins"])
    yield auth
    auth.repository.engine.dispose()


def test_authority_issues_sub_email_uri_and_refuses_the_replayed_nonce(
    authority: Authority, idp: TestIdP
) -> None:
    raw = idp.id_token()
    claims = jwt.decode(raw, options={"verify_signature": False})
    cn, sans = csr_names(claims, "jane@example.com", [])
    cert = authority.sign(_csr(cn, sans), raw).certificate
    got_cn, got = _names(cert)
    assert got_cn == idp.user.sub
    assert got.emails == ("jane@example.com",)
    assert got.uris == (f"{idp.issuer}#{idp.user.sub}",)
    assert got.dns == () and got.ips == ()
    ext = ProvisionerExtension.from_certificate(cert)
    assert ext is not None
    assert (ext.type, ext.name, ext.credential_id) == (int(ProvisionerType.OIDC), "sso", CLIENT_ID)
    with pytest.raises(CAError) as err:
        authority.sign(_csr(cn, sans), raw)
    assert http_error(err.value) == (401, DEFAULT_401)
    assert "already used" in err.value.reason


def test_same_nonce_in_another_token_is_a_replay(authority: Authority, idp: TestIdP) -> None:
    nonce = "0123456789abcdef" * 4
    authority.sign(_csr(None, []), idp.id_token(nonce=nonce))
    with pytest.raises(CAError) as err:
        authority.sign(_csr(None, []), idp.id_token(nonce=nonce, iat=int(time.time()) - 1))
    assert err.value.kind is ErrorKind.UNAUTHORIZED


def test_non_admin_cannot_get_other_names(authority: Authority, idp: TestIdP) -> None:
    raw = idp.id_token()
    try:
        cert = authority.sign(_csr("evil.example.com", ["evil.example.com"]), raw).certificate
    except CAError as err:
        assert err.kind is ErrorKind.FORBIDDEN
        return
    cn, sans = _names(cert)  # step-ca ignores the CSR's names: the token's are issued
    assert cn == idp.user.sub and sans.dns == ()


@pytest.mark.parametrize(
    "admin",
    [User(sub="a1", email="boss@example.com"), User(sub="a2", email="x@y.z", groups=["ca-admins"])],
)
def test_admin_gets_any_name(authority: Authority, idp: TestIdP, admin: User) -> None:
    raw = idp.id_token(admin)
    csr = _csr("anything.internal", ["anything.internal", "10.9.8.7", "spiffe://x/y"])
    cn, sans = _names(authority.sign(csr, raw).certificate)
    assert cn == "anything.internal"
    assert sans.dns == ("anything.internal",)
    assert [str(ip) for ip in sans.ips] == ["10.9.8.7"]
    assert sans.uris == ("spiffe://x/y",)


def test_token_from_before_the_ca_started(authority: Authority, idp: TestIdP) -> None:
    raw = idp.id_token(iat=authority.start_time - 10)
    with pytest.raises(CAError) as err:
        authority.sign(_csr(None, []), raw)
    assert err.value.kind is ErrorKind.UNAUTHORIZED


# --- the CLI login flow ---------------------------------------------------------------------


def _browser(seen: list[httpx.Response]) -> Any:
    def open_url(url: str) -> bool:
        seen.append(httpx.get(url, follow_redirects=True, timeout=30))
        return True

    return open_url


def test_login_returns_the_id_token(idp: TestIdP, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[httpx.Response] = []
    raw = oidc_login(idp.provisioner(), browser=_browser(seen), timeout=30)
    assert raw == idp.issued_id_tokens[-1]
    (auth,) = idp.authorize_requests
    (exchange,) = idp.token_requests
    assert auth["code_challenge_method"] == "S256" and auth["response_type"] == "code"
    assert auth["scope"] == "openid email"
    assert len(auth["state"]) >= 32 and len(auth["nonce"]) == 64
    assert auth["redirect_uri"].startswith("http://127.0.0.1:")
    assert exchange["client_secret"] == idp.client_secret
    assert exchange["redirect_uri"] == auth["redirect_uri"]
    claims = jwt.decode(raw, options={"verify_signature": False})
    assert claims["nonce"] == auth["nonce"]
    assert seen[0].status_code == 200 and "Success" in seen[0].text
    err = capsys.readouterr().err
    assert "Your default web browser has been opened to visit:" in err
    assert f"{idp.url}/authorize?" in err


def test_login_state_and_nonce_are_fresh(idp: TestIdP) -> None:
    for _ in range(2):
        oidc_login(idp.provisioner(), browser=_browser([]), timeout=30)
    first, second = idp.authorize_requests
    assert first["state"] != second["state"] and first["nonce"] != second["nonce"]
    assert first["code_challenge"] != second["code_challenge"]


def test_login_on_listen_address(idp: TestIdP) -> None:
    port = _closed_port()
    oidc_login(idp.provisioner(listenAddress=f"127.0.0.1:{port}"), browser=_browser([]), timeout=30)
    assert idp.authorize_requests[0]["redirect_uri"] == f"http://127.0.0.1:{port}"


def test_login_scopes_and_auth_params(idp: TestIdP) -> None:
    cfg = idp.provisioner(scopes=["openid", "email", "groups"], authParams=["prompt=login"])
    oidc_login(cfg, browser=_browser([]), timeout=30)
    assert idp.authorize_requests[0]["scope"] == "openid email groups"
    assert idp.authorize_requests[0]["prompt"] == "login"


def test_login_without_a_browser_prints_the_url(
    idp: TestIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[httpx.Response] = []

    def no_browser(url: str) -> bool:
        seen.append(httpx.get(url, follow_redirects=True, timeout=30))  # the user, by hand
        return False

    oidc_login(idp.provisioner(), browser=no_browser, timeout=30)
    err = capsys.readouterr().err
    assert "Cannot open a web browser on your platform." in err
    assert "Open a local web browser and visit:" in err


def test_login_refuses_a_wrong_state(idp: TestIdP) -> None:
    def forged(url: str) -> bool:
        resp = httpx.get(url, follow_redirects=False, timeout=30)
        location = resp.headers["location"].replace("state=", "state=x")
        httpx.get(location, timeout=30)
        return True

    with pytest.raises(CLIError, match="missing or invalid state"):
        oidc_login(idp.provisioner(), browser=forged, timeout=30)
    assert idp.token_requests == []


def test_login_reports_a_provider_error(idp: TestIdP) -> None:
    with pytest.raises(CLIError, match="invalid_client"):
        oidc_login({**idp.provisioner(), "clientSecret": "wrong"}, browser=_browser([]), timeout=30)


def test_login_reports_an_authorization_error(idp: TestIdP) -> None:
    cfg = idp.provisioner(scopes=["email"])  # no openid: the IdP redirects with an error
    with pytest.raises(CLIError, match="Failed to authenticate: invalid_scope"):
        oidc_login(cfg, browser=_browser([]), timeout=30)


def test_login_times_out(idp: TestIdP) -> None:
    with pytest.raises(CLIError, match="timed out"):
        oidc_login(idp.provisioner(), browser=lambda url: True, timeout=0.2)


def test_pkce_pair() -> None:
    verifier, challenge = pkce_pair()
    assert len(verifier) == 64 and verifier.isalnum()
    digest = hashes.Hash(hashes.SHA256())
    digest.update(verifier.encode())
    assert jwt.utils.base64url_encode(digest.finalize()).decode() == challenge


def test_csr_names_follow_step() -> None:
    claims = {"iss": "https://idp.example", "sub": "u1", "email": "Jane@Example.com"}
    assert csr_names(claims, "jane@example.com", []) == (
        "u1",
        ["Jane@Example.com", "https://idp.example#u1"],
    )
    assert csr_names(claims, "host.internal", []) == ("host.internal", ["host.internal"])
    assert csr_names(claims, "jane@example.com", ["a.internal"]) == (
        "jane@example.com",
        ["a.internal"],
    )
