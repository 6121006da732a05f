"""`step ca init`: create a PKI (root, intermediate, JWK provisioner) in step's file layout.

Three ways, all ending in the same `ca.json`/`defaults.json`:

- `init_pki`: everything at once. The root key defaults to `$STEPPATH/secrets/root_ca_key` and
  the intermediate key to `$STEPPATH/secrets/intermediate_ca_key` (encrypted PEM files); either
  can instead live in any key store by URI (`root_kms`, `kms`), where it is taken when it
  exists and created otherwise. A root key given by URI is used and forgotten: nothing in
  STEPPATH names it.
- `init_csr` then `complete_init`: the offline root. The appliance makes the intermediate key
  and a CSR and keeps a pending state (`config/init-pending.json`, 0600); the CSR is signed
  elsewhere (`appliance.ceremony.sign_intermediate`); `complete_init` checks the certificate
  against the pending key and the root, then writes the configuration.

For a key outside the file store, ca.json gets step-ca's form (`keystores.KeyLocation`):
`"key"` holds the key's own attributes (`pkcs11:id=7331;object=intermediate-key`) and
`"kms": {"type", "uri"}` the store part with its `pin-source` (a `pin-value` is kept only
when no `pin-source` was given). Every run appends an entry to the ceremony record
(`appliance.ceremony`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from cryptography.x509.oid import NameOID

from appliance import ceremony
from appliance.authority import fingerprint
from appliance.config import DEFAULT_TLS
from appliance.profiles import build_intermediate, build_root, hash_for
from keystores import (
    KeyLocation,
    KeySpec,
    KeyStore,
    PublicKey,
    SigningKey,
    is_hardware,
    normalize_key_uri,
    open_keystore,
    write_atomic,
)
from pki.jose import encrypt_jwk, private_jwk, public_jwk

__all__ = [
    "PENDING_NAME",
    "CSRResult",
    "InitRequest",
    "InitResult",
    "ca_url",
    "complete_init",
    "init_csr",
    "init_pki",
    "write_json",
]

PENDING_NAME = "init-pending.json"
_PENDING_VERSION = 1

Progress = Callable[[str], None]


@dataclass(frozen=True)
class InitRequest:
    """The answers `step ca init` needs.

    `root_kms`/`kms`: key URIs of the root and intermediate keys (default: encrypted files in
    `$STEPPATH/secrets`). `root_cert`: an existing root certificate for the `root_kms` key
    instead of a new one. `root_password`: for a file root key (default: `password`).
    `record`: the ceremony record (default `$STEPPATH/ceremony/record.jsonl`).
    """

    step_path: Path
    name: str
    dns_names: list[str]
    address: str
    provisioner: str
    password: bytes
    provisioner_password: bytes
    root_kms: str | None = None
    kms: str | None = None
    root_cert: Path | None = None
    root_password: bytes | None = None
    record: Path | None = None

    @property
    def record_path(self) -> Path:
        return self.record or ceremony.default_record_path(self.step_path)


@dataclass
class InitResult:
    """Where everything went, in the order step prints it.

    `root_key` is None when the root key was given by URI: the appliance keeps no trace of it.
    """

    root_cert: Path
    root_key: str | None
    root_fingerprint: str
    intermediate_cert: Path
    intermediate_key: str
    db_dir: Path
    defaults: Path
    ca_config: Path
    record: Path
    written: list[Path] = field(default_factory=list)


@dataclass
class CSRResult:
    """What `init_csr` wrote: the intermediate key (URI or path), its CSR, the pending state."""

    intermediate_key: str
    csr: Path
    pending: Path
    public_key_sha256: str
    record: Path
    key_created: bool


def ca_url(dns_names: list[str], address: str) -> str:
    """`https://<first dns name>[:port]`, the port left out when it is 443."""
    port = address.rpartition(":")[2]
    host = dns_names[0]
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}" if port == "443" else f"https://{host}:{port}"


def write_json(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    """JSON the way step writes its config files (tab-indented)."""
    write_atomic(path, json.dumps(data, indent="\t").encode(), mode=mode)


# --- shared pieces --------------------------------------------------------------------------


def _password_for(uri: str, password: bytes | None) -> bytes | None:
    """The CA password decrypts file keys only; it is never tried as a device PIN (a wrong
    PIN costs a retry): those take theirs from `pin-source`/`pin-value`."""
    return None if is_hardware(uri) else password


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _make_dirs(base: Path) -> None:
    for sub in ("certs", "secrets", "config", "db", "templates"):
        (base / sub).mkdir(parents=True, exist_ok=True, mode=0o700)


def _provisioner(name: str, password: bytes) -> dict[str, Any]:
    jwk_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "type": "JWK",
        "name": name,
        "key": public_jwk(jwk_key),
        "encryptedKey": encrypt_jwk(private_jwk(jwk_key), password),
    }


def _write_configs(
    base: Path,
    res: InitResult,
    *,
    dns_names: list[str],
    address: str,
    provisioner: dict[str, Any],
    key_uri: str,
) -> None:
    key, kms = KeyLocation.split(key_uri).config()
    ca_json: dict[str, Any] = {
        "root": str(res.root_cert),
        "federatedRoots": None,
        "crt": str(res.intermediate_cert),
        "key": key,
        "address": address,
        "insecureAddress": "",
        "dnsNames": dns_names,
    }
    if kms is not None:
        ca_json["kms"] = kms
    ca_json |= {
        "logger": {"format": "text"},
        "db": {"type": "sqlite", "dataSource": str(res.db_dir)},
        "authority": {"provisioners": [provisioner]},
        "tls": dict(DEFAULT_TLS),
    }
    write_json(res.ca_config, ca_json)
    res.written.append(res.ca_config)
    defaults = {
        "ca-url": ca_url(dns_names, address),
        "ca-config": str(res.ca_config),
        "fingerprint": res.root_fingerprint,
        "root": str(res.root_cert),
    }
    write_json(res.defaults, defaults)
    res.written.append(res.defaults)


def _write_cert(path: Path, cert: x509.Certificate, written: list[Path]) -> None:
    write_atomic(path, cert.public_bytes(Encoding.PEM), mode=0o600)
    written.append(path)


def _result(req_base: Path, record: Path) -> InitResult:
    return InitResult(
        root_cert=req_base / "certs" / "root_ca.crt",
        root_key=None,
        root_fingerprint="",
        intermediate_cert=req_base / "certs" / "intermediate_ca.crt",
        intermediate_key=str(req_base / "secrets" / "intermediate_ca_key"),
        db_dir=req_base / "db",
        defaults=req_base / "config" / "defaults.json",
        ca_config=req_base / "config" / "ca.json",
        record=record,
    )


def _rollback(written: list[Path]) -> None:
    for path in reversed(written):
        path.unlink(missing_ok=True)


def _load_cert(path: Path, what: str) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ceremony.CeremonyError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        try:
            certs = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise ceremony.CeremonyError(f"{path} is not a certificate (PEM or DER)") from None
    return certs[0]


# --- everything at once ---------------------------------------------------------------------


def init_pki(req: InitRequest, progress: Progress = lambda _: None) -> InitResult:
    """Create keys, certificates and configs; on any failure remove the files written.

    Keys created in other stores by URI are left there (a store may not delete keys, and a
    key that was taken, not created, must never be deleted).
    """
    ceremony.check_appendable(req.record_path)
    res = _result(req.step_path, req.record_path)
    try:
        _create(req, res, progress)
    except BaseException:
        _rollback(res.written)
        raise
    pending_path(req.step_path).unlink(missing_ok=True)  # a full init supersedes a pending one
    return res


def _root(
    req: InitRequest, files: KeyStore, stack: ExitStack, res: InitResult, now: datetime
) -> tuple[x509.Certificate, SigningKey, str, dict[str, str]]:
    """The root certificate and signer: from `req.root_kms` (key taken or created, certificate
    made or `req.root_cert`), else a new key file in `$STEPPATH/secrets`."""
    if req.root_kms is None:
        path = req.step_path / "secrets" / "root_ca_key"
        files.create_key(str(path), KeySpec("EC", "P-256"), overwrite=True)
        res.written.append(path)
        res.root_key = str(path)
        signer = files.signer(str(path))
        root = build_root(req.name, signer, now)
        return root, signer, str(path), {"root_key": "created", "root_certificate": "created"}
    uri = normalize_key_uri(req.root_kms)
    password = req.root_password if req.root_password is not None else req.password
    store = stack.enter_context(
        open_keystore(uri, password=_password_for(uri, password), base_dir=req.step_path)
    )
    public, created = ceremony.ensure_key(store, uri, KeySpec("EC", "P-256"))
    signer = store.signer(uri)
    if req.root_cert is not None:
        root = _load_cert(req.root_cert, "root certificate")
        if not ceremony.same_key(root, public):
            raise ceremony.CeremonyError(
                f"the root key does not match the root certificate {req.root_cert}"
            )
    else:
        root = build_root(req.name, signer, now)
    details = {
        "root_key": "created" if created else "existing",
        "root_certificate": "existing" if req.root_cert is not None else "created",
    }
    return root, signer, uri, details


def _create(req: InitRequest, res: InitResult, progress: Progress) -> None:
    base = req.step_path
    _make_dirs(base)
    now = _now()
    with ExitStack() as stack:
        files = stack.enter_context(open_keystore("file:", password=req.password, base_dir=base))
        progress("Generating root certificate... ")
        root, root_signer, root_uri, details = _root(req, files, stack, res, now)
        root_public: PublicKey = root_signer.public_key()
        _write_cert(res.root_cert, root, res.written)
        res.root_fingerprint = fingerprint(root)
        progress("done!\n")

        progress("Generating intermediate certificate... ")
        inter_public, _, inter_uri, created = _intermediate_key(req, files, stack)
        if created is None:
            res.written.append(Path(inter_uri))
        else:
            details["intermediate_key"] = "created" if created else "existing"
        if ceremony.same_key(inter_public, root_public):
            raise ceremony.CeremonyError("the root and the intermediate cannot share one key")
        res.intermediate_key = inter_uri
        intermediate = build_intermediate(req.name, inter_public, root, root_signer, now)
        _write_cert(res.intermediate_cert, intermediate, res.written)
        progress("done!\n")

    _write_configs(
        base,
        res,
        dns_names=req.dns_names,
        address=req.address,
        provisioner=_provisioner(req.provisioner, req.provisioner_password),
        key_uri=inter_uri,
    )
    ceremony.append_entry(
        req.record_path,
        "step ca init",
        key_uris=[root_uri, inter_uri],
        public_keys=[root_public, inter_public],
        certificates=[root, intermediate],
        details={"name": req.name, **details, "ca_config": str(res.ca_config)},
    )


def _intermediate_key(
    req: InitRequest, files: KeyStore, stack: ExitStack
) -> tuple[PublicKey, SigningKey, str, bool | None]:
    """The intermediate key: (public key, signer, URI, created?), created None for the
    default file, which is always made afresh. The signer lives as long as `stack`."""
    if req.kms is None:
        path = str(req.step_path / "secrets" / "intermediate_ca_key")
        public = files.create_key(path, KeySpec("EC", "P-256"), overwrite=True)
        return public, files.signer(path), path, None
    uri = normalize_key_uri(req.kms)
    store = stack.enter_context(
        open_keystore(uri, password=_password_for(uri, req.password), base_dir=req.step_path)
    )
    public, created = ceremony.ensure_key(store, uri, KeySpec("EC", "P-256"))
    return public, store.signer(uri), uri, created


# --- the offline root: CSR, then completion -------------------------------------------------


def pending_path(step_path: Path) -> Path:
    """`$STEPPATH/config/init-pending.json`."""
    return step_path / "config" / PENDING_NAME


def init_csr(req: InitRequest, csr_path: Path, progress: Progress = lambda _: None) -> CSRResult:
    """Make the intermediate key and its CSR, and remember the rest for `complete_init`.

    The CSR's subject is step's intermediate subject (`<name> Intermediate CA`, O `<name>`).
    The JWK provisioner is made now (its private key encrypted with the provisioner password)
    and kept in the pending state with the key's URI; no ca.json is written.
    """
    if req.root_kms is not None or req.root_cert is not None:
        raise ceremony.CeremonyError(
            "the root key has no place on the appliance: sign the CSR "
            "with 'step ca ceremony sign-intermediate'"
        )
    ceremony.check_appendable(req.record_path)
    base = req.step_path
    _make_dirs(base)
    written: list[Path] = []
    try:
        with ExitStack() as stack:
            files = stack.enter_context(
                open_keystore("file:", password=req.password, base_dir=base)
            )
            progress("Generating intermediate key and CSR... ")
            public, signer, uri, created = _intermediate_key(req, files, stack)
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
        csr_sha256 = ceremony.sha256_hex(csr.public_bytes(Encoding.DER))
        pending = pending_path(base)
        state = {
            "version": _PENDING_VERSION,
            "created": _now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "name": req.name,
            "dnsNames": req.dns_names,
            "address": req.address,
            "provisioner": _provisioner(req.provisioner, req.provisioner_password),
            "key": uri,
            "publicKey": public.public_bytes(
                Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
            ).decode(),
            "csr": str(csr_path.absolute()),
            "csrSha256": csr_sha256,
        }
        write_json(pending, state, mode=0o600)
        written.append(pending)
        ceremony.append_entry(
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
        _rollback(written)
        raise
    return CSRResult(
        intermediate_key=uri,
        csr=csr_path,
        pending=pending,
        public_key_sha256=ceremony.public_key_sha256(public),
        record=req.record_path,
        key_created=created is not False,
    )


def load_pending(step_path: Path) -> dict[str, Any]:
    """The pending state `init_csr` left, checked for the fields `complete_init` needs."""
    path = pending_path(step_path)
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise ceremony.CeremonyError(
            f"no pending initialisation in {step_path}: run "
            "'step ca init --intermediate-csr FILE' first"
        ) from None
    except (OSError, ValueError) as exc:
        raise ceremony.CeremonyError(f"cannot read {path}: {exc}") from None
    needed = ("name", "dnsNames", "address", "provisioner", "key", "publicKey")
    if (
        not isinstance(state, dict)
        or state.get("version") != _PENDING_VERSION
        or any(k not in state for k in needed)
    ):
        raise ceremony.CeremonyError(f"{path} is not a pending initialisation of this version")
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
    record_path = record or ceremony.default_record_path(step_path)
    ceremony.check_appendable(record_path)
    intermediate = _load_cert(intermediate_crt, "intermediate certificate")
    root = _load_cert(root_crt, "root certificate")
    _check_chain(intermediate, root, state)
    uri = str(state["key"])
    with open_keystore(uri, password=_password_for(uri, password), base_dir=step_path) as store:
        public = store.public_key(uri)
    if not ceremony.same_key(public, intermediate):
        raise ceremony.CeremonyError(
            "the intermediate key in its store does not match the certificate"
        )

    res = _result(step_path, record_path)
    res.intermediate_key = uri
    res.root_fingerprint = fingerprint(root)
    _make_dirs(step_path)
    try:
        progress("Installing root and intermediate certificates... ")
        _write_cert(res.root_cert, root, res.written)
        _write_cert(res.intermediate_cert, intermediate, res.written)
        progress("done!\n")
        _write_configs(
            step_path,
            res,
            dns_names=list(state["dnsNames"]),
            address=str(state["address"]),
            provisioner=dict(state["provisioner"]),
            key_uri=uri,
        )
        ceremony.append_entry(
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
        _rollback(res.written)
        raise
    pending_path(step_path).unlink(missing_ok=True)
    return res


def _check_chain(
    intermediate: x509.Certificate, root: x509.Certificate, state: dict[str, Any]
) -> None:
    try:
        pending_key = load_pem_public_key(str(state["publicKey"]).encode())
    except ValueError:
        raise ceremony.CeremonyError("the pending state's public key is unreadable") from None
    if not ceremony.same_key(pending_key, intermediate):
        raise ceremony.CeremonyError(
            "the intermediate certificate is not for the pending key (was another CSR signed?)"
        )
    if root.issuer != root.subject:
        raise ceremony.CeremonyError("the root certificate is not self-signed")
    ceremony.check_issued_by(root, root, "the root certificate")
    for cert, what in ((root, "root"), (intermediate, "intermediate")):
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise ceremony.CeremonyError(f"the {what} certificate is not a CA certificate")
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ceremony.CeremonyError(f"the {what} certificate is not valid now")
    ceremony.check_issued_by(intermediate, root, "the intermediate certificate")
