"""Keys for `step crypto jwk|jwt|jwe`, read the way step's `jose.ReadKey`/`ReadKeySet` read them.

A key file is a JWK, a JWK sealed in a PBES2 JWE (opened with :mod:`pki.jwe`, the code path
that also opens provisioner keys), a JWK set, or a PEM key, certificate or CSR (read by
:func:`cli.crypto_keyio.parse_key`, as step's key commands read them). The JWK's `alg` is
guessed from the key when absent (ES256/ES384/ES512 by curve, RS256, EdDSA, HS256, and for
`use` "enc" ECDH-ES, RSA-OAEP-256, A256GCMKW), then checked against the key type as step does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from cli.common import CLIError, go_strerror, prompt_password, read_password_file
from cli.crypto_keyio import parse_key
from pki.jose import (
    JOSEError,
    PrivateKey,
    PublicKey,
    b64url_decode,
    b64url_encode,
    key_from_jwk,
    private_jwk,
    public_jwk,
    thumbprint,
)
from pki.jwe import decrypt_pbes2

__all__ = [
    "PASSWORD_FILE_HELP",
    "StepKey",
    "get_password",
    "indent_json",
    "json_thumbprint",
    "jwk_json",
    "load_keyset",
    "open_if_encrypted",
    "parse_jwk",
    "read_key",
    "read_keyset",
    "stdin_jwk",
    "validate",
]

MAX_DECRYPT_TRIES = 3  # step's jose.MaxDecryptTries
PASSWORD_FILE_HELP = "The path to the <file> containing the password to decrypt the JWK."

SIG_ALGS = {
    "oct": {"HS256", "HS384", "HS512"},
    "RSA": {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
    "OKP": {"EdDSA"},
}
ENC_ALGS = {
    "oct": {"dir", "A128GCMKW", "A192GCMKW", "A256GCMKW", "A128KW", "A192KW", "A256KW"},
    "RSA": {"RSA1_5", "RSA-OAEP", "RSA-OAEP-256"},
    "EC": {"ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW"},
}
_EC_SIG_ALG = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_EC_CRV = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


@dataclass
class StepKey:
    """A JWK as step holds it: the key (bytes for `oct`), kid, use and alg."""

    key: PrivateKey | PublicKey | bytes
    kid: str = ""
    use: str = ""
    alg: str = ""

    @property
    def kty(self) -> str:
        if isinstance(self.key, bytes):
            return "oct"
        if isinstance(self.key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            return "RSA"
        if isinstance(self.key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
            return "EC"
        return "OKP"

    @property
    def is_public(self) -> bool:
        return isinstance(
            self.key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
        )

    def public(self) -> StepKey:
        """The public half (an `oct` key is its own public half, as in step)."""
        key = self.key
        if isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            key = key.public_key()
        return StepKey(key, self.kid, self.use, self.alg)


def get_password(password_file: Path | None, prompt: str) -> bytes:
    """The password from `--password-file`, or asked on the terminal (never echoed)."""
    if password_file is not None:
        return read_password_file(password_file)
    return prompt_password(prompt)


def _is_jwe(data: bytes) -> bool:
    text = data.strip()
    if text.startswith(b"{"):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            return False
        return isinstance(obj, dict) and "ciphertext" in obj
    return text.count(b".") == 4 and b" " not in text and b"\n" not in text


def open_if_encrypted(data: bytes, password_file: Path | None, filename: str) -> bytes:
    """step's `jose.Decrypt`: a JWE is opened with a password (file, or up to 3 prompts);
    anything else is returned as it is."""
    if not _is_jwe(data):
        return data
    tries = 1 if password_file is not None else MAX_DECRYPT_TRIES
    for _ in range(tries):
        password = get_password(password_file, f"Please enter the password to decrypt {filename}")
        try:
            return decrypt_pbes2(data, password)
        except JOSEError as exc:
            if "wrong password" not in str(exc):
                raise CLIError(f"error reading {filename}: {exc}") from None
    raise CLIError("failed to decrypt JWE: invalid password")


def indent_json(obj: Any) -> bytes:
    """Go's json.MarshalIndent(v, "", "  "), how step writes JWKs and JWK sets."""
    return json.dumps(obj, indent=2).encode()


def stdin_jwk(password_file: Path | None, what: str) -> StepKey:
    """A JWK from standard input, opened first if it is a JWE."""
    data = sys.stdin.buffer.read()
    plain = open_if_encrypted(data, password_file, what)
    try:
        obj = json.loads(plain)
    except (ValueError, RecursionError):
        raise CLIError("error reading JWK: unsupported format") from None
    return parse_jwk(obj, "JWK")


def parse_jwk(obj: Any, filename: str) -> StepKey:
    """A StepKey from a parsed JWK; 'unsupported format' as step says for anything else."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("kty"), str):
        raise CLIError(f"error reading {filename}: unsupported format")
    meta = {m: obj.get(m, "") for m in ("kid", "use", "alg")}
    if not all(isinstance(v, str) for v in meta.values()):
        raise CLIError(f"error reading {filename}: unsupported format")
    key: PrivateKey | PublicKey | bytes
    try:
        if obj["kty"] == "oct":
            key = b64url_decode(obj.get("k", ""))
            if not key:
                raise JOSEError("empty oct key")
        else:
            key = key_from_jwk(obj)
    except (JOSEError, ValueError) as exc:
        raise CLIError(f"error reading {filename}: {exc}") from None
    return StepKey(key, meta["kid"], meta["use"], meta["alg"])


def jwk_json(sk: StepKey, *, private: bool) -> dict[str, str]:
    """The JWK members in go-jose's order (use, kty, kid, crv, alg, k/x/y/n/e, d...)."""
    if isinstance(sk.key, bytes):
        out = {"use": sk.use, "kty": "oct", "kid": sk.kid, "alg": sk.alg}
        out = {k: v for k, v in out.items() if v}
        out["k"] = b64url_encode(sk.key)
        return out
    key = sk.key
    if private and isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        return private_jwk(key, kid=sk.kid, alg=sk.alg, use=sk.use)
    return public_jwk(key, kid=sk.kid, alg=sk.alg, use=sk.use)


