"""DSA certificates under cryptography's DSA deprecation.

cryptography warns on any use of its `dsa` module, and pytest turns a warning raised from
`cli.*` into an error: these tests fail if `step` touches DSA at import time or on a path
that does not need it, and show that a DSA certificate is still printed in full, its own
signature checked, without a warning reaching the terminal.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from cli.certificate import app
from tests.e2e.harness import STEP, clean_env

runner = CliRunner()


@pytest.fixture(scope="module")
def dsa_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A self-signed DSA (SHA-256) leaf and its key's numbers."""
    with warnings.catch_warnings():  # making the DSA test material is not under test
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        from cryptography.hazmat.primitives.asymmetric import dsa

        key = dsa.generate_private_key(2048)
        numbers = key.public_key().public_numbers()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dsa.example")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(7)
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
    path = tmp_path_factory.mktemp("dsa") / "dsa.crt"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    p = numbers.parameter_numbers
    return path, {"p": p.p, "q": p.q, "g": p.g, "y": numbers.y}


def _b64(value: int) -> str:
    return base64.b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).decode()


def test_short_names_dsa_by_q_bits(dsa_cert: tuple[Path, dict[str, int]]) -> None:
    path, numbers = dsa_cert
    result = runner.invoke(app, ["inspect", "--short", str(path)])
    assert result.exit_code == 0, result.output
    assert f"(DSA {numbers['q'].bit_length()})" in result.output.splitlines()[0]


def test_text_prints_the_dsa_numbers(dsa_cert: tuple[Path, dict[str, int]]) -> None:
    path, numbers = dsa_cert
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "Public Key Algorithm: DSA" in result.output
    flat = result.output.replace(" ", "").replace("\n", "")
    for label in ("pub", "P", "Q", "G"):
        value = numbers["y" if label == "pub" else label.lower()]
        digits = ":".join(f"{b:02x}" for b in value.to_bytes((value.bit_length() + 7) // 8))
        assert f"{label}:{digits}" in flat or f"{label}:00:{digits}" in flat, label


def test_json_checks_the_dsa_signature(dsa_cert: tuple[Path, dict[str, int]]) -> None:
    path, numbers = dsa_cert
    result = runner.invoke(app, ["inspect", "--format", "json", str(path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["signature"]["self_signed"] is True  # the DSA signature was verified
    assert doc["subject_key_info"]["dsa_public_key"] == {k: _b64(v) for k, v in numbers.items()}


def test_no_warning_reaches_the_terminal(dsa_cert: tuple[Path, dict[str, int]],
                                         tmp_path: Path) -> None:
    path, _ = dsa_cert
    for args in (["--help"], ["certificate", "inspect", "--format", "json", str(path)]):
        proc = subprocess.run([str(STEP), *args], capture_output=True, text=True,
                              env=clean_env(tmp_path / "step"), timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
