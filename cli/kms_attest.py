"""`step kms attest URI`: prove that a key was generated in a YubiKey (beyond step's CLI).

The YubiKey signs an attestation certificate for the key in a slot with its attestation key
(slot f9), whose certificate Yubico's PIV root CA issued. The command prints that chain
(attestation certificate first) as PEM, or as JSON with what Yubico's extensions say (serial,
firmware, PIN and touch policies, form factor). With `--roots` it also verifies the chain up
to one of the given certificates, and that the attested key is the one in the slot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cli.common import CLIError
from keystores import Attestation, Attester, KeyStoreError, open_keystore
from pki.certs import issued_by

__all__ = ["attest_command", "verify_attestation_chain"]

_FORMATS = ("pem", "json")
_MAX_DEPTH = 6


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def verify_attestation_chain(
    chain: list[x509.Certificate], bundle: list[x509.Certificate]
) -> x509.Certificate:
    """Check `chain` (attestation first) up to a self-signed certificate in `bundle`, which
    may also hold intermediates (newer YubiKeys have one between f9 and the root).

    Returns the root reached; raises CLIError when the chain does not verify.
    """
    if len(chain) < 2 or not issued_by(chain[0], chain[1]):
        raise CLIError("the attestation certificate was not issued by the f9 attestation key")
    current = chain[1]
    for _ in range(_MAX_DEPTH):
        for candidate in bundle:
            if issued_by(current, candidate):
                if issued_by(candidate, candidate):
                    return candidate
                current = candidate
                break
        else:
            raise CLIError(
                f"the attestation chain does not lead to a root in --roots "
                f"(stuck at {current.subject.rfc4514_string()})"
            )
    raise CLIError("the attestation chain is too long")


def _load_bundle(path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise CLIError(f"step kms attest: cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise CLIError(f"step kms attest: {path} holds no PEM certificates") from None
    return certs


def attest_command(
    uri: str = typer.Argument(..., help="The key URI, e.g. 'yubikey:slot-id=9c'."),
    fmt: str = typer.Option("pem", "--format", help="Output: pem (the chain) or json."),
    roots: Path | None = typer.Option(
        None,
        "--roots",
        help="PEM file with Yubico's PIV root CA (and intermediates): verify the chain.",
    ),
) -> None:
    """Print the attestation of a key generated in a YubiKey: the attestation certificate
    and the YubiKey's f9 attestation certificate, as PEM (or JSON with '--format json').

    '--roots' verifies the chain up to one of the certificates in the file and checks that
    the attested key is the one in the slot. Attestation needs no PIN or management key.

    Examples:

      $ step kms attest 'yubikey:slot-id=9c' > attestation.pem

      $ step kms attest --roots yubico-piv-ca-1.pem --format json \\
          'yubikey:serial=12345678;slot-id=9a'
    """
    if fmt not in _FORMATS:
        raise CLIError(f"step kms attest: unsupported --format {fmt!r} (use pem or json)")
    bundle = _load_bundle(roots) if roots is not None else None
    try:
        with open_keystore(uri) as store:
            if not isinstance(store, Attester):
                raise CLIError(f"step kms attest: the {store.kind} key store cannot attest keys")
            chain = store.attestation_chain(uri)
            slot_key = store.public_key(uri)
            facts: Attestation | None = (
                store.describe_attestation(chain[0]) if fmt == "json" else None
            )
    except KeyStoreError as exc:
        raise CLIError(f"step kms attest: {exc}") from None
    spki = slot_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if _spki(chain[0]) != spki:
        raise CLIError("step kms attest: the attested key is not the key in the slot")
    root = None
    if bundle is not None:
        try:
            root = verify_attestation_chain(chain, bundle)
        except CLIError as exc:
            raise CLIError(f"step kms attest: {exc}") from None
    if fmt == "pem":
        typer.echo("".join(_pem(c) for c in chain), nl=False)
        return
    assert facts is not None
    out: dict[str, Any] = {
        "serial": facts.serial,
        "firmware": facts.firmware,
        "pinPolicy": facts.pin_policy,
        "touchPolicy": facts.touch_policy,
        "formFactor": facts.form_factor,
        "publicKey": slot_key.public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        ).decode(),
        "certificate": _pem(chain[0]),
        "chain": [_pem(c) for c in chain[1:]],
    }
    if root is not None:
        out["verified"] = True
        out["root"] = root.subject.rfc4514_string()
    typer.echo(json.dumps(out, indent=2))
