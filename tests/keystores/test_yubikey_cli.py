"""cli.kms_attest: `step kms attest URI` on an emulated YubiKey."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from cli.common import CLIError
from cli.kms_attest import attest_command, verify_attestation_chain
from keystores import KeySpec, open_keystore
from tests.piv_emulator import VirtualPiv, new_card_state

from .test_yubikey_helpers import ADMIN, Cards, card, cards, lock_dir, make_root, software_key

__all__ = ["card", "cards", "lock_dir"]  # fixtures, imported for pytest

app = typer.Typer()
app.command(name="attest")(attest_command)
app.command(name="unused")(lambda: None)  # two commands: "attest" stays a subcommand
runner = CliRunner()


def attest(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["attest", *args])
    if isinstance(result.exception, CLIError):
        return 1, result.stdout, str(result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def made(card: VirtualPiv, tmp_path: Path) -> Path:
    """A P-256 key generated in slot 9c; returns a PEM file with the emulator's root."""
    with open_keystore(ADMIN) as store:
        store.create_key("yubikey:slot-id=9c;pin-policy=once;touch-policy=cached", KeySpec())
    roots = tmp_path / "roots.pem"
    roots.write_bytes(card.state.attestation_root.public_bytes(Encoding.PEM))
    return roots


def test_pem_chain(card: VirtualPiv, made: Path) -> None:
    code, out, err = attest("yubikey:slot-id=9c")
    assert code == 0, err
    chain = x509.load_pem_x509_certificates(out.encode())
    assert len(chain) == 2
    chain[0].verify_directly_issued_by(chain[1])
    chain[1].verify_directly_issued_by(card.state.attestation_root)
    with open_keystore("yubikey:") as store:
        slot_key = store.public_key("9c")
    spki = PublicFormat.SubjectPublicKeyInfo
    assert chain[0].public_key().public_bytes(Encoding.DER, spki) == slot_key.public_bytes(
        Encoding.DER, spki
    )


def test_json_verified_against_roots(made: Path) -> None:
    code, out, err = attest("--format", "json", "--roots", str(made), "yubikey:slot-id=9c")
    assert code == 0, err
    data = json.loads(out)
    assert data["verified"] is True
    assert data["root"] == "CN=Yubico PIV Root CA (emulator)"
    assert data["serial"] == 11111111
    assert data["firmware"] == "5.7.2"
    assert (data["pinPolicy"], data["touchPolicy"]) == ("once", "cached")
    assert data["formFactor"] == 1
    cert = x509.load_pem_x509_certificate(data["certificate"].encode())
    assert cert.subject.rfc4514_string() == "CN=YubiKey PIV Attestation 9c"
    assert len(data["chain"]) == 1


def test_wrong_roots_fail(made: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(
        VirtualPiv(new_card_state()).state.attestation_root.public_bytes(Encoding.PEM)
    )
    code, _, err = attest("--roots", str(other), "yubikey:slot-id=9c")
    assert code == 1
    assert "does not lead to a root in --roots" in err


def test_chain_through_an_intermediate() -> None:
    """Newer YubiKeys: f9's certificate is issued by an intermediate under Yubico's root."""
    from tests.keystores.test_yubikey_helpers import make_intermediate, make_leaf

    root_key = software_key("EC")
    root = make_root(root_key)
    inter_key = software_key("EC")
    inter = make_intermediate(inter_key.public_key(), root, root_key)
    f9_key = software_key("EC")
    f9 = make_leaf(f9_key.public_key(), inter, inter_key)
    attestation = make_leaf(software_key("EC").public_key(), f9, f9_key)
    assert verify_attestation_chain([attestation, f9], [inter, root]) == root
    with pytest.raises(CLIError, match="does not lead"):
        verify_attestation_chain([attestation, f9], [root])
    with pytest.raises(CLIError, match="not issued by the f9"):
        verify_attestation_chain([attestation, inter], [root])


def test_errors(cards: Cards, card: VirtualPiv, tmp_path: Path) -> None:
    code, _, err = attest("yubikey:slot-id=9a")
    assert code == 1 and "no key generated on the card to attest" in err
    code, _, err = attest("--format", "der", "yubikey:slot-id=9a")
    assert code == 1 and "unsupported --format 'der'" in err
    code, _, err = attest(str(tmp_path / "some.key"))
    assert code == 1 and "the file key store cannot attest keys" in err
    code, _, err = attest("--roots", str(tmp_path / "missing.pem"), "yubikey:slot-id=9c")
    assert code == 1 and "cannot read" in err
