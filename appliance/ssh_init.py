"""`step ca init --ssh`: the SSH user and host CA keys beside the X.509 ones, as step lays
them out: `secrets/ssh_{user,host}_ca_key` (encrypted like the intermediate's key),
`certs/ssh_{user,host}_ca_key.pub` (OpenSSH format), `templates/ssh/*.tpl`, ca.json's `ssh`
and `templates` blocks, `enableSSHCA` in the provisioners' claims and an SSHPOP provisioner.

With `--kms` the keys are made in the intermediate's key store, named by `object`
(`ssh-user-ca-key`, `ssh-host-ca-key`) and `id`; only backends whose keys are named by attributes
(PKCS#11) can do that: the others are refused with one line.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.ceremony import ensure_key
from appliance.ceremony_record import CeremonyError
from appliance.ssh_keys import ssh_public_text
from appliance.ssh_templates import default_block, write_defaults
from keystores import (
    KeyLocation,
    KeySpec,
    KeyStore,
    PublicKey,
    is_hardware,
    normalize_key_uri,
    open_keystore,
    write_atomic,
)

SSHPOP_PROVISIONER: dict[str, Any] = {
    "type": "SSHPOP",
    "name": "sshpop",
    "claims": {"enableSSHCA": True},
}


@dataclass
class SSHInit:
    """What `--ssh` made: ca.json's `ssh` block, the key URIs and public keys (for the
    ceremony record) and the files written (for a rollback)."""

    block: dict[str, str]
    uris: list[str] = field(default_factory=list)
    public_keys: list[PublicKey] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


# CKA_ID of the SSH keys in a PKCS#11 token: "ssh" and 01 (user) / 02 (host).
_PKCS11_IDS = {"user": "73736801", "host": "73736802"}


def _kms_uri(kms: str, kind: str) -> str:
    """The SSH key's URI in the intermediate's store (`--kms`): PKCS#11 only."""
    scheme = kms.partition(":")[0] if ":" in kms else "file"
    if scheme != "pkcs11" or KeyLocation.split(normalize_key_uri(kms)).store is None:
        raise CeremonyError(
            f"'--ssh' with '--kms {scheme}:' is not supported: use a PKCS#11 key store, or "
            "leave '--kms' out for SSH keys in files"
        )
    return f"pkcs11:id={_PKCS11_IDS[kind]};object=ssh-{kind}-ca-key"


def create_ssh_keys(
    step_path: Path, files: KeyStore, stack: ExitStack, password: bytes, kms: str | None
) -> SSHInit:
    """The user and host CA keys (EC P-256, as step makes them) and their `.pub` files."""
    out = SSHInit(block={})
    for kind in ("host", "user"):
        name = f"ssh_{kind}_ca_key"
        if kms is None:
            path = step_path / "secrets" / name
            public = files.create_key(str(path), KeySpec("EC", "P-256"), overwrite=True)
            out.written.append(path)
            key = str(path)
        else:
            key = _kms_uri(kms, kind)
            location = KeyLocation.split(normalize_key_uri(kms))
            store_uri = location.store_uri
            store = stack.enter_context(
                open_keystore(
                    store_uri,
                    password=None if is_hardware(store_uri) else password,
                    base_dir=step_path,
                )
            )
            public, _ = ensure_key(store, key, KeySpec("EC", "P-256"))
        pub_path = step_path / "certs" / f"{name}.pub"
        write_atomic(pub_path, (ssh_public_text(public) + "\n").encode(), mode=0o644)
        out.written.append(pub_path)
        out.block[f"{kind}Key"] = key
        out.uris.append(key)
        out.public_keys.append(public)
    out.written.extend(write_defaults(step_path))
    return out


def add_to_config(ca_json: dict[str, Any], ssh: dict[str, str]) -> dict[str, Any]:
    """ca.json with the `ssh` block where step puts it (after `kms`, before `logger`),
    `enableSSHCA` in each provisioner's claims and the SSHPOP provisioner appended."""
    out: dict[str, Any] = {}
    for key, value in ca_json.items():
        if key == "logger":
            out["ssh"] = dict(ssh)
        out[key] = value
    out.setdefault("ssh", dict(ssh))
    provisioners = out.get("authority", {}).get("provisioners", [])
    for prov in provisioners:
        prov.setdefault("claims", {})["enableSSHCA"] = True
    provisioners.append(dict(SSHPOP_PROVISIONER, claims=dict(SSHPOP_PROVISIONER["claims"])))
    out["templates"] = default_block()
    return out
