"""Certificate lifecycle against the real server: renew, rekey, revoke, CRL, OCSP."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.e2e.harness import (
    CA,
    OPENSSL,
    CAFactory,
    load_chain,
    run_step,
)

Step = Callable[..., subprocess.CompletedProcess[str]]


def _client(ca: CA, tmp: Path) -> Step:
    """A `step` bound to a client STEPPATH bootstrapped against `ca`."""
    steppath = tmp / "client"
    run_step(["ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint], steppath)
    ppw = ca.provisioner_password_file

    def step(*args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
        args_ = [str(a) for a in args]
        if args_[:2] in (["ca", "certificate"], ["ca", "revoke"], ["ca", "token"]) and (
            "--token" not in args_ and "--cert" not in args_ and "--renew" not in args_
        ):
            args_ += ["--password-file", str(ppw)]
        return run_step(args_, steppath, cwd=tmp, check=check)

    return step


def _leaf(path: Path) -> x509.Certificate:
    return load_chain(path.read_bytes())[0]


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def crl_ca(ca_factory: CAFactory) -> CA:
    """A CA with the CRL (and so the OCSP pointers) enabled and short certificates allowed."""

    def edit(cfg: dict[str, Any]) -> None:
        cfg["crl"] = {"enabled": True, "generateOnRevoke": True}
        cfg["authority"]["claims"] = {"minTLSCertDuration": "1s"}

    return ca_factory("crl", edit)


def test_renew_by_mtls_and_by_token(main_ca: CA, tmp_path: Path) -> None:
    step = _client(main_ca, tmp_path)
    step("ca", "certificate", "r.test", "r.crt", "r.key")
    before = _leaf(tmp_path / "r.crt")
    out = step("ca", "renew", "r.crt", "r.key", "--force")
    assert "Your certificate has been saved in r.crt." in out.stderr
    after = _leaf(tmp_path / "r.crt")
    assert after.serial_number != before.serial_number and _spki(after) == _spki(before)
    assert after.subject == before.subject
    lifetime = before.not_valid_after_utc - before.not_valid_before_utc
    assert after.not_valid_after_utc - after.not_valid_before_utc == lifetime
    step("ca", "renew", "r.crt", "r.key", "--force", "--no-mtls")
    assert _leaf(tmp_path / "r.crt").serial_number != after.serial_number
    skipped = step("ca", "renew", "r.crt", "r.key", "--expires-in", "1h")
    assert "certificate not renewed: expires in" in skipped.stderr


def test_renew_token_from_step_ca_token(main_ca: CA, tmp_path: Path) -> None:
    step = _client(main_ca, tmp_path)
    step("ca", "certificate", "t.test", "t.crt", "t.key")
    token = step("ca", "token", "t.test", "--renew", "--x5c-cert", "t.crt", "--x5c-key", "t.key")
    with main_ca.http() as http:
        resp = http.post("/1.0/renew", headers={"Authorization": f"Bearer {token.stdout.strip()}"})
        assert resp.status_code == 201
        again = http.post("/1.0/renew", headers={"Authorization": f"Bearer {token.stdout.strip()}"})
        assert again.status_code == 401


def test_expired_certificates(ca_factory: CAFactory, tmp_path: Path) -> None:
    def short(cfg: dict[str, Any]) -> None:
        cfg["authority"]["claims"] = {"minTLSCertDuration": "1s"}

    def lenient(cfg: dict[str, Any]) -> None:
        cfg["authority"]["claims"] = {"minTLSCertDuration": "1s"}
        cfg["authority"]["provisioners"][0]["claims"] = {"allowRenewalAfterExpiry": True}

    strict_ca, lenient_ca = ca_factory("strict", short), ca_factory("lenient", lenient)
    for ca, ok in ((strict_ca, False), (lenient_ca, True)):
        work = tmp_path / ca.base.name
        work.mkdir()
        step = _client(ca, work)
        step(
            "ca",
            "certificate",
            "e.test",
            "e.crt",
            "e.key",
            "--not-before",
            "0s",
            "--not-after",
            "2s",
        )
        import time

        expired = _leaf(work / "e.crt").not_valid_after_utc
        time.sleep(3)
        result = step("ca", "renew", "e.crt", "e.key", "--force", check=False)
        if ok:
            assert result.returncode == 0, result.stderr
            # A new certificate, valid past the expired one (its 2 s may be over already
            # on a loaded machine).
            assert _leaf(work / "e.crt").not_valid_after_utc > expired
        else:
            assert result.returncode == 1
            assert "certificate expired on" in result.stderr


def test_rekey(main_ca: CA, tmp_path: Path) -> None:
    step = _client(main_ca, tmp_path)
    step("ca", "certificate", "k.test", "k.crt", "k.key")
    before = _leaf(tmp_path / "k.crt")
    step("ca", "rekey", "k.crt", "k.key", "--force")
    after = _leaf(tmp_path / "k.crt")
    assert _spki(after) != _spki(before) and after.subject == before.subject
    step("ca", "renew", "k.crt", "k.key", "--force")  # the new pair works for mTLS


def test_revoke_by_token_and_by_mtls(main_ca: CA, tmp_path: Path) -> None:
    step = _client(main_ca, tmp_path)
    for name in ("a", "b"):
        step("ca", "certificate", f"{name}.test", f"{name}.crt", f"{name}.key")
    serial_a = str(_leaf(tmp_path / "a.crt").serial_number)
    out = step("ca", "revoke", serial_a, "--reason", "lost laptop", "--reasonCode", "keyCompromise")
    assert f"Certificate with Serial Number {serial_a} has been revoked." in out.stderr
    again = step("ca", "revoke", serial_a, check=False)
    assert again.returncode == 1 and "is already revoked" in again.stderr
    renew = step("ca", "renew", "a.crt", "a.key", "--force", check=False)
    assert renew.returncode == 1 and "lacked necessary authorization" in renew.stderr
    rekey = step("ca", "rekey", "a.crt", "a.key", "--force", check=False)
    assert rekey.returncode == 1
    serial_b = hex(_leaf(tmp_path / "b.crt").serial_number)
    step("ca", "revoke", serial_b, "--cert", "b.crt", "--key", "b.key", "--reasonCode", "4")
    token_renew = step("ca", "renew", "b.crt", "b.key", "--force", "--no-mtls", check=False)
    assert token_renew.returncode == 1


def test_revoke_token_for_another_serial_is_403(main_ca: CA, tmp_path: Path) -> None:
    step = _client(main_ca, tmp_path)
    step("ca", "certificate", "c.test", "c.crt", "c.key")
    token = step("ca", "token", "12345", "--revoke").stdout.strip()
    serial = str(_leaf(tmp_path / "c.crt").serial_number)
    with main_ca.http() as http:
        resp = http.post("/1.0/revoke", json={"serial": serial, "ott": token, "passive": True})
    assert resp.status_code == 403
    assert resp.json()["message"] == (
        "The request was forbidden by the certificate authority: request serial number "
        f'"{serial}" and token subject "12345" do not match.'
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"passive": True}, 400, "The request could not be completed: missing serial."),
        (
            {"serial": "1", "reasonCode": 11, "passive": True},
            400,
            "The request could not be completed: reasonCode out of bounds.",
        ),
        (
            {"serial": "1", "passive": True},
            400,
            "The request could not be completed: missing ott or client certificate.",
        ),
        (
            {"serial": "1", "ott": "x", "passive": False},
            501,
            "The requested method is not implemented by the certificate authority. "
            "Please see the certificate authority logs for more info.",
        ),
    ],
)
def test_revoke_bad_requests(main_ca: CA, body: dict[str, Any], status: int, message: str) -> None:
    with main_ca.http() as http:
        resp = http.post("/revoke", json=body)
    assert (resp.status_code, resp.json()) == (status, {"status": status, "message": message})


def test_renew_without_credentials_is_400(main_ca: CA) -> None:
    with main_ca.http() as http:
        resp = http.post("/1.0/renew")
    assert resp.json() == {
        "status": 400,
        "message": "The request could not be completed: missing client certificate.",
    }


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=60)


def test_crl_and_ocsp(crl_ca: CA, tmp_path: Path) -> None:
    step = _client(crl_ca, tmp_path)
    step("ca", "certificate", "o.test", "o.crt", "o.key")
    leaf = _leaf(tmp_path / "o.crt")
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name == [x509.UniformResourceIdentifier(f"{crl_ca.url}/1.0/crl")]
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    ocsp_url = next(
        d.access_location.value
        for d in aia
        if d.access_method == x509.AuthorityInformationAccessOID.OCSP
    )
    leaf_pem = tmp_path / "leaf.pem"
    leaf_pem.write_bytes(leaf.public_bytes(Encoding.PEM))

    def ocsp_status() -> str:
        res = _openssl(
            "ocsp",
            "-issuer",
            str(crl_ca.intermediate_path),
            "-cert",
            str(leaf_pem),
            "-url",
            ocsp_url,
            "-CAfile",
            str(crl_ca.root_path),
        )
        assert "Response verify OK" in res.stderr + res.stdout, res.stderr
        return res.stdout

    assert f"{leaf_pem}: good" in ocsp_status()
    step("ca", "revoke", str(leaf.serial_number), "--reasonCode", "superseded")
    status = ocsp_status()
    assert f"{leaf_pem}: revoked" in status and "Reason: superseded" in status

    def fetch_crl(name: str) -> Path:
        with crl_ca.http() as http:
            resp = http.get("/1.0/crl")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/pkix-crl"
        path = tmp_path / name
        path.write_bytes(resp.content)
        return path

    first = fetch_crl("1.crl")
    res = _openssl(
        "crl",
        "-inform",
        "DER",
        "-in",
        str(first),
        "-noout",
        "-text",
        "-CAfile",
        str(crl_ca.intermediate_path),
    )
    assert "verify OK" in res.stderr + res.stdout, res.stderr
    assert format(leaf.serial_number, "X") in res.stdout.replace(":", "")
    number = (
        x509.load_der_x509_crl(first.read_bytes())
        .extensions.get_extension_for_class(x509.CRLNumber)
        .value.crl_number
    )
    step("ca", "certificate", "o2.test", "o2.crt", "o2.key")
    step("ca", "revoke", str(_leaf(tmp_path / "o2.crt").serial_number))
    second = x509.load_der_x509_crl(fetch_crl("2.crl").read_bytes())
    assert second.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > number
    with crl_ca.http() as http:
        pem = http.get("/crl?pem")
    assert pem.text.startswith("-----BEGIN X509 CRL-----")


def test_crl_disabled_is_404(main_ca: CA) -> None:
    with main_ca.http() as http:
        assert http.get("/crl").status_code == 404
