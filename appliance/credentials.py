"""The CA's secrets from systemd credentials (`LoadCredential=`, `LoadCredentialEncrypted=`).

systemd hands a service its secrets as files in `$CREDENTIALS_DIRECTORY`, readable by the
service only (0400). Two names are read: `ca-password` (decrypts the intermediate's key file)
and `kms-pin` (logs in to the PKCS#11 token or YubiKey holding it). ca.json is never changed:
the PIN goes into an in-memory copy of the config. A secret is never taken from the command
line or from an environment variable; the variable read here only says where the files are.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from appliance.config import CAConfig
from appliance.config_schema import KMSSchema
from keystores import KeyLocation, KeyStoreError
from keystores.uri import KeyURI, split_scheme

DIRECTORY_VARIABLE = "CREDENTIALS_DIRECTORY"
CA_PASSWORD = "ca-password"
KMS_PIN = "kms-pin"
_PIN_ATTRIBUTES = ("pin-value", "pin-source")


class CredentialError(ValueError):
    """A credential that is there but must not be used (unreadable, empty, shared)."""


def read_credential(name: str, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The credential `name`, trailing newlines removed; None when there is none.

    A file that group or others may read or write is refused: systemd makes credentials
    0400, so such a file was put there by hand and the secret may already be out.
    """
    directory = (os.environ if environ is None else environ).get(DIRECTORY_VARIABLE)
    if not directory:
        return None
    path = Path(directory) / name
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise CredentialError(
                f"credential {path} is mode {stat.S_IMODE(mode):04o}: it must be readable by "
                "the service only (0400, as systemd makes it)"
            )
        data = path.read_bytes().rstrip(b"\r\n")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialError(f"credential {path}: {exc.strerror}") from None
    if not data:
        raise CredentialError(f"credential {path} is empty")
    return data


def ca_password(given: bytes | None, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The password for the intermediate's key: `given` (--password-file), else the
    `ca-password` credential, else None (then ca.json's `password`, as step-ca does)."""
    return given if given is not None else read_credential(CA_PASSWORD, environ)


def _has_pin(uri: str) -> bool:
    try:
        parsed = KeyURI.parse(uri)
    except KeyStoreError:
        return True  # not ours to fix: the store will name what is wrong with it
    return any(parsed.get(name) for name in _PIN_ATTRIBUTES)


def with_kms_pin(config: CAConfig, environ: Mapping[str, str] | None = None) -> CAConfig:
    """`config`, or a copy whose key store opens with the `kms-pin` credential.

    Only for a key held in hardware whose ca.json gives no PIN (no `kms.pin`, no
    `pin-value`/`pin-source` in `kms.uri` or `key`): what ca.json says always wins.
    """
    kms = config.kms.as_json() if config.kms else None
    location = KeyLocation.from_config(kms, config.key)
    if not location.hardware or _has_pin(location.store_uri) or _has_pin(config.key):
        return config
    pin = read_credential(KMS_PIN, environ)
    if pin is None:
        return config
    try:
        text = pin.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialError(f"credential {KMS_PIN} is not UTF-8 text") from None
    store = location.store_uri
    separator = "&" if "?" in store else "?"
    uri = f"{store}{separator}pin-value={quote(text, safe='')}"
    pinned = KMSSchema.model_validate({**(kms or {}), "type": split_scheme(store)[0], "uri": uri})
    return dataclasses.replace(config, kms=pinned)
