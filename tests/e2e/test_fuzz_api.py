"""Fuzz the real appliance against its own OpenAPI document (schemathesis), and the JSON limits.

One CA of its own (CRL on, so `/crl` answers 200) runs under gunicorn with TLS on 127.0.0.1
and serves `/openapi.json` (checked to be api/openapi.json, which schemathesis reads). For
every documented operation schemathesis sends up to MAX_EXAMPLES generated requests (its
examples, coverage and fuzzing phases; positive and negative data; on the routes that read the
TLS client certificate, every other request presents one). Every response must be:
- no 5xx (but step-ca's own 501 where the document lists it);
- a status, content type, body and headers that the document lists for that operation, and a
  4xx for data that breaks the document's schemas;
- free of Python traceback text.

Random strings rarely get past the first check of a route, so a case hook (`flatmap_case`)
swaps parts of the *positive* cases for inputs that reach deeper: real CSRs (weak, Ed25519,
tampered), tokens signed with the provisioner's real key and fuzzed claims, forged tokens with
the real `kid`/`iss`/audience and garbage signatures, renewal tokens carrying this CA's
certificates, real and bit-flipped OCSP requests. Negative cases stay as generated, so
`negative_data_rejection` still means what it says.

The number of requests is counted and printed by test_fuzz_run_was_counted (`-s`, or `-rP`
under pytest-xdist): the closing note of issue 9 quotes it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import jwt
import pytest
import schemathesis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.harness import (
    CA,
    PROVISIONER_PASSWORD,
    CAFactory,
    csr_pem,
    make_csr,
    tamper_signature,
)
from tests.e2e.tokens import TokenMaker

DOCUMENT = Path(__file__).resolve().parents[2] / "api" / "openapi.json"
#: Examples per operation; STEPSTONE_FUZZ_EXAMPLES=1000 makes a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("STEPSTONE_FUZZ_EXAMPLES", "50"))
#: Whole-run guard against a hung run, not a performance check: about 2 s per documented
#: operation (2 cores shared with the rest of the suite), at least 150 s.
OPERATIONS = sum(
    1
    for item in json.loads(DOCUMENT.read_text())["paths"].values()
    for method in item
    if method in ("get", "head", "post", "put", "patch", "delete")
)
TIME_BUDGET = max(150.0, 2.0 * OPERATIONS) * max(1.0, MAX_EXAMPLES / 50)
#: A single request slower than this fails the run (hypothesis' per-example deadline is off:
#: shared CI cores make it flaky; this is generous and catches a hung request).
REQUEST_TIMEOUT = 15.0
MTLS_ROUTES = ("/renew", "/re-sign", "/rekey", "/revoke")
TRACEBACK_MARKERS = ("Traceback", 'File "')


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """schemathesis' not_a_server_error, except step-ca's own 501 where the document lists it
    (non-passive revocation: "not implemented" is the answer step-ca gives, not a crash)."""
    if response.status_code == 501 and "501" in case.operation.definition.raw["responses"]:
        return True
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]

JSON_TOO_DEEP = (
    "The request could not be completed: error decoding json: nested deeper than 32 levels."
)
JSON_TOO_LARGE = "The request could not be completed: error decoding json: request body too large."


@dataclass
class Facts:
    """What the strategies draw from: set by the `fuzz_ca` fixture, empty otherwise."""

    url: str = ""
    tokens: TokenMaker | None = None
    csrs: list[str] = field(default_factory=list)
    certs_b64: list[str] = field(default_factory=list)
    serials: list[int] = field(default_factory=list)
    ocsp_requests: list[bytes] = field(default_factory=list)
    client_cert: tuple[str, str] | None = None


FACTS = Facts()

# The OCSP POST body is raw DER: sent as is, like application/octet-stream.
schemathesis.serializer.alias("application/ocsp-request", "application/octet-stream")


@dataclass
class Tally:
    """Requests sent and what came back."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    other_methods: int = 0
    started: float | None = None
    last: float = 0.0


