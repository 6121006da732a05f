"""`step ca init`: create a PKI (root, intermediate, JWK provisioner) in step's file layout.

Three ways, all ending in the same `ca.json`/`defaults.json`:

- `init_pki`: everything at once. The root key defaults to `$STEPPATH/secrets/root_ca_key` and
  the intermediate key to `$STEPPATH/secrets/intermediate_ca_key` (encrypted PEM files); either
  can instead live in any key store by URI (`root_kms`, `kms`), where it is taken when it
  exists and created otherwise. A root key given by URI is used and forgotten: nothing in
  STEPPATH names it.
- `init_csr` then `complete_init` (`appliance.offline_root`): the offline root, built from
  the pieces here that both ways share (directories, certificates, ca.json and defaults.json,
  the intermediate key, rollback).

For a key outside the file store, ca.json gets step-ca's form (`keystores.KeyLocation`):
`"key"` holds the key's own attributes (`pkcs11:id=7331;object=intermediate-key`) and
`"kms": {"type", "uri"}` the store part with its `pin-source` (a `pin-value` is kept only
when no `pin-source` was given). Every run appends an entry to the ceremony record
(`appliance.ceremony_record`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.ceremony import ensure_key, same_key, utc_now
from appliance.ceremony_record import (
    CeremonyError,
    append_entry,
    check_appendable,
    default_record_path,
)
from appliance.config import DEFAULT_TLS
from appliance.profiles import build_intermediate, build_root
from appliance.ssh_init import add_to_config, create_ssh_keys
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
from pki.certs import parse_certificates
from pki.fingerprint import certificate_fingerprint
from pki.jose import private_jwk, public_jwk
from pki.jwe import encrypt_jwk

__all__ = [
    "PENDING_NAME",
    "InitRequest",
    "InitResult",
    "Progress",
    "ca_url",
    "init_pki",
    "intermediate_key",
    "load_cert",
    "make_dirs",
    "new_provisioner",
    "password_for",
    "pending_path",
    "result_paths",
    "rollback",
    "write_cert",
    "write_configs",
    "write_json",
]

#: The offline root's pending state, in `$STEPPATH/config` (see `appliance.offline_root`).
PENDING_NAME = "init-pending.json"

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
    ssh: bool = False  # `--ssh`: SSH user and host CA keys too (appliance.ssh_init)
    acme: bool = False  # `--acme`: an ACME provisioner named `acme` too

    @property
    def record_path(self) -> Path:
        return self.record or default_record_path(self.step_path)


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


def pending_path(step_path: Path) -> Path:
    """`$STEPPATH/config/init-pending.json`."""
    return step_path / "config" / PENDING_NAME


# --- pieces both ways share -----------------------------------------------------------------


def password_for(uri: str, password: bytes | None) -> bytes | None:
    """The CA password decrypts file keys only; it is never tried as a device PIN (a wrong
    PIN costs a retry): those take theirs from `pin-source`/`pin-value`."""
    return None if is_hardware(uri) else password


def make_dirs(base: Path) -> None:
    for sub in ("certs", "secrets", "config", "db", "templates"):
        (base / sub).mkdir(parents=True, exist_ok=True, mode=0o700)


def new_provisioner(name: str, password: bytes) -> dict[str, Any]:
    """A JWK provisioner with a new P-256 key, its private half encrypted with `password`."""
    jwk_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "type": "JWK",
        "name": name,
        "key": public_jwk(jwk_key),
        "encryptedKey": encrypt_jwk(private_jwk(jwk_key), password),
    }


def write_configs(
    res: InitResult,
    *,
    dns_names: list[str],
    address: str,
    provisioner: dict[str, Any],
    key_uri: str,
    ssh: dict[str, str] | None = None,
    acme: bool = False,
) -> None:
    """ca.json (the intermediate key by `key_uri`) and defaults.json, added to `res.written`.
    With `acme`, an ACME provisioner `acme` follows the JWK one, as `step ca init --acme`."""
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
        "authority": {
            "provisioners": [provisioner, *([{"type": "ACME", "name": "acme"}] if acme else [])]
        },
        "tls": dict(DEFAULT_TLS),
    }
    if ssh is not None:
        ca_json = add_to_config(ca_json, ssh)
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


def write_cert(path: Path, cert: x509.Certificate, written: list[Path]) -> None:
    """The certificate as PEM (0600), added to `written`."""
    write_atomic(path, cert.public_bytes(Encoding.PEM), mode=0o600)
    written.append(path)


def result_paths(req_base: Path, record: Path) -> InitResult:
    """Where step puts everything under `req_base`, nothing written yet."""
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


def rollback(written: list[Path]) -> None:
    """Remove the files written, newest first."""
    for path in reversed(written):
        path.unlink(missing_ok=True)


def load_cert(path: Path, what: str) -> x509.Certificate:
    """The first certificate in a PEM or DER file; CeremonyError names `what` on failure."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CeremonyError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return parse_certificates(data)[0]
    except ValueError:
        raise CeremonyError(f"{path} is not a certificate (PEM or DER)") from None


