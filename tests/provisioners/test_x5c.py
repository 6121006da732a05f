"""The X5C provisioner: a certificate chain in the token header, verified against the
provisioner's roots; the issued certificate never outlives the presented one."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from api.errors import http_error
from appliance.authority import Authority, RevokeRequest
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki
from pki.errors import CAError
from pki.sans import SubjectAltNames
from provisioners.audience import Method, audiences
from provisioners.base import ProvisionerConfigError
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.registry import ProvisionerRegistry, parse_token
from provisioners.schema import X5CSchema, parse_provisioner
from provisioners.x5c import X5CProvisioner, encode_roots

PASSWORD = b"ca-password"
DNS = "ca.test"
AUD = f"https://{DNS}:9000/1.0/sign#x5c/x5c"
NAME = "x5c"

Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca_cert(
    cn: str, key: Key, issuer: x509.Certificate | None, issuer_key: Key, pathlen: int | None
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=pathlen), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class X5CPKI:
    """A root and an intermediate that issue the credentials presented in X5C tokens."""

    root: x509.Certificate
    root_key: Key
    inter: x509.Certificate
    inter_key: Key

    @classmethod
    def make(cls, label: str = "X5C") -> X5CPKI:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _ca_cert(f"{label} Root", root_key, None, root_key, 1)
        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter = _ca_cert(f"{label} Intermediate", inter_key, root, root_key, 0)
        return cls(root, root_key, inter, inter_key)

    @property
    def roots_value(self) -> str:
        return encode_roots(self.root.public_bytes(Encoding.PEM))

    def leaf(
        self,
        cn: str = "client",
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        digital_signature: bool = True,
    ) -> tuple[list[x509.Certificate], Key]:
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if eku is None else eku
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.inter.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(minutes=10))
            .not_valid_after(not_after or now + timedelta(hours=2))
            .add_extension(
                x509.KeyUsage(
                    digital_signature,
                    False,
                    not digital_signature,
                    False,
                    False,
                    False,
                    False,
                    False,
                    False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.inter_key.public_key()),
                False,
            )
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), False)
        return [builder.sign(self.inter_key, hashes.SHA256()), self.inter], key


def x5c_token(
    chain: list[x509.Certificate],
    key: Key,
    sub: str = "svc.test",
    *,
    sans: list[str] | None = None,
    sign_with: Key | None = None,
    **overrides: Any,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": NAME,
        "aud": AUD,
        "sub": sub,
        "sans": sans if sans is not None else [sub],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_hex(32),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in chain]
    return jwt.encode(
        claims, sign_with or key, algorithm="ES256", headers={"x5c": x5c, "typ": "JWT"}
    )


def make_csr(cn: str | None, sans: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        _name(cn) if cn else x509.Name([])
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(SubjectAltNames.split(sans).general_names()), False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def pki() -> X5CPKI:
    return X5CPKI.make()


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: X5CPKI) -> Iterator[Authority]:
    steppath = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(steppath))
    init_pki(
        InitRequest(
            steppath, "Test", [DNS, "127.0.0.1"], "127.0.0.1:9000", "admin", PASSWORD, b"prov-pw"
        )
    )
    ca_json = steppath / "config" / "ca.json"
    raw = json.loads(ca_json.read_text())
    raw["authority"]["provisioners"].append({"type": "X5C", "name": NAME, "roots": pki.roots_value})
    ca_json.write_text(json.dumps(raw, indent="\t"))
    auth = Authority.open(CAConfig.load(ca_json), password=PASSWORD)
    auth.start_time -= 5
    yield auth
    auth.repository.engine.dispose()


def _x5c(config: dict[str, Any], claims: Claims | None = None) -> X5CProvisioner:
    entry = parse_provisioner(config)
    assert isinstance(entry, X5CSchema)
    return X5CProvisioner(entry, claims or Claims())


def _provisioner(pki: X5CPKI, **extra: Any) -> X5CProvisioner:
    return _x5c({"type": "X5C", "name": NAME, "roots": pki.roots_value, **extra})


def _authorize(prov: X5CProvisioner, token: str, method: Method = Method.SIGN) -> Any:
    return prov.authorize(parse_token(token), method, audiences([DNS], method))


def _status(exc: pytest.ExceptionInfo[CAError]) -> int:
    return http_error(exc.value)[0]


# --- configuration --------------------------------------------------------------------------


def test_registry_finds_x5c_by_audience_fragment(pki: X5CPKI) -> None:
    entry = parse_provisioner({"type": "x5c", "name": NAME, "roots": pki.roots_value})
    reg = ProvisionerRegistry([entry], Claims())
    chain, key = pki.leaf()
    prov = reg.for_token(parse_token(x5c_token(chain, key)), audiences([DNS], Method.SIGN))
    assert isinstance(prov, X5CProvisioner)
    assert prov.id == "x5c/x5c" and prov.lookup_keys == ["x5c/x5c"]
    assert prov.to_json() == {"type": "X5C", "name": NAME, "roots": pki.roots_value}


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"type": "X5C", "name": NAME}, "cannot be empty"),
        ({"type": "X5C", "name": NAME, "roots": "not base64!"}, "base64"),
        ({"type": "X5C", "name": NAME, "roots": base64.b64encode(b"junk").decode()}, "no x509"),
        ({"type": "X5C", "name": "", "roots": "eA=="}, "name: cannot be empty"),
        ({"type": "X5C", "name": NAME, "stepstone": "x"}, 'stepstone: expected a JSON object'),
        (
            {"type": "X5C", "name": NAME, "stepstone": {"rootsFile": 5}},
            "stepstone.rootsFile: expected a string, got 5",
        ),
    ],
)
def test_bad_configs_are_refused(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ProvisionerConfigError, match=fragment):
        _x5c(config)


def test_roots_from_a_stepstone_file(
    pki: X5CPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEPPATH", str(tmp_path))
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "x5c.pem").write_bytes(pki.root.public_bytes(Encoding.PEM))
    prov = _x5c({"type": "X5C", "name": NAME, "stepstone": {"rootsFile": "certs/x5c.pem"}})
    chain, key = pki.leaf()
    assert _authorize(prov, x5c_token(chain, key)).subject == "svc.test"
    with pytest.raises(ProvisionerConfigError, match="error reading"):
        _x5c({"type": "X5C", "name": NAME, "stepstone": {"rootsFile": "certs/missing.pem"}})


# --- token checks ---------------------------------------------------------------------------


def test_good_chain_authorizes(pki: X5CPKI) -> None:
    chain, key = pki.leaf()
    opts = _authorize(
        _provisioner(pki), x5c_token(chain, key, "svc.test", sans=["svc.test", "10.1.2.3"])
    )
    assert opts.subject == "svc.test"
    assert opts.sans == ("svc.test", "10.1.2.3")
    assert opts.names_from_csr is False
    assert opts.not_after_limit == chain[0].not_valid_after_utc
    assert opts.extension == ProvisionerExtension(int(ProvisionerType.X5C), NAME, "")
    assert len(opts.token_id) == 64


def test_an_intermediate_as_the_root_of_trust(pki: X5CPKI) -> None:
    chain, key = pki.leaf()
    other = X5CPKI.make("Other")
    # The intermediate alone as a root of trust also works (any configured certificate).
    prov = _x5c(
        {
            "type": "X5C",
            "name": NAME,
            "roots": encode_roots(
                other.root.public_bytes(Encoding.PEM) + pki.inter.public_bytes(Encoding.PEM)
            ),
        }
    )
    assert _authorize(prov, x5c_token(chain[:1], key)).subject == "svc.test"


def test_untrusted_root_is_401(pki: X5CPKI) -> None:
    other = X5CPKI.make("Other")
    chain, key = other.leaf()
    with pytest.raises(CAError) as err:
        _authorize(_provisioner(pki), x5c_token(chain, key))
    assert _status(err) == 401
    assert "error verifying x5c certificate chain" in err.value.reason


def test_expired_leaf_is_401(pki: X5CPKI) -> None:
    now = datetime.now(UTC)
    chain, key = pki.leaf(not_before=now - timedelta(hours=3), not_after=now - timedelta(hours=1))
    with pytest.raises(CAError) as err:
        _authorize(_provisioner(pki), x5c_token(chain, key))
    assert _status(err) == 401
    assert "error verifying x5c certificate chain" in err.value.reason


def test_not_yet_valid_leaf_is_401(pki: X5CPKI) -> None:
    now = datetime.now(UTC)
    chain, key = pki.leaf(not_before=now + timedelta(hours=1))
    with pytest.raises(CAError) as err:
        _authorize(_provisioner(pki), x5c_token(chain, key))
    assert _status(err) == 401


def test_leaf_without_client_auth_is_401(pki: X5CPKI) -> None:
    chain, key = pki.leaf(eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(CAError) as err:
        _authorize(_provisioner(pki), x5c_token(chain, key))
    assert _status(err) == 401
    assert "incompatible key usage" in err.value.reason


def test_leaf_without_eku_is_accepted_like_go(pki: X5CPKI) -> None:
    # Go's x509.Verify: no extendedKeyUsage extension means any usage.
    chain, key = pki.leaf(eku=[])
    assert _authorize(_provisioner(pki), x5c_token(chain, key)).subject == "svc.test"


def test_leaf_without_digital_signature_is_401(pki: X5CPKI) -> None:
    chain, key = pki.leaf(digital_signature=False)
    with pytest.raises(CAError) as err:
        _authorize(_provisioner(pki), x5c_token(chain, key))
    assert _status(err) == 401
    assert "digital signature" in err.value.reason


def test_token_signed_by_another_key_is_401(pki: X5CPKI) -> None:
    chain, key = pki.leaf()
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CAError) as err:
        _authorize(_provisioner(pki), x5c_token(chain, key, sign_with=other))
    assert _status(err) == 401
    assert "error parsing x5c claims" in err.value.reason


@pytest.mark.parametrize(
    "aud",
    [
        f"https://{DNS}:9000/1.0/sign",  # no fragment
        f"https://{DNS}:9000/1.0/sign#x5c/other",  # another provisioner
        f"https://{DNS}:9000/1.0/renew#x5c/x5c",  # another method
        "https://evil.test/1.0/sign#x5c/x5c",  # another CA
    ],
)
def test_wrong_audience_is_401(pki: X5CPKI, aud: str) -> None:
    chain, key = pki.leaf()
    with pytest.raises(CAError) as err:
        _authorize(_provisioner(pki), x5c_token(chain, key, aud=aud))
    assert _status(err) == 401
    assert "invalid audience" in err.value.reason


def test_audience_port_is_ignored(pki: X5CPKI) -> None:
    chain, key = pki.leaf()
    token = x5c_token(chain, key, aud=f"https://{DNS}/1.0/sign#x5c/x5c")
    assert _authorize(_provisioner(pki), token).subject == "svc.test"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"iss": "someone-else"}, "invalid issuer"),
        ({"sub": ""}, "subject cannot be empty"),
        ({"exp": int(time.time()) - 600}, "error parsing x5c claims"),
        ({"nbf": int(time.time()) + 600}, "error parsing x5c claims"),
        ({"sans": "svc.test"}, "invalid sans"),
    ],
)
def test_bad_claims_are_401(pki: X5CPKI, overrides: dict[str, Any], fragment: str) -> None:
    chain, key = pki.leaf()
    token = x5c_token(chain, key, **overrides)
    with pytest.raises(CAError) as err:
        _authorize(_provisioner(pki), token)
    assert _status(err) == 401
    assert fragment in err.value.reason


@pytest.mark.parametrize("header", [None, [], ["%%%"], [base64.b64encode(b"x").decode()], [1]])
def test_bad_x5c_header_is_401(pki: X5CPKI, header: Any) -> None:
    _, key = pki.leaf()
    claims = {"iss": NAME, "aud": AUD, "sub": "a", "exp": int(time.time()) + 60}
    headers = {} if header is None else {"x5c": header}
    token = jwt.encode(claims, key, algorithm="ES256", headers=headers)
    with pytest.raises(CAError) as err:
        _authorize(_provisioner(pki), token)
    assert _status(err) == 401


def test_revoke_token(pki: X5CPKI) -> None:
    chain, key = pki.leaf()
    aud = f"https://{DNS}/1.0/revoke#x5c/x5c"
    opts = _authorize(_provisioner(pki), x5c_token(chain, key, "12345", aud=aud), Method.REVOKE)
    assert opts.subject == "12345"
    with pytest.raises(CAError):
        _authorize(_provisioner(pki), x5c_token(chain, key, "12345"), Method.REVOKE)


def test_disable_smallstep_extensions(pki: X5CPKI) -> None:
    prov = _x5c(
        {"type": "X5C", "name": NAME, "roots": pki.roots_value},
        Claims(disable_smallstep_extensions=True),
    )
    chain, key = pki.leaf()
    assert _authorize(prov, x5c_token(chain, key)).extension is None


# --- through the authority ----------------------------------------------------------------


def test_sign_issues_with_token_names(authority: Authority, pki: X5CPKI) -> None:
    chain, key = pki.leaf()
    token = x5c_token(chain, key, "svc.test", sans=["svc.test", "10.1.2.3"])
    result = authority.sign(make_csr("svc.test", ["svc.test", "10.1.2.3"]), token)
    cert = result.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "svc.test"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["svc.test"]
    ext = ProvisionerExtension.from_certificate(cert)
    assert ext == ProvisionerExtension(int(ProvisionerType.X5C), NAME, "")


def test_csr_names_must_match_the_token(authority: Authority, pki: X5CPKI) -> None:
    chain, key = pki.leaf()
    with pytest.raises(CAError) as err:
        authority.sign(make_csr("svc.test", ["other.test"]), x5c_token(chain, key))
    assert _status(err) == 403


def test_replay_is_401(authority: Authority, pki: X5CPKI) -> None:
    chain, key = pki.leaf()
    token = x5c_token(chain, key)
    authority.sign(make_csr("svc.test", []), token)
    with pytest.raises(CAError) as err:
        authority.sign(make_csr("svc.test", []), token)
    assert _status(err) == 401
    assert "already used" in err.value.reason


def test_not_after_is_clipped_to_the_leaf(authority: Authority, pki: X5CPKI) -> None:
    # Default duration is 24 h; the presented certificate expires in 2 h.
    chain, key = pki.leaf()
    cert = authority.sign(make_csr("svc.test", []), x5c_token(chain, key)).certificate
    assert cert.not_valid_after_utc == chain[0].not_valid_after_utc
    # A shorter request is left alone.
    chain, key = pki.leaf()
    cert = authority.sign(
        make_csr("svc.test", []), x5c_token(chain, key), not_after="1h"
    ).certificate
    assert cert.not_valid_after_utc < chain[0].not_valid_after_utc


def test_explicit_not_after_beyond_the_leaf_is_403(authority: Authority, pki: X5CPKI) -> None:
    chain, key = pki.leaf()
    with pytest.raises(CAError) as err:
        authority.sign(make_csr("svc.test", []), x5c_token(chain, key), not_after="5h")
    assert _status(err) == 403
    assert "notAfter" in http_error(err.value)[1]


def test_revoke_with_an_x5c_token(authority: Authority, pki: X5CPKI) -> None:
    chain, key = pki.leaf()
    cert = authority.sign(make_csr("svc.test", []), x5c_token(chain, key)).certificate
    serial = str(cert.serial_number)
    token = x5c_token(chain, key, serial, aud=f"https://{DNS}/1.0/revoke#x5c/x5c")
    authority.revoke(RevokeRequest(cert.serial_number, 0, "", token), None)
    assert authority.repository.is_revoked(cert.serial_number)