TALLY = Tally()


# --- strategies ----------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value).encode())


# Text as Go's JSON decoder never sees it: lone UTF-16 surrogates (it makes them U+FFFD).
surrogates = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
# Any JSON value: NaN, infinities and lone surrogates included (Python's json reads them).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | surrogates,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)


def near_now() -> st.SearchStrategy[int]:
    return st.integers(-7200, 7200).map(lambda delta: int(time.time()) + delta)


def time_claim() -> st.SearchStrategy[Any]:
    extremes = st.sampled_from([10**400, -(10**400), 1e300, -1e300, 2**63, 0, 0.5])
    return st.one_of(near_now(), near_now().map(float), st.integers(), extremes, json_values)


def audiences() -> st.SearchStrategy[Any]:
    paths = ["/1.0/sign", "/sign", "/1.0/revoke", "/revoke", "/1.0/renew", "/renew"]
    real = st.sampled_from([FACTS.url + p for p in paths] + ["step-certificate-authority"])
    return st.one_of(real, st.lists(real, max_size=3), json_values)


def names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["fuzz.example.com", "127.0.0.1", "::1", "a@b.c", "https://x/y", "",
                         "a@b@c", "é.example.com", "https://é/", "x" * 65]),
        st.text(max_size=30),
        surrogates,
    )


def token_claims(sub: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Claims as `step ca token` makes them, some dropped, some replaced by values of any
    JSON type (or extremes), some added."""
    maker = FACTS.tokens
    assert maker is not None

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        now = int(time.time())
        subject = draw(sub if sub is not None else names())
        claims: dict[str, Any] = {
            "iss": maker.provisioner, "aud": maker.audience, "sub": subject,
            "sans": [subject], "sha": maker.root_fingerprint, "iat": now, "nbf": now,
            "exp": now + 300, "jti": secrets.token_hex(32),
        }
        for claim in draw(st.lists(st.sampled_from(sorted(claims)), max_size=2, unique=True)):
            del claims[claim]
        changes = st.fixed_dictionaries(
            {},
            optional={"aud": audiences(), "iss": json_values, "sans": st.one_of(
                st.lists(names(), max_size=3), json_values), "iat": time_claim(),
                "nbf": time_claim(), "exp": time_claim(), "jti": json_values,
                "cnf": json_values, "sub": json_values, "step": json_values},
        )
        claims.update(draw(changes))
        return claims

    return build()


def signed_token(sub: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    """Signed with the provisioner's real key (PyJWS: jwt.encode refuses odd claims)."""
    maker = FACTS.tokens
    assert maker is not None

    def sign(claims: dict[str, Any]) -> str:
        key: Any = maker.key
        headers = {"kid": maker.kid, "typ": "JWT"}
        return jwt.PyJWS().encode(json.dumps(claims).encode(), key, algorithm=maker.alg,
                                  headers=headers)

    return token_claims(sub).map(sign)


def forged_token(sub: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    """The real `kid`, `iss` and audience in a token whose signature is garbage: what an
    attacker without the key can send (the checks before the signature see it all)."""
    maker = FACTS.tokens
    assert maker is not None
    header = st.fixed_dictionaries(
        {"alg": st.one_of(st.sampled_from([maker.alg, "RS256", "EdDSA", "HS256", "none"]),
                          json_values)},
        optional={"kid": st.one_of(st.just(maker.kid), json_values),
                  "typ": st.just("JWT"),
                  "x5c": st.lists(st.sampled_from(FACTS.certs_b64), max_size=2),
                  "x5cInsecure": st.one_of(st.lists(st.sampled_from(FACTS.certs_b64),
                                                    min_size=1, max_size=2), json_values)},
    )
    payload = st.one_of(token_claims(sub), token_claims(sub), json_values)
    signature = st.binary(max_size=80).map(b64url)
    return st.tuples(header.map(b64url_json), payload.map(b64url_json), signature).map(
        ".".join
    )


def any_token(sub: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[str]:
    return st.one_of(signed_token(sub), forged_token(sub))


def csrs() -> st.SearchStrategy[str]:
    return st.sampled_from(FACTS.csrs)


def durations() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["", "5m", "-1h", "2000h", "1.5h", "1h1m1s", "9999999999h", "1e400h",
                         "0", "2020-01-01T00:00:00Z", "2999-01-01T00:00:00+02:00", "now"]),
        st.text(max_size=20),
        surrogates,
    )


def serials() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(FACTS.serials), st.integers(0, 1 << 160))