# --- everything at once ---------------------------------------------------------------------


def init_pki(req: InitRequest, progress: Progress = lambda _: None) -> InitResult:
    """Create keys, certificates and configs; on any failure remove the files written.

    Keys created in other stores by URI are left there (a store may not delete keys, and a
    key that was taken, not created, must never be deleted).
    """
    check_appendable(req.record_path)
    res = result_paths(req.step_path, req.record_path)
    try:
        _create(req, res, progress)
    except BaseException:
        rollback(res.written)
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
        open_keystore(uri, password=password_for(uri, password), base_dir=req.step_path)
    )
    public, created = ensure_key(store, uri, KeySpec("EC", "P-256"))
    signer = store.signer(uri)
    if req.root_cert is not None:
        root = load_cert(req.root_cert, "root certificate")
        if not same_key(root, public):
            raise CeremonyError(f"the root key does not match the root certificate {req.root_cert}")
    else:
        root = build_root(req.name, signer, now)
    details = {
        "root_key": "created" if created else "existing",
        "root_certificate": "existing" if req.root_cert is not None else "created",
    }
    return root, signer, uri, details


def _create(req: InitRequest, res: InitResult, progress: Progress) -> None:
    base = req.step_path
    make_dirs(base)
    now = utc_now()
    with ExitStack() as stack:
        files = stack.enter_context(open_keystore("file:", password=req.password, base_dir=base))
        progress("Generating root certificate... ")
        root, root_signer, root_uri, details = _root(req, files, stack, res, now)
        root_public: PublicKey = root_signer.public_key()
        write_cert(res.root_cert, root, res.written)
        res.root_fingerprint = certificate_fingerprint(root)
        progress("done!\n")

        progress("Generating intermediate certificate... ")
        inter_public, _, inter_uri, created = intermediate_key(req, files, stack)
        if created is None:
            res.written.append(Path(inter_uri))
        else:
            details["intermediate_key"] = "created" if created else "existing"
        if same_key(inter_public, root_public):
            raise CeremonyError("the root and the intermediate cannot share one key")
        res.intermediate_key = inter_uri
        intermediate = build_intermediate(req.name, inter_public, root, root_signer, now)
        write_cert(res.intermediate_cert, intermediate, res.written)
        progress("done!\n")
        ssh = None
        if req.ssh:
            progress("Generating user and host SSH certificate signing keys... ")
            ssh = create_ssh_keys(base, files, stack, req.password, req.kms)
            res.written.extend(ssh.written)
            progress("done!\n")

    write_configs(
        res,
        dns_names=req.dns_names,
        address=req.address,
        provisioner=new_provisioner(req.provisioner, req.provisioner_password),
        key_uri=inter_uri,
        ssh=ssh.block if ssh else None,
        acme=req.acme,
    )
    append_entry(
        req.record_path,
        "step ca init",
        key_uris=[root_uri, inter_uri, *(ssh.uris if ssh else [])],
        public_keys=[root_public, inter_public, *(ssh.public_keys if ssh else [])],
        certificates=[root, intermediate],
        details={"name": req.name, **details, "ca_config": str(res.ca_config)},
    )


def intermediate_key(
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
        open_keystore(uri, password=password_for(uri, req.password), base_dir=req.step_path)
    )
    public, created = ensure_key(store, uri, KeySpec("EC", "P-256"))
    return public, store.signer(uri), uri, created
