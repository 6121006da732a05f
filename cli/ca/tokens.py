"""One-time tokens for the JWK provisioner, made the way `step ca token` makes them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt

from cli.ca import ui
from cli.ca.client import CAClient
from cli.ca.flows import TokenRequest
from cli.common import CLIError, prompt_password, read_password_file
from pki.durations import parse_time_or_duration
from pki.jose import JOSEError, key_from_jwk
from pki.jwe import decrypt_jwk

DEFAULT_VALIDITY = timedelta(minutes=5)
MIN_VALIDITY = timedelta(seconds=10)
MAX_VALIDITY = timedelta(hours=1)
MAX_DELAY = timedelta(minutes=30)
MAX_DECRYPT_TRIES = 3


def audience(ca_url: str, path: str) -> str:
    """The CA URL with its path replaced, scheme forced to https."""
    parts = urlsplit(ca_url if "://" in ca_url else "https://" + ca_url)
    return urlunsplit(("https", parts.netloc, path, "", ""))


def token_window(not_before: str | None, not_after: str | None) -> tuple[datetime, datetime]:
    """The token's nbf/exp from `--not-before/--not-after`, within step's client-side bounds."""
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        nb_raw = parse_time_or_duration(not_before or "", now)
        na_raw = parse_time_or_duration(not_after or "", now)
    except ValueError:
        bad = "--not-before" if not_before and not _parses(not_before, now) else "--not-after"
        raise CLIError(
            f"invalid value '{not_before if bad == '--not-before' else not_after}' for flag '{bad}'"
        ) from None
    nbf = now if nb_raw is None else now + nb_raw if isinstance(nb_raw, timedelta) else nb_raw
    if na_raw is None:
        exp = nbf + DEFAULT_VALIDITY
    elif isinstance(na_raw, timedelta):
        exp = now + na_raw
    else:
        exp = na_raw
    if exp <= nbf:
        raise CLIError(f"nbf < exp: nbf={nbf}, exp={exp}")
    if nbf - now > MAX_DELAY:
        raise CLIError(
            "requested validity delay is too long: 'requested validity delay'="
            f"{nbf - now}, 'max validity delay'={MAX_DELAY}"
        )
    validity = exp - nbf
    if validity < MIN_VALIDITY:
        raise CLIError(
            "requested token validity is too short: 'requested token validity'="
            f"{validity}, 'minimum token validity'={MIN_VALIDITY}"
        )
    if validity > MAX_VALIDITY:
        raise CLIError(
            "requested token validity is too long: 'requested token validity'="
            f"{validity}, 'maximum token validity'={MAX_VALIDITY}"
        )
    return nbf, exp


def _parses(value: str, now: datetime) -> bool:
    try:
        parse_time_or_duration(value, now)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ProvisionerKey:
    """A JWK provisioner's name, key id and decrypted private key."""

    name: str
    kid: str
    key: Any
    alg: str


def decrypt_provisioner_key(
    client: CAClient, prov: dict[str, Any], password_file: Path | None
) -> ProvisionerKey:
    """Fetch the escrowed key and open it with the password (file, or up to 3 prompts)."""
    kid = str((prov.get("key") or {}).get("kid", ""))
    name = str(prov.get("name", ""))
    ui.selected("Provisioner", f"{name} (JWK) [kid: {kid}]")
    jwe = client.encrypted_key(kid)
    tries = 1 if password_file else MAX_DECRYPT_TRIES
    for attempt in range(tries):
        password = (
            read_password_file(password_file)
            if password_file
            else prompt_password("Please enter the password to decrypt the provisioner key")
        )
        try:
            jwk = decrypt_jwk(jwe, password)
            break
        except JOSEError:
            if attempt == tries - 1:
                raise CLIError("failed to decrypt JWE: invalid password") from None
    key = key_from_jwk(jwk)
    alg = str(jwk.get("alg") or (prov.get("key") or {}).get("alg") or "ES256")
    return ProvisionerKey(name=name, kid=kid, key=key, alg=alg)


def sign_token(
    pk: ProvisionerKey,
    *,
    subject: str,
    aud: str,
    sans: list[str] | None,
    root_fingerprint: str | None,
    not_before: datetime,
    expires: datetime,
    extra: dict[str, Any] | None = None,
) -> str:
    """A compact JWS with the claims step puts in a JWK token."""
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "aud": aud,
        "exp": int(expires.timestamp()),
        "iat": now,
        "iss": pk.name,
        "jti": secrets.token_hex(32),
        "nbf": int(not_before.timestamp()),
        "sub": subject,
    }
    if sans is not None:
        claims["sans"] = sans
    if root_fingerprint:
        claims["sha"] = root_fingerprint
    claims.update(extra or {})
    return jwt.encode(claims, pk.key, algorithm=pk.alg, headers={"kid": pk.kid, "typ": "JWT"})


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token the user passed with `--token` (the CA checks the signature)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise CLIError(f"error parsing token: {exc}") from None
    return dict(claims)


def jwk_flow(req: TokenRequest, provisioner: dict[str, Any]) -> str:
    """The JWK flow: decrypt the escrowed key with the password, sign the token."""
    pk = decrypt_provisioner_key(req.client, provisioner, req.password_file)
    # An SSH token (`step ssh certificate`, `step ca token --ssh`) carries no `sans`, but
    # `step.ssh` = {certType, keyID, principals, validAfter, validBefore}, as step's does.
    ssh = req.options.get("ssh")
    return sign_token(
        pk,
        subject=req.subject,
        aud=req.audience,
        sans=None if ssh else req.sans or [req.subject],
        root_fingerprint=req.root_fingerprint,
        not_before=req.not_before,
        expires=req.expires,
        extra={"step": {"ssh": ssh}} if ssh else None,
    )