def serial_text(serial: int) -> st.SearchStrategy[str]:
    return st.sampled_from([str(serial), hex(serial), f" {serial} "])


def ocsp_requests() -> st.SearchStrategy[bytes]:
    real = st.sampled_from(FACTS.ocsp_requests)

    def flip(der: bytes, index: int, bit: int) -> bytes:
        data = bytearray(der)
        data[index % len(data)] ^= 1 << bit
        return bytes(data)

    flipped = st.builds(flip, real, st.integers(0, 500), st.integers(0, 7))
    return st.one_of(real, flipped, real.map(lambda d: d[: len(d) // 2]))


def prefer(real: st.SearchStrategy[Any], generated: Any) -> st.SearchStrategy[Any]:
    """Mostly the realistic value (three times in four), else what schemathesis generated."""
    return st.integers(0, 3).flatmap(lambda i: st.just(generated) if i == 3 else real)


_ABSENT = object()


def _sign_body(body: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        new = dict(body)
        new["csr"] = draw(prefer(csrs(), body.get("csr")))
        new["ott"] = draw(prefer(any_token(), body.get("ott")))
        for key in ("notBefore", "notAfter"):
            value = draw(st.one_of(durations(), st.just(body.get(key, _ABSENT))))
            if value is _ABSENT:
                new.pop(key, None)
            else:
                new[key] = value
        return new

    return build()


def _revoke_body(body: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        serial = draw(serials())
        new = dict(body, serial=draw(serial_text(serial)))
        if draw(st.booleans()):
            new["ott"] = draw(any_token(st.one_of(st.just(str(serial)), names())))
        if draw(st.booleans()):
            new["passive"] = True
        if draw(st.booleans()):
            new["reason"] = draw(st.one_of(st.text(max_size=30), surrogates))
        return new

    return build()


def _renew_token() -> st.SearchStrategy[str]:
    maker = FACTS.tokens
    assert maker is not None
    header = st.fixed_dictionaries(
        {"alg": st.sampled_from(["ES256", "RS256", "EdDSA", "none"]),
         "x5cInsecure": st.one_of(st.lists(st.sampled_from(FACTS.certs_b64), min_size=1,
                                           max_size=2), json_values)},
        optional={"kid": json_values, "typ": st.just("JWT")},
    )
    claims = st.fixed_dictionaries(
        {},
        optional={"aud": audiences(), "sub": names(), "iat": time_claim(),
                  "nbf": time_claim(), "exp": time_claim(), "jti": json_values},
    )
    signature = st.binary(max_size=80).map(b64url)
    return st.tuples(header.map(b64url_json), claims.map(b64url_json), signature).map(".".join)


Case = schemathesis.Case[Any]


@schemathesis.hook
def flatmap_case(ctx: schemathesis.HookContext, case: Case) -> st.SearchStrategy[Case]:
    """Positive cases of the routes that take tokens, CSRs or OCSP requests get real ones."""
    meta = case.meta
    if FACTS.tokens is None or meta is None or meta.generation.mode.is_negative:
        return st.just(case)
    route = case.operation.path.removeprefix("/1.0")
    method = case.method.upper()
    body = case.body
    if method == "POST" and route == "/sign" and isinstance(body, dict):
        return _sign_body(body).map(lambda b: _with(case, body=b))
    if method == "POST" and route == "/rekey" and isinstance(body, dict):
        return prefer(csrs(), body.get("csr")).map(lambda c: _with(case, body={**body, "csr": c}))
    if method == "POST" and route == "/revoke" and isinstance(body, dict):
        return prefer(_revoke_body(body), body).map(lambda b: _with(case, body=b))
    if method == "POST" and route in ("/renew", "/re-sign"):
        headers = dict(case.headers or {})
        bearer = _renew_token().map(lambda t: {**headers, "Authorization": f"Bearer {t}"})
        return prefer(bearer, headers).map(lambda h: _with(case, headers=h))
    if method == "POST" and route == "/ocsp":
        return prefer(ocsp_requests(), body).map(lambda b: _with(case, body=b))
    if route == "/ocsp/{request}":
        params = dict(case.path_parameters or {})
        encoded = ocsp_requests().map(lambda d: base64.b64encode(d).decode())
        return prefer(encoded, params.get("request", "")).map(
            lambda r: _with(case, path_parameters={**params, "request": r})
        )
    return st.just(case)


def _with(case: Case, **changes: Any) -> Case:
    """The case with some parts replaced (each part a fresh object: hypothesis may replay)."""
    for name, value in changes.items():
        setattr(case, name, value)
    return case


# --- the CA under test -------------------------------------------------------------------


def _ocsp_requests(ca: CA, issued: list[x509.Certificate]) -> list[bytes]:
    """OCSP requests for the issued certificates, and for a serial this CA never issued."""
    der = serialization.Encoding.DER
    out = [
        ocsp.OCSPRequestBuilder().add_certificate(c, ca.intermediate, hashes.SHA1())
        .build().public_bytes(der)
        for c in issued
    ]
    first = ocsp.load_der_ocsp_request(out[0])
    unknown = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        first.issuer_name_hash, first.issuer_key_hash, 1, hashes.SHA1()
    )
    with_nonce = ocsp.OCSPRequestBuilder().add_certificate(
        issued[0], ca.intermediate, hashes.SHA256()
    ).add_extension(x509.OCSPNonce(secrets.token_bytes(16)), critical=False)
    return [*out, unknown.build().public_bytes(der), with_nonce.build().public_bytes(der)]


@pytest.fixture(scope="module")
def fuzz_ca(ca_factory: CAFactory) -> Iterator[CA]:
    """A CA of its own (the fuzzer issues and revokes), CRL on; FACTS filled from it."""

    def crl_on(cfg: dict[str, Any]) -> None:
        cfg["crl"] = {"enabled": True}

    ca: CA = ca_factory("fuzz", crl_on)
    client_key = ec.generate_private_key(ec.SECP256R1())
    with ca.http() as http:
        maker = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)
        issued: list[x509.Certificate] = []
        for name in ("fuzz-client.example.com", "fuzz-b.example.com"):
            csr = make_csr(name, [name], key=client_key if not issued else None)
            resp = http.post("/1.0/sign", json={"csr": csr_pem(csr), "ott": maker.token(name)})
            assert resp.status_code == 201, resp.text
            issued.append(x509.load_pem_x509_certificate(resp.json()["crt"].encode()))
    cert_file, key_file = ca.base / "fuzz-client.crt", ca.base / "fuzz-client.key"
    cert_file.write_bytes(issued[0].public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(client_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    FACTS.client_cert = (str(cert_file), str(key_file))
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    good = make_csr("fuzz.example.com", ["fuzz.example.com"])
    FACTS.url = ca.url
    FACTS.tokens = maker
    FACTS.csrs = [
        csr_pem(good),
        csr_pem(make_csr("127.0.0.1", ["127.0.0.1", "fuzz.example.com"])),
        csr_pem(make_csr(None, [])),
        csr_pem(make_csr("fuzz.example.com", [], key=ed25519.Ed25519PrivateKey.generate())),
        csr_pem(make_csr("fuzz.example.com", [], key=weak)),
        csr_pem(make_csr("fuzz.example.com", [], key=ec.generate_private_key(ec.SECP521R1()))),
        tamper_signature(good),
        csr_pem(good).replace("CERTIFICATE REQUEST", "CERTIFICATE"),
    ]
    FACTS.certs_b64 = [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
        for c in [*issued, ca.intermediate, ca.root]
    ]
    FACTS.serials = [c.serial_number for c in issued] + [ca.intermediate.serial_number]
    FACTS.ocsp_requests = _ocsp_requests(ca, issued)
    try:
        yield ca
    finally:
        FACTS.tokens = None


@pytest.fixture(scope="module")
def served(fuzz_ca: CA) -> str:
    """The appliance serves the document the fuzzer reads (api/openapi.json): its base URL."""
    with fuzz_ca.http() as http:
        for prefix in ("", "/1.0"):
            resp = http.get(f"{prefix}/openapi.json")
            assert resp.status_code == 200
            assert resp.content == DOCUMENT.read_bytes()
    return fuzz_ca.url


# Loaded from the file at import time, so pytest gets one test per operation: schemathesis'
# lazy loader (`schemathesis.pytest.from_fixture`, which would fetch it from the server) breaks
# on pytest 9.2 (it sets `Node._nodeid`, which pytest no longer has). The `served` fixture
# checks that the appliance serves exactly this file; the requests all go to the appliance.
SCHEMA = schemathesis.openapi.from_path(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "request-timeout": REQUEST_TIMEOUT,
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        }
    ),
)


def fuzz(case: Case, fuzz_ca: CA, served: str) -> None:
    """No 5xx, nothing off the document, no traceback text."""
    tally = TALLY
    now = time.monotonic()
    if tally.started is None:
        tally.started = now
    assert now - tally.started < TIME_BUDGET, (
        f"fuzz run over its {TIME_BUDGET:.0f} s budget after {tally.requests} requests"
    )
    tally.requests += 1
    tally.operations[case.operation.label] += 1
    if case.method.upper() != case.operation.method.upper():
        tally.other_methods += 1  # the coverage phase also tries methods a path lacks
    transport: dict[str, Any] = {"base_url": served, "verify": str(fuzz_ca.root_path),
                                 "timeout": REQUEST_TIMEOUT}
    route = case.operation.path.removeprefix("/1.0")
    if route in MTLS_ROUTES and tally.requests % 2:
        # Every other request of the routes that read the TLS client certificate carries
        # one this CA issued (renewed, re-keyed, maybe revoked by the run itself).
        transport["cert"] = FACTS.client_cert
    response = case.call(**transport)
    tally.statuses[response.status_code] += 1
    text = response.content.decode("utf-8", "replace")
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, f"{marker!r} in the body of {case.method} {case.formatted_path}"
    tally.last = time.monotonic()
    if response.status_code == 500:
        # The server's own account of an internal error, which the client's report lacks.
        pytest.fail(
            f"{response.status_code} from {case.method} {case.formatted_path}; server log:\n"
            + fuzz_ca.log_tail(30)
        )
    checks = CHECKS
    if route == "/ocsp":
        # Any byte string is an OCSP body (a bad one gets malformedRequest, a 200): there is
        # no schema-invalid body to reject, whatever the case's label says.
        checks = [c for c in CHECKS if c is not negative_data_rejection]
    case.validate_response(response, checks=checks, transport_kwargs=transport)


def _fuzz_tests() -> dict[str, Any]:
    """`test_fuzz_<operationId>`, one test function per documented operation.

    One `@schema.parametrize()` over the whole document would be the usual way, but on pytest
    9.2 all its items get the same node id (pytest now builds it from `originalname`), and
    pytest-xdist (`make unit`) then runs one of them. A function per operation has its own id.
    """
    tests: dict[str, Any] = {}
    for item in json.loads(DOCUMENT.read_text())["paths"].values():
        for op in item.values():
            name = f"test_fuzz_{op['operationId']}"

            def test(case: Case, fuzz_ca: CA, served: str) -> None:
                fuzz(case, fuzz_ca, served)

            test.__name__ = test.__qualname__ = name
            tests[name] = SCHEMA.include(operation_id=op["operationId"]).parametrize()(test)
    return tests


globals().update(_fuzz_tests())


def test_fuzz_run_was_counted() -> None:
    """Prints the number of requests the run sent (the closing note quotes it): seen with
    `-s`, or with `-rP` (pytest-xdist too)."""
    tally = TALLY
    if tally.started is None:
        pytest.skip("no test_fuzz_* ran")
    elapsed = tally.last - tally.started
    summary = (
        f"fuzz: {tally.requests} requests ({tally.other_methods} with a method the path lacks) "
        f"over {len(tally.operations)} documented operations in {elapsed:.1f} s; "
        f"statuses {dict(sorted(tally.statuses.items()))}"
    )
    print("\n" + summary)
    documented = sum(
        1 for item in json.loads(DOCUMENT.read_text())["paths"].values() for _ in item
    )
    assert len(tally.operations) == documented, summary
    assert tally.requests >= 10 * documented, summary
    assert not [s for s in tally.statuses if s >= 500 and s != 501], summary


# --- JSON limits on the real appliance -----------------------------------------------------


def test_deep_json_is_a_400_on_the_appliance(fuzz_ca: CA) -> None:
    """A body nested 100,000 deep: step-ca's 400 form, and the CA keeps answering."""
    body = b'{"csr":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for prefix in ("", "/1.0"):
        resp = fuzz_ca.raw("POST", f"{prefix}/sign", body)
        assert resp.status == 400
        assert json.loads(resp.body) == {"status": 400, "message": JSON_TOO_DEEP}
    with fuzz_ca.http() as http:
        assert http.get("/health").status_code == 200


def test_body_over_one_mib_is_a_400_on_the_appliance(fuzz_ca: CA) -> None:
    body = b'{"csr":"' + b"a" * (1 << 20) + b'"}'
    resp = fuzz_ca.raw("POST", "/1.0/sign", body)
    assert resp.status == 400
    assert json.loads(resp.body) == {"status": 400, "message": JSON_TOO_LARGE}


def test_random_ott_is_never_a_server_error(fuzz_ca: CA) -> None:
    """The error paths the fuzzer walks, spelled out once: a bad token is a 401."""
    csr = csr_pem(make_csr("fuzz.example.com", ["fuzz.example.com"]))
    with fuzz_ca.http() as http:
        for ott in ["x", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", secrets.token_urlsafe(300)]:
            resp = http.post("/1.0/sign", json={"csr": csr, "ott": ott})
            assert resp.status_code == 401, (ott, resp.text)
            assert set(resp.json()) == {"status", "message"}



# --- what the fuzzer found, spelled out -----------------------------------------------------


def _signed(claims: dict[str, Any]) -> str:
    maker = FACTS.tokens
    assert maker is not None
    key: Any = maker.key
    return jwt.PyJWS().encode(json.dumps(claims).encode(), key, algorithm=maker.alg,
                              headers={"kid": maker.kid, "typ": "JWT"})


def _claims(**changes: Any) -> dict[str, Any]:
    maker = FACTS.tokens
    assert maker is not None
    now = int(time.time())
    claims = {"iss": maker.provisioner, "aud": maker.audience, "sub": "fuzz.example.com",
              "sans": ["fuzz.example.com"], "iat": now, "nbf": now, "exp": now + 300,
              "jti": secrets.token_hex(32)}
    claims.update(changes)
    return claims


@pytest.mark.parametrize(
    "changes,status",
    [
        ({"sub": "\x19\xbd", "sans": ["\x19\xbd"]}, 400),  # not an A-label: was a 500
        ({"sans": ["é.example.com"]}, 400),
        ({"sub": "x" * 65, "sans": ["fuzz.example.com"]}, 400),  # CN over 64 characters
        ({"sans": ["a@b@c"]}, 400),
        ({"exp": 10**400}, 401),  # PyJWT takes it, a datetime cannot: was a 500
        ({"exp": 1e300}, 401),
        ({"iat": float("nan")}, 401),  # int(nan): was a 500, before the signature check
        ({"iat": float("inf")}, 401),
        ({"jti": "\ud800"}, 401),  # text no encoding can hold: refused, was a 500
    ],
    ids=["non-ascii-dns", "idn", "long-cn", "bad-email", "exp-10e400", "exp-1e300", "iat-nan",
         "iat-inf", "jti-surrogate"],
)
def test_token_claims_that_were_server_errors(
    fuzz_ca: CA, changes: dict[str, Any], status: int
) -> None:
    csr = csr_pem(make_csr(None, []))
    with fuzz_ca.http() as http:
        resp = http.post("/1.0/sign", json={"csr": csr, "ott": _signed(_claims(**changes))})
    assert resp.status_code == status, resp.text
    if status >= 400:
        assert set(resp.json()) == {"status", "message"}


def test_forged_token_with_nan_iat_is_a_401(fuzz_ca: CA) -> None:
    """No key needed: the iat check runs before the signature's."""
    maker = FACTS.tokens
    assert maker is not None
    header = b64url_json({"alg": maker.alg, "kid": maker.kid})
    ott = f"{header}.{b64url(json.dumps(_claims(iat=float('nan'))).encode())}.{b64url(b'x' * 64)}"
    csr = csr_pem(make_csr(None, []))
    with fuzz_ca.http() as http:
        resp = http.post("/1.0/sign", json={"csr": csr, "ott": ott})
    assert resp.status_code == 401, resp.text


def test_revoke_reason_with_a_lone_surrogate(fuzz_ca: CA) -> None:
    """The reason is stored: a lone surrogate could not be (a 500)."""
    csr = csr_pem(make_csr("fuzz.example.com", ["fuzz.example.com"]))
    with fuzz_ca.http() as http:
        resp = http.post("/1.0/sign", json={"csr": csr, "ott": _signed(_claims())})
        assert resp.status_code == 201, resp.text
    serial = x509.load_pem_x509_certificate(resp.json()["crt"].encode()).serial_number
    ott = _signed(_claims(sub=str(serial), sans=[str(serial)], aud=f"{fuzz_ca.url}/1.0/revoke"))
    body = f'{{"serial":"{serial}","passive":true,"reason":"\\ud800","ott":"{ott}"}}'
    raw = fuzz_ca.raw("POST", "/1.0/revoke", body.encode())
    assert raw.status == 200, raw.body
    assert json.loads(raw.body) == {"status": "ok"}


def test_ocsp_request_with_an_unknown_hash_is_malformed_not_a_500(fuzz_ca: CA) -> None:
    sha1 = bytes.fromhex("06052b0e03021a")  # OID 1.3.14.3.2.26
    der = FACTS.ocsp_requests[0]
    assert sha1 in der
    unknown = der.replace(sha1, bytes.fromhex("06052b0e03021c"))  # 1.3.14.3.2.28
    with fuzz_ca.http() as http:
        for resp in (
            http.post("/ocsp", content=unknown,
                      headers={"Content-Type": "application/ocsp-request"}),
            http.get("/1.0/ocsp/" + base64.b64encode(unknown).decode().replace("/", "%2F")),
        ):
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"] == "application/ocsp-response"
            assert ocsp.load_der_ocsp_response(resp.content).response_status == (
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            )
