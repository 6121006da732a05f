"""`step ca init`: create a PKI (root, intermediate, JWK provisioner) in step's file layout."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.authority import fingerprint
from appliance.config import DEFAULT_TLS
from appliance.profiles import build_intermediate, build_root
from keystores import KeySpec, open_keystore, write_atomic
from provisioners.jose import encrypt_jwk, private_jwk, public_jwk


@dataclass(frozen=True)
class InitRequest:
    """The answers `step ca init` needs."""

    step_path: Path
    name: str
    dns_names: list[str]
    address: str
    provisioner: str
    password: bytes
    provisioner_password: bytes


@dataclass
class InitResult:
    """Where everything went, in the order step prints it."""

    root_cert: Path
    root_key: Path
    root_fingerprint: str
    intermediate_cert: Path
    intermediate_key: Path
    db_dir: Path
    defaults: Path
    ca_config: Path
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


def init_pki(req: InitRequest, progress: Callable[[str], None] = lambda _: None) -> InitResult:
    """Create keys, certificates and configs; on any failure remove what was written."""
    base = req.step_path
    res = InitResult(
        root_cert=base / "certs" / "root_ca.crt",
        root_key=base / "secrets" / "root_ca_key",
        root_fingerprint="",
        intermediate_cert=base / "certs" / "intermediate_ca.crt",
        intermediate_key=base / "secrets" / "intermediate_ca_key",
        db_dir=base / "db",
        defaults=base / "config" / "defaults.json",
        ca_config=base / "config" / "ca.json",
    )
    try:
        _create(req, res, progress)
    except BaseException:
        for path in reversed(res.written):
            path.unlink(missing_ok=True)
        raise
    return res


def _create(req: InitRequest, res: InitResult, progress: Callable[[str], None]) -> None:
    for sub in ("certs", "secrets", "config", "db", "templates"):
        (req.step_path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.now(UTC).replace(microsecond=0)
    store = open_keystore("file:", password=req.password, base_dir=req.step_path)

    progress("Generating root certificate... ")
    root_public = store.create_key(str(res.root_key), KeySpec("EC", "P-256"), overwrite=True)
    res.written.append(res.root_key)
    root_key = store.signer(str(res.root_key))
    root = build_root(req.name, root_key, now)
    assert root.public_key() == root_public
    write_atomic(res.root_cert, root.public_bytes(Encoding.PEM), mode=0o600)
    res.written.append(res.root_cert)
    res.root_fingerprint = fingerprint(root)
    progress("done!\n")

    progress("Generating intermediate certificate... ")
    inter_public = store.create_key(
        str(res.intermediate_key), KeySpec("EC", "P-256"), overwrite=True
    )
    res.written.append(res.intermediate_key)
    intermediate = build_intermediate(req.name, inter_public, root, root_key, now)
    write_atomic(res.intermediate_cert, intermediate.public_bytes(Encoding.PEM), mode=0o600)
    res.written.append(res.intermediate_cert)
    store.close()
    progress("done!\n")

    jwk_key = ec.generate_private_key(ec.SECP256R1())
    provisioner = {
        "type": "JWK",
        "name": req.provisioner,
        "key": public_jwk(jwk_key),
        "encryptedKey": encrypt_jwk(private_jwk(jwk_key), req.provisioner_password),
    }
    url = ca_url(req.dns_names, req.address)
    ca_json: dict[str, Any] = {
        "root": str(res.root_cert),
        "federatedRoots": None,
        "crt": str(res.intermediate_cert),
        "key": str(res.intermediate_key),
        "address": req.address,
        "insecureAddress": "",
        "dnsNames": req.dns_names,
        "logger": {"format": "text"},
        "db": {"type": "sqlite", "dataSource": str(res.db_dir)},
        "authority": {"provisioners": [provisioner]},
        "tls": dict(DEFAULT_TLS),
    }
    write_json(res.ca_config, ca_json)
    res.written.append(res.ca_config)
    defaults = {
        "ca-url": url,
        "ca-config": str(res.ca_config),
        "fingerprint": res.root_fingerprint,
        "root": str(res.root_cert),
    }
    write_json(res.defaults, defaults)
    res.written.append(res.defaults)
