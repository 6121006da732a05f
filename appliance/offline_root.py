"""The offline root's half of `step ca init`: a CSR now, the configuration once it is signed.

The root key never touches the appliance. `init_csr` makes the intermediate key and a CSR and
keeps a pending state (`config/init-pending.json`, 0600); the CSR is signed elsewhere
(`appliance.ceremony.sign_intermediate`); `complete_init` checks the certificate against the
pending key and the root, then writes the same configuration as `appliance.pki.init_pki`.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from cryptography.x509.oid import NameOID

from appliance.ceremony import check_issued_by, same_key, utc_now
from appliance.ceremony_record import (
    CeremonyError,
    append_entry,
    check_appendable,
    default_record_path,
    public_key_sha256,
    sha256_hex,
)
from appliance.pki import (
    InitRequest,
    InitResult,
    Progress,
    intermediate_key,
    load_cert,
    make_dirs,
    new_provisioner,
    password_for,
    pending_path,
    result_paths,
    rollback,
    write_cert,
    write_configs,
    write_json,
)
from appliance.profiles import hash_for
from keystores import open_keystore, write_atomic
from pki.certs import is_ca
from pki.fingerprint import certificate_fingerprint

__all__ = ["CSRResult", "complete_init", "init_csr", "load_pending"]

_PENDING_VERSION = 1


@dataclass
class CSRResult:
    """What `init_csr` wrote: the intermediate key (URI or path), its CSR, the pending state."""

    intermediate_key: str
    csr: Path
    pending: Path
    public_key_sha256: str
    record: Path
    key_created: bool


def init_csr(req: InitRequest, csr_path: Path, progress: Progress = lambda _: None) -> CSRResult:
    """Make the intermediate key and its CSR, and remember the rest for `complete_init`.

    The CSR's subject is step's intermediate subject (`<name> Intermediate CA`, O `<name>`).
    The JWK provisioner is made now (its private key encrypted with the provisioner password)
    and kept in the pending state with the key's URI; no ca.json is written.
    """
    if req.root_kms is not None or req.root_cert is not None:
        raise CeremonyError(
            "the root key has no place on the appliance: sign the CSR "
            "with 'step ca ceremony sign-intermediate'"
        )
    check_appendable(req.record_path)
    base = req.step_path
    make_dirs(base)
    written: list[Path] = []
    try:
        with ExitStack() as stack:
            files = stack.enter_context(
                open_keystore("file:", password=req.password, base_dir=base)
            )
            progress("Generating intermediate key and CSR... ")
            public, signer, uri, created = intermediate_key(req, files, stack)
            if created is None:
                written.append(Path(uri))
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, req.name),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{req.name} Intermediate CA"),
                ]
            )
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(subject)
                .sign(
                    signer,
                    hash_for(signer),  # type: ignore[arg-type]
                )
            )
        write_atomic(csr_path, csr.public_bytes(Encoding.PEM), mode=0o644)
        written.append(csr_path)
        csr_sha256 = sha256_hex(csr.public_bytes(Encoding.DER))
        pending = pending_path(base)
        state = {
            "version": _PENDING_VERSION,
            "created": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "name": req.name,
            "dnsNames": req.dns_names,
            "address": req.address,
            "provisioner": new_provisioner(req.provisioner, req.provisioner_password),
            "key": uri,
            "publicKey": public.public_bytes(
                Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
            ).decode(),
            "csr": str(csr_path.absolute()),
            "csrSha256": csr_sha256,
        }
        write_json(pending, state, mode=0o600)
        written.append(pending)
        append_entry(
            req.record_path,
            "step ca init --intermediate-csr",
            key_uris=[uri],
            public_keys=[public],
            details={
                "name": req.name,
                "csr": str(csr_path.absolute()),
                "csr_sha256": csr_sha256,
                "subject": subject.rfc4514_string(),
                "intermediate_key": "existing" if created is False else "created",
            },
        )
        progress("done!\n")
    except BaseException:
        rollback(written)
        raise
    return CSRResult(
        intermediate_key=uri,
        csr=csr_path,
        pending=pending,
        public_key_sha256=public_key_sha256(public),
        record=req.record_path,
        key_created=created is not False,
    )


def load_pending(step_path: Path) -> dict[str, Any]:
    """The pending state `init_csr` left, checked for the fields `complete_init` needs."""
    path = pending_path(step_path)
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise CeremonyError(
            f"no pending initialisation in {step_path}: run "
            "'step ca init --intermediate-csr FILE' first"
        ) from None
    except (OSError, ValueError) as exc:
        raise CeremonyError(f"cannot read {path}: {exc}") from None
    needed = ("name", "dnsNames", "address", "provisioner", "key", "publicKey")
    if (
        not isinstance(state, dict)
        or state.get("version") != _PENDING_VERSION
        or any(k not in state for k in needed)
    ):
        raise CeremonyError(f"{path} is not a pending initialisation of this version")
    return state


def complete_init(
    step_path: Path,
    intermediate_crt: Path,
    root_crt: Path,
    password: bytes | None,
    record: Path | None = None,
    progress: Progress = lambda _: None,
) -> InitResult:
    """Finish an `init_csr` with the signed intermediate certificate and the root.

    Checks: the certificate is a CA certificate for the pending key (which must still be in
    its store), it was signed by the root, the root is a self-signed CA, and both are valid
    now. Then writes certs/, ca.json (naming only the intermediate key) and defaults.json,
    removes the pending state and appends to the record.
    """
    state = load_pending(step_path)
    record_path = record or default_record_path(step_path)
    check_appendable(record_path)
    intermediate = load_cert(intermediate_crt, "intermediate certificate")
    root = load_cert(root_crt, "root certificate")
    _check_chain(intermediate, root, state)
    uri = str(state["key"])
    with open_keystore(uri, password=password_for(uri, password), base_dir=step_path) as store:
        public = store.public_key(uri)
    if not same_key(public, intermediate):
        raise CeremonyError("the intermediate key in its store does not match the certificate")

    res = result_paths(step_path, record_path)
    res.intermediate_key = uri
    res.root_fingerprint = certificate_fingerprint(root)
    make_dirs(step_path)
    try:
        progress("Installing root and intermediate certificates... ")
        write_cert(res.root_cert, root, res.written)
        write_cert(res.intermediate_cert, intermediate, res.written)
        progress("done!\n")
        write_configs(
            res,
            dns_names=list(state["dnsNames"]),
            address=str(state["address"]),
            provisioner=dict(state["provisioner"]),
            key_uri=uri,
        )
        append_entry(
            record_path,
            "step ca init --intermediate-crt",
            key_uris=[uri],
            public_keys=[public],
            certificates=[intermediate, root],
            details={
                "name": state["name"],
                "intermediate_subject": intermediate.subject.rfc4514_string(),
                "root_subject": root.subject.rfc4514_string(),
                "ca_config": str(res.ca_config),
            },
        )
    except BaseException:
        rollback(res.written)
        raise
    pending_path(step_path).unlink(missing_ok=True)
    return res


def _check_chain(
    intermediate: x509.Certificate, root: x509.Certificate, state: dict[str, Any]
) -> None:
    try:
        pending_key = load_pem_public_key(str(state["publicKey"]).encode())
    except ValueError:
        raise CeremonyError("the pending state's public key is unreadable") from None
    if not same_key(pending_key, intermediate):
        raise CeremonyError(
            "the intermediate certificate is not for the pending key (was another CSR signed?)"
        )
    if root.issuer != root.subject:
        raise CeremonyError("the root certificate is not self-signed")
    check_issued_by(root, root, "the root certificate")
    for cert, what in ((root, "root"), (intermediate, "intermediate")):
        if not is_ca(cert):
            raise CeremonyError(f"the {what} certificate is not a CA certificate")
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CeremonyError(f"the {what} certificate is not valid now")
    check_issued_by(intermediate, root, "the intermediate certificate")