def _guess_alg(sk: StepKey, alg: str, no_defaults: bool) -> None:
    """jose.guessJWKAlgorithm (and guessKnownJWKAlgorithm under `no_defaults`)."""
    if sk.alg:
        return
    if alg:
        sk.alg = alg
        return
    key = sk.key
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if sk.use != "enc":
            sk.alg = _EC_SIG_ALG.get(key.curve.name, "")
        elif not no_defaults:
            sk.alg = "ECDH-ES"
    elif isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        sk.alg = "EdDSA" if sk.use != "enc" or not no_defaults else ""
    elif no_defaults:
        return
    elif isinstance(key, bytes):
        sk.alg = "A256GCMKW" if sk.use == "enc" else "HS256"
    else:
        sk.alg = "RSA-OAEP-256" if sk.use == "enc" else "RS256"


def _finish(sk: StepKey, filename: str, opts: _Options) -> StepKey:
    _guess_alg(sk, opts.alg, opts.no_defaults)
    if not opts.subtle and opts.alg and sk.alg and opts.alg != sk.alg:
        raise CLIError(f"alg {opts.alg} does not match the alg on {filename}")
    if opts.subtle and opts.alg:
        sk.alg = opts.alg
    return sk


@dataclass
class _Options:
    use: str
    alg: str = ""
    kid: str = ""
    subtle: bool = False
    no_defaults: bool = False
    password_file: Path | None = None


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"error reading {path}: {go_strerror(exc)}") from None


def read_key(path: Path, use: str, **options: Any) -> StepKey:
    """jose.ReadKey: a JWK (maybe encrypted), a PEM key or certificate, or with an HS* alg
    a raw secret."""
    opts = _Options(use, **options)
    data, name = _read(path), str(path)
    if opts.alg in ("HS256", "HS384", "HS512") and not _looks_json_or_jwe(data):
        sk = StepKey(data)
    elif data.startswith(b"-----BEGIN "):
        sk = StepKey(parse_key(data, name, opts.password_file))  # step's key commands' reader
        if not opts.kid:
            sk.kid = json_thumbprint(sk)
    else:
        plain = open_if_encrypted(data, opts.password_file, name)
        try:
            sk = parse_jwk(json.loads(plain), name)
        except (ValueError, RecursionError):
            raise CLIError(f"error reading {name}: unsupported format") from None
    if opts.kid and sk.kid and opts.kid != sk.kid:
        raise CLIError(f"kid {opts.kid} does not match the kid on {name}")
    sk.kid = sk.kid or opts.kid
    sk.use = sk.use or opts.use
    return _finish(sk, name, opts)


def _looks_json_or_jwe(data: bytes) -> bool:
    if _is_jwe(data):
        return True
    try:
        return isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):
        return False


def json_thumbprint(sk: StepKey) -> str:
    """RFC 7638 thumbprint of an asymmetric key (step's kid for PEM keys)."""
    return thumbprint(jwk_json(sk.public(), private=False))


def load_keyset(data: bytes, filename: str) -> list[dict[str, Any]]:
    """The `keys` of a JWK set; a missing or malformed set fails like step's."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise CLIError(f"error reading {filename}: unsupported format") from None
    keys = obj.get("keys") if isinstance(obj, dict) else None
    if keys is None and isinstance(obj, dict):
        keys = []
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise CLIError(f"error reading {filename}: unsupported format")
    return keys


def read_keyset(path: Path, use: str, **options: Any) -> StepKey:
    """jose.ReadKeySet: the one key of the set (maybe encrypted) whose kid is `kid`."""
    opts = _Options(use, **options)
    name = str(path)
    plain = open_if_encrypted(_read(path), opts.password_file, name)
    found = [k for k in load_keyset(plain, name) if k.get("kid", "") == opts.kid]
    if not found:
        raise CLIError(f"cannot find key with kid {opts.kid} on {name}")
    if len(found) > 1:
        raise CLIError(f"multiple keys with kid {opts.kid} have been found on {name}")
    return _finish(parse_jwk(found[0], name), name, opts)


def validate(sk: StepKey) -> None:
    """jose.ValidateJWK: the alg must suit the key type for the key's use."""
    kty = sk.kty
    if sk.use == "sig":
        if not sk.alg:
            raise CLIError("flag '--alg' is required with the given key")
        allowed = SIG_ALGS.get(kty, set())
        if isinstance(sk.key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
            allowed = {_EC_SIG_ALG.get(sk.key.curve.name, "")}
            what = f"kty 'EC' and crv '{_EC_CRV.get(sk.key.curve.name, sk.key.curve.name)}'"
        elif kty == "OKP":
            what = "kty 'OKP' and crv 'Ed25519'"
        else:
            what = f"kty '{kty}'"
        if sk.alg not in allowed:
            raise CLIError(f"alg '{sk.alg}' is not compatible with {what}")
    elif sk.use == "enc":
        if kty == "OKP":
            raise CLIError("key Ed25519 cannot be used for encryption")
        if sk.alg not in ENC_ALGS[kty]:
            raise CLIError(f"alg '{sk.alg}' is not compatible with kty '{kty}'")
