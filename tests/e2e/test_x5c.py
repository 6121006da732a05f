"""X5C against the real server: a certificate chain is the credential for `step ca certificate`.

The CA's ca.json has two X5C provisioners: `x5c` trusts a separate test PKI, `x5c-self` trusts
the CA's own root (a certificate from this CA is the credential for the next one).
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import NameOID

from cli.ca.client import CAClient
from cli.ca.flows import TokenRequest, make_token
from cli.ca.tokens import audience
from cli.common import CLIError
from provisioners.extension import ProvisionerExtension, ProvisionerType
from tests.e2e.harness import CA, DEFAULT_401, FORBIDDEN, CAFactory, load_chain, run_step
from tests.provisioners.test_x5c import X5CPKI

Step = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def pki() -> X5CPKI:
    return X5CPKI.make("E2E X5C")


@pytest.fixture(scope="module")
def x5c_ca(ca_factory: CAFactory, pki: X5CPKI) -> CA:
    def edit(cfg: dict[str, Any]) -> None:
        own_root = Path(cfg["root"]).read_bytes()
        cfg["authority"]["provisioners"] += [
            {"type": "X5C", "name": "x5c", "roots": pki.roots_value},
            {"type": "X5C", "name": "x5c-self", "roots": base64.b64encode(own_root).decode()},
        ]

    return ca_factory("x5c", edit)


@pytest.fixture
def step(x5c_ca: CA, tmp_path: Path) -> Step:
    steppath = tmp_path / "client"
    run_step(
        ["ca", "bootstrap", "--ca-url", x5c_ca.url, "--fingerprint", x5c_ca.fingerprint], steppath
    )

    def run(*args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_step([str(a) for a in args], steppath, cwd=tmp_path, check=check)

    return run


def write_credential(pki: X5CPKI, directory: Path, cn: str = "client") -> tuple[Path, Path]:
    chain, key = pki.leaf(cn)
    crt, key_file = directory / f"{cn}.crt", directory / f"{cn}.key"
    crt.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in chain))
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    key_file.chmod(0o600)
    return crt, key_file


def flow_token(
    ca: CA,
    provisioner: str,
    crt: Path,
    key: Path,
    subject: str,
    sans: list[str] | None = None,
    path: str = "/1.0/sign",
) -> str:
    """A token made by the X5C flow of `step ca token` (cli.ca.x5c_flow), in process."""
    now = datetime.now(UTC).replace(microsecond=0)
    with CAClient(ca.url, ca.root_path) as client:
        prov = next(p for p in client.provisioners() if p["name"] == provisioner)
        request = TokenRequest(
            client=client,
            root=ca.root_path,
            root_fingerprint=ca.fingerprint,
            subject=subject,
            sans=sans or [],
            audience=audience(ca.url, path),
            not_before=now,
            expires=now + timedelta(minutes=5),
            options={"x5c_cert": crt, "x5c_key": key},
        )
        return make_token(request, prov)


def _has_x5c_flags(step: Step) -> bool:
    return "--x5c-cert" in step("ca", "certificate", "--help").stdout


def _leaf(path: Path) -> x509.Certificate:
    return load_chain(path.read_bytes())[0]


def _last_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "STEPDEBUG" not in line]
    return lines[-1] if lines else ""


def test_provisioners_lists_x5c(x5c_ca: CA, pki: X5CPKI) -> None:
    with x5c_ca.http() as http:
        items = http.get("/provisioners", params={"limit": "100"}).json()["provisioners"]
    x5c = next(p for p in items if p["name"] == "x5c")
    assert x5c == {"type": "X5C", "name": "x5c", "roots": pki.roots_value}


def test_certificate_with_an_x5c_credential(
    x5c_ca: CA, pki: X5CPKI, step: Step, tmp_path: Path
) -> None:
    crt, key = write_credential(pki, tmp_path)
    args: list[Any] = ["ca", "certificate", "svc.test", "svc.crt", "svc.key"]
    if _has_x5c_flags(step):
        args += ["--provisioner", "x5c", "--x5c-cert", crt, "--x5c-key", key]
        args += ["--san", "svc.test", "--san", "10.9.8.7"]
    else:  # until `--x5c-cert/--x5c-key` are wired into `step ca certificate`
        token = flow_token(x5c_ca, "x5c", crt, key, "svc.test", ["svc.test", "10.9.8.7"])
        args += ["--token", token]
    step(*args)
    cert = _leaf(tmp_path / "svc.crt")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "svc.test"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["svc.test"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.9.8.7"]
    ext = ProvisionerExtension.from_certificate(cert)
    assert ext == ProvisionerExtension(int(ProvisionerType.X5C), "x5c", "")
    # The credential expires in 2 h; the 24 h default is clipped to it.
    credential = _leaf(crt)
    assert cert.not_valid_after_utc == credential.not_valid_after_utc
    cert.verify_directly_issued_by(x5c_ca.intermediate)


def test_token_is_single_use(x5c_ca: CA, pki: X5CPKI, step: Step, tmp_path: Path) -> None:
    crt, key = write_credential(pki, tmp_path)
    token = flow_token(x5c_ca, "x5c", crt, key, "once.test")
    step("ca", "certificate", "once.test", "a.crt", "a.key", "--token", token)
    again = step("ca", "certificate", "once.test", "b.crt", "b.key", "--token", token, check=False)
    assert again.returncode != 0
    assert _last_error(again) == DEFAULT_401


def test_untrusted_credential_is_refused(x5c_ca: CA, step: Step, tmp_path: Path) -> None:
    stranger = X5CPKI.make("Stranger")
    crt, key = write_credential(stranger, tmp_path)
    token = flow_token(x5c_ca, "x5c", crt, key, "svc.test")
    proc = step("ca", "certificate", "svc.test", "s.crt", "s.key", "--token", token, check=False)
    assert proc.returncode != 0
    assert _last_error(proc) == DEFAULT_401
    assert not (tmp_path / "s.crt").exists()


def test_not_after_beyond_the_credential_is_403(
    x5c_ca: CA, pki: X5CPKI, step: Step, tmp_path: Path
) -> None:
    crt, key = write_credential(pki, tmp_path)
    token = flow_token(x5c_ca, "x5c", crt, key, "svc.test")
    proc = step(
        "ca", "certificate", "svc.test", "s.crt", "s.key", "--token", token,
        "--not-after", "5h", check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert _last_error(proc).startswith(FORBIDDEN)
    assert "notAfter" in _last_error(proc)


def test_a_certificate_of_this_ca_as_the_credential(x5c_ca: CA, step: Step, tmp_path: Path) -> None:
    # First a certificate from the JWK provisioner, then that certificate gets the next one.
    step(
        "ca", "certificate", "first.test", "first.crt", "first.key",
        "--provisioner", "admin", "--password-file", x5c_ca.provisioner_password_file,
    )  # fmt: skip
    first = tmp_path / "first.crt"
    token = flow_token(x5c_ca, "x5c-self", first, tmp_path / "first.key", "second.test")
    step("ca", "certificate", "second.test", "second.crt", "second.key", "--token", token)
    second = _leaf(tmp_path / "second.crt")
    assert second.not_valid_after_utc <= _leaf(first).not_valid_after_utc
    ext = ProvisionerExtension.from_certificate(second)
    assert ext is not None and ext.name == "x5c-self"


def test_revoke_with_an_x5c_token(x5c_ca: CA, pki: X5CPKI, step: Step, tmp_path: Path) -> None:
    crt, key = write_credential(pki, tmp_path)
    token = flow_token(x5c_ca, "x5c", crt, key, "gone.test")
    step("ca", "certificate", "gone.test", "g.crt", "g.key", "--token", token)
    serial = str(_leaf(tmp_path / "g.crt").serial_number)
    revoke = flow_token(x5c_ca, "x5c", crt, key, serial, path="/1.0/revoke")
    proc = step("ca", "revoke", serial, "--token", revoke)
    assert serial in proc.stderr + proc.stdout


def test_flow_opens_an_encrypted_credential_key(
    x5c_ca: CA, pki: X5CPKI, step: Step, tmp_path: Path
) -> None:
    chain, key = pki.leaf("locked")
    crt, key_file, password = tmp_path / "l.crt", tmp_path / "l.key", tmp_path / "pw"
    crt.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in chain))
    key_file.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"secret"))
    )
    password.write_text("secret\n")
    now = datetime.now(UTC).replace(microsecond=0)
    with CAClient(x5c_ca.url, x5c_ca.root_path) as client:
        prov = next(p for p in client.provisioners() if p["name"] == "x5c")

        def request(password_file: Path | None) -> TokenRequest:
            return TokenRequest(
                client=client,
                root=x5c_ca.root_path,
                root_fingerprint=x5c_ca.fingerprint,
                subject="locked.test",
                sans=[],
                audience=audience(x5c_ca.url, "/1.0/sign"),
                not_before=now,
                expires=now + timedelta(minutes=5),
                password_file=password_file,
                options={"x5c_cert": crt, "x5c_key": key_file},
            )

        with pytest.raises(CLIError, match="no terminal"):
            make_token(request(None), prov)
        token = make_token(request(password), prov)
        with pytest.raises(CLIError, match="--x5c-key"):
            make_token(
                TokenRequest(**{**request(password).__dict__, "options": {"x5c_cert": crt}}), prov
            )
    step("ca", "certificate", "locked.test", "k.crt", "k.key", "--token", token)
    assert _leaf(tmp_path / "k.crt").subject == x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "locked.test")]
    )


def test_flow_refuses_a_credential_that_cannot_sign(
    x5c_ca: CA, pki: X5CPKI, tmp_path: Path
) -> None:
    chain, key = pki.leaf("nosign", digital_signature=False)
    crt, key_file = tmp_path / "n.crt", tmp_path / "n.key"
    crt.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in chain))
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with pytest.raises(CLIError, match="digital signature"):
        flow_token(x5c_ca, "x5c", crt, key_file, "nosign.test")
    other_crt, _ = write_credential(pki, tmp_path, "other")
    with pytest.raises(CLIError, match="does not match"):
        flow_token(x5c_ca, "x5c", other_crt, key_file, "nosign.test")
