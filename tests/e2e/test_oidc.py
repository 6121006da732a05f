"""OIDC end to end: a CA with an OIDC provisioner for the test identity provider, and the real
`step` CLI logging in through it, an HTTP client (httpx following redirects) standing in for
the browser via STEP_OIDC_BROWSER_CMD."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from cli.ca.oidc_flow import BROWSER_ENV, csr_names
from pki.sans import SubjectAltNames
from provisioners.extension import ProvisionerExtension, ProvisionerType
from tests.e2e.harness import (
    CA,
    DEFAULT_401,
    STEP,
    CAFactory,
    clean_env,
    csr_pem,
    ec_key,
    error_body,
    free_port,
    load_chain,
    run_step,
)
from tests.oidc_idp import CLIENT_ID, TestIdP, User

JANE = User(sub="jane-0001", email="jane@example.com")
BOSS = User(sub="boss-0001", email="boss@example.com")
DISABLED = 'provisioner "down" is disabled due to an initialization error'

BROWSER_SCRIPT = """\
import sys

import httpx

log, url = sys.argv[1], sys.argv[2]
resp = httpx.get(url, follow_redirects=True, timeout=30)
with open(log, "a") as fh:
    fh.write(f"{resp.status_code} {resp.url}\\n")
"""


@pytest.fixture(scope="module")
def idp() -> Iterator[TestIdP]:
    with TestIdP(user=JANE) as provider:
        yield provider


@pytest.fixture
def user(idp: TestIdP) -> Iterator[None]:
    """Each test starts with Jane logged in at the IdP."""
    idp.user = JANE
    yield
    idp.user = JANE


@pytest.fixture(scope="module")
def oidc_ca(ca_factory: CAFactory, idp: TestIdP) -> CA:
    def edit(cfg: dict[str, Any]) -> None:
        provs = cfg["authority"]["provisioners"]
        provs.append(idp.provisioner("sso", domains=["example.com"], admins=["boss@example.com"]))

    return ca_factory("oidc", edit)


@pytest.fixture(scope="module")
def steppath(oidc_ca: CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("oidc-client") / "step"
    run_step(
        ["ca", "bootstrap", "--ca-url", oidc_ca.url, "--fingerprint", oidc_ca.fingerprint], path
    )
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(the STEP_OIDC_BROWSER_CMD value, the file where the stand-in browser logs visits)."""
    base = tmp_path_factory.mktemp("browser")
    script = base / "browser.py"
    script.write_text(BROWSER_SCRIPT)
    log = base / "visits.log"
    command = " ".join(shlex.quote(str(p)) for p in (sys.executable, script, log))
    return command, log


