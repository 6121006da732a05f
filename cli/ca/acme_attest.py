"""`step ca certificate SERIAL CRT --attestation-uri yubikey:slot-id=9a`: ACME device-attest-01
(draft-acme-device-attest) in step's `step` format, the key staying on the device.

As step's doDeviceAttestation: the order names one `permanent-identifier` (the subject: the
YubiKey's serial); the device-attest-01 challenge is answered with `{"attObj": base64url(CBOR)}`,
the CBOR being `{"fmt": "step", "attStmt": {"alg": COSE alg, "sig": CBOR(signature over the
key authorization by the slot's key), "x5c": [attestation certificate, f9 certificate]}}`. The
CSR (CN = the serial, no SANs) is signed on the YubiKey too, so no key file is written: step
prints the attestation URI as the "Private Key".
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import cbor2
import typer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from cli.ca import ui
from cli.ca.acme_client import ACMEClient, describe, http_client
from cli.ca.acme_flow import Names, finalize, make_csr
from cli.common import CLIError, write_output
from keystores import Attester, KeyStore, KeyStoreError, open_keystore

__all__ = ["attestation_object", "attested_certificate"]

PERMANENT_IDENTIFIER = "permanent-identifier"
DEVICE_ATTEST = "device-attest-01"
#: COSE algorithm identifiers (RFC 9053) of the signature over the key authorization.
ES256, RS256, EDDSA = -7, -257, -8


def _stderr(text: str) -> None:
    """step's progress text (ui.Printf): stderr, no newline of its own."""
    typer.echo(text, err=True, nl=False)


def attestation_object(signer: Any, chain_der: list[bytes], key_authorization: str) -> bytes:
    """The CBOR attestation object of the `step` format: the slot key's signature over the
    key authorization (itself CBOR-encoded, as WebAuthn's signature attestations) and the
    attestation chain."""
    data = key_authorization.encode()
    public = signer.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        if not isinstance(public.curve, ec.SECP256R1):
            raise CLIError(f"unsupported elliptic curve {public.curve.name}")
        alg, sig = ES256, signer.sign(data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(public, rsa.RSAPublicKey):
        alg, sig = RS256, signer.sign(data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public, ed25519.Ed25519PublicKey):
        alg, sig = EDDSA, signer.sign(data)
    else:
        raise CLIError(f"unsupported public key type {type(public).__name__}")
    statement = {"alg": alg, "sig": cbor2.dumps(bytes(sig)), "x5c": chain_der}
    return bytes(cbor2.dumps({"fmt": "step", "attStmt": statement}))


def _authorize(
    client: ACMEClient, order: dict[str, Any], store: Attester, uri: str, signer: Any
) -> None:
    """Answer the device-attest-01 challenge of each pending authorization."""
    for az_url in order.get("authorizations") or []:
        az, _ = client.get(str(az_url), f"error retrieving ACME Authz at {az_url}")
        ident = str((az.get("identifier") or {}).get("value", ""))
        if az.get("status") == "valid":
            continue
        ch = next((c for c in az.get("challenges") or [] if c.get("type") == DEVICE_ATTEST), None)
        if ch is None:
            raise CLIError(f"unable to validate any challenges for identifier: {ident}")
        url = str(ch.get("url"))
        try:
            chain = [c.public_bytes(Encoding.DER) for c in store.attestation_chain(uri)]
        except KeyStoreError as exc:
            raise CLIError(f"error attesting {_shown(uri)}: {exc}") from None
        obj = attestation_object(signer, chain, client.key_authorization(str(ch.get("token"))))
        payload = {"attObj": base64.urlsafe_b64encode(obj).rstrip(b"=").decode()}
        _stderr(f'Using Device Attestation challenge to validate "{ident}" .')
        try:
            client.respond(url, payload)
            final = client.poll(
                url,
                f"error retrieving ACME Challenge at {url}",
                lambda c: c.get("status") in ("valid", "invalid"),
                lambda: _stderr("."),
            )
        except CLIError:
            _stderr(" Error!\n\n")
            raise
        if final.get("status") != "valid":
            _stderr(" Error!\n\n")
            error = final.get("error")
            reason = describe(error) if isinstance(error, dict) else f"status {final['status']}"
            raise CLIError(f"Unable to validate challenge: {reason}")
        _stderr(" done!\n")


def _shown(uri: str) -> str:
    """The URI as step prints it, without a `pin-value` (a secret)."""
    base, _, query = uri.partition("?")
    parts = [p for p in base.split(";") if not p.startswith("pin-value=")]
    kept = [q for q in query.split("&") if q and not q.startswith("pin-value=")]
    return ";".join(parts) + (f"?{'&'.join(kept)}" if kept else "")


def attested_certificate(
    directory: str,
    root: Path | None,
    subject: str,
    crt_file: Path,
    uri: str,
    window: dict[str, str],
    contacts: list[str],
    *,
    system_roots: bool = False,
) -> None:
    """The whole device-attest-01 flow; the chain goes to `crt_file` (0600)."""
    try:
        store: KeyStore = open_keystore(uri)
    except KeyStoreError as exc:
        raise CLIError(f"error opening {_shown(uri)}: {exc}") from None
    with store:
        if not isinstance(store, Attester):
            raise CLIError(f"the {store.kind} key store cannot attest keys")
        try:
            signer = store.signer(uri)
        except KeyStoreError as exc:
            raise CLIError(f"error opening {_shown(uri)}: {exc}") from None
        with http_client(root, system_roots=system_roots) as http:
            client = ACMEClient(http, directory)
            client.new_account(contacts)
            identifiers = [{"type": PERMANENT_IDENTIFIER, "value": subject}]
            order_url, order = client.new_order(identifiers, window)
            _authorize(client, order, store, uri, signer)
            try:
                csr = make_csr(Names(subject, [], []), signer)
            except KeyStoreError as exc:
                raise CLIError(f"error creating certificate request: {exc}") from None
            chain = finalize(client, order_url, csr)
    write_output(crt_file, b"".join(c.public_bytes(Encoding.PEM) for c in chain), mode=0o600)
    ui.selected("Certificate", str(crt_file))
    ui.selected("Private Key", _shown(uri))