def step_oidc(
    args: list[str | Path], steppath: Path, browser: tuple[str, Path]
) -> subprocess.CompletedProcess[str]:
    env = clean_env(steppath)
    env[BROWSER_ENV] = browser[0]
    return subprocess.run(
        [str(STEP), *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def _names(cert: x509.Certificate) -> tuple[str, SubjectAltNames]:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return str(cn), SubjectAltNames.of(san)


def test_provisioner_is_listed(oidc_ca: CA, idp: TestIdP) -> None:
    with oidc_ca.http() as http:
        items = http.get("/provisioners").json()["provisioners"]
    (sso,) = [p for p in items if p["name"] == "sso"]
    assert sso["type"] == "OIDC"
    assert sso["clientID"] == CLIENT_ID
    assert sso["clientSecret"] == idp.client_secret
    assert sso["configurationEndpoint"] == idp.configuration_endpoint
    assert "state" not in sso


def test_step_ca_certificate_for_the_logged_in_user(
    oidc_ca: CA,
    idp: TestIdP,
    steppath: Path,
    browser: tuple[str, Path],
    tmp_path: Path,
    user: None,
) -> None:
    crt, key = tmp_path / "jane.crt", tmp_path / "jane.key"
    proc = _ok(
        step_oidc(
            ["ca", "certificate", "jane@example.com", crt, key, "--provisioner", "sso"],
            steppath,
            browser,
        )
    )
    assert "Your default web browser has been opened to visit:" in proc.stderr
    assert f"{idp.url}/authorize?" in proc.stderr
    assert browser[1].read_text().splitlines()[-1].startswith("200 http://127.0.0.1:")
    leaf, intermediate = load_chain(crt.read_bytes())
    assert intermediate == oidc_ca.intermediate
    cn, sans = _names(leaf)
    assert cn == JANE.sub
    assert sans.emails == ("jane@example.com",)
    assert sans.uris == (f"{idp.issuer}#{JANE.sub}",)
    assert sans.dns == () and sans.ips == ()
    ext = ProvisionerExtension.from_certificate(leaf)
    assert ext is not None
    assert (ext.type, ext.name, ext.credential_id) == (int(ProvisionerType.OIDC), "sso", CLIENT_ID)


def test_step_ca_token_then_sign_once(
    oidc_ca: CA, idp: TestIdP, steppath: Path, browser: tuple[str, Path], user: None
) -> None:
    proc = _ok(
        step_oidc(["ca", "token", "jane@example.com", "--provisioner", "sso"], steppath, browser)
    )
    token = proc.stdout.strip()
    assert token == idp.issued_id_tokens[-1]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["sub"]) == (idp.issuer, CLIENT_ID, JANE.sub)
    assert claims["nonce"] == idp.authorize_requests[-1]["nonce"]
    cn, names = csr_names(claims, "jane@example.com", [])
    csr = _csr(cn, names)
    with oidc_ca.http() as http:
        first = http.post("/1.0/sign", json={"csr": csr, "ott": token})
        assert first.status_code == 201, first.text
        again = http.post("/1.0/sign", json={"csr": csr, "ott": token})
    assert again.status_code == 401
    assert again.json() == error_body(401, DEFAULT_401)
    (leaf,) = load_chain(first.json()["crt"])
    assert _names(leaf)[0] == JANE.sub


def test_a_new_idp_key_is_fetched_off_the_event_loop(
    oidc_ca: CA, idp: TestIdP, user: None
) -> None:
    """A token signed with a key the CA has not cached: fetching the IdP's keys again must not
    run on the worker's event loop, which runs signing requests itself (api/inline.py); the
    request moves to an app thread, the keys are fetched there, and it is served once."""
    idp.rotate()
    token = idp.id_token()
    claims = jwt.decode(token, options={"verify_signature": False})
    cn, names = csr_names(claims, str(JANE.email), [])
    with oidc_ca.http() as http:
        resp = http.post("/1.0/sign", json={"csr": _csr(cn, names), "ott": token})
        assert resp.status_code == 201, resp.text
        again = http.post("/1.0/sign", json={"csr": _csr(cn, names), "ott": token})
    assert again.status_code == 401, "the token was burned once, by the app thread's run"
    log = oidc_ca.log_path.read_text()
    assert "(unknown kid" in log and "reloaded JWKS" in log


def _csr(cn: str, names: list[str]) -> str:
    """A CSR with CN `cn` and SANs `names` split the way step splits them."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(SubjectAltNames.split(names).general_names()), False
        )
    return csr_pem(builder.sign(ec_key(), hashes.SHA256()))


def test_admin_gets_a_certificate_for_any_name(
    oidc_ca: CA,
    idp: TestIdP,
    steppath: Path,
    browser: tuple[str, Path],
    tmp_path: Path,
    user: None,
) -> None:
    idp.user = BOSS
    crt, key = tmp_path / "any.crt", tmp_path / "any.key"
    _ok(
        step_oidc(
            [
                "ca",
                "certificate",
                "anything.internal",
                crt,
                key,
                "--provisioner",
                "sso",
                "--san",
                "anything.internal",
                "--san",
                "10.20.30.40",
            ],
            steppath,
            browser,
        )
    )
    leaf = load_chain(crt.read_bytes())[0]
    cn, sans = _names(leaf)
    assert cn == "anything.internal"
    assert sans.dns == ("anything.internal",)
    assert [str(ip) for ip in sans.ips] == ["10.20.30.40"]
    assert sans.emails == () and sans.uris == ()


def test_user_outside_the_domains_is_refused(
    oidc_ca: CA,
    idp: TestIdP,
    steppath: Path,
    browser: tuple[str, Path],
    tmp_path: Path,
    user: None,
) -> None:
    idp.user = User(sub="mallory-1", email="mallory@evil.example")
    proc = step_oidc(
        [
            "ca",
            "certificate",
            "mallory@evil.example",
            tmp_path / "m.crt",
            tmp_path / "m.key",
            "--provisioner",
            "sso",
        ],
        steppath,
        browser,
    )
    assert proc.returncode != 0
    assert DEFAULT_401 in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m.crt").exists()


# --- a provisioner whose identity provider is down at start ----------------------------------


@pytest.fixture(scope="module")
def down_ca(ca_factory: CAFactory) -> CA:
    def edit(cfg: dict[str, Any]) -> None:
        provs = cfg["authority"]["provisioners"]
        provs.append(
            {
                "type": "OIDC",
                "name": "down",
                "clientID": "down-client",
                "clientSecret": "",
                "configurationEndpoint": f"http://127.0.0.1:{free_port()}",
            }
        )

    return ca_factory("oidc-down", edit)


def test_ca_starts_with_the_provisioner_disabled(down_ca: CA) -> None:
    with down_ca.http() as http:
        assert http.get("/health").json() == {"status": "ok"}
        items = http.get("/provisioners").json()["provisioners"]
    (down,) = [p for p in items if p["name"] == "down"]
    assert down["state"] == "Uninitialized"
    assert "failed to connect" in down["stateReason"]


def test_disabled_provisioner_answers_401(down_ca: CA, idp: TestIdP) -> None:
    token = idp.id_token(aud="down-client", azp="down-client")
    csr = _csr(JANE.sub, [])
    with down_ca.http() as http:
        resp = http.post("/1.0/sign", json={"csr": csr, "ott": token})
    assert resp.status_code == 401
    assert resp.json() == error_body(401, DISABLED)


def test_step_skips_the_disabled_provisioner(
    down_ca: CA, tmp_path: Path, browser: tuple[str, Path]
) -> None:
    path = tmp_path / "step"
    run_step(
        ["ca", "bootstrap", "--ca-url", down_ca.url, "--fingerprint", down_ca.fingerprint], path
    )
    proc = step_oidc(["ca", "token", "x@example.com", "--provisioner", "down"], path, browser)
    assert proc.returncode != 0
    assert "cannot find a provisioner named 'down'" in proc.stderr
