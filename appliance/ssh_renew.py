"""`/ssh/renew`, `/ssh/rekey` and `/ssh/revoke`: SSHPOP tokens (a JWT signed by the key of a
current SSH certificate) and, for revocation, JWK tokens too; step-ca's RenewSSH, RekeySSH
and passive SSH revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.serialization import (
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
)

from appliance.db.audit import AuditEvent
from appliance.db.issuance import UsedToken
from appliance.ssh import SSHAuthority, check_key, new_serial
from appliance.ssh_keys import SSHPublicKey
from pki.durations import format_duration
from pki.errors import CAError, ErrorKind, bad_request, forbidden, unauthorized
from provisioners.audience import Method
from provisioners.base import Token
from provisioners.registry import parse_token
from provisioners.schema import ProvisionerSchema
from provisioners.sshpop import (
    FOREVER,
    SSHPOPGrant,
    authorize_sshpop,
    require_host,
    ssh_audiences,
)


@dataclass(frozen=True)
class SSHRevokeRequest:
    """A validated `/ssh/revoke` body."""

    serial: int
    ott: str
    reason_code: int
    reason: str
    passive: bool


def _fragment(token: Token) -> str:
    aud = token.claims.get("aud")
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    for value in values:
        if isinstance(value, str) and "#sshpop/" in value:
            return value.partition("#sshpop/")[2]
    return ""


def _sshpop_provisioner(ssh: SSHAuthority, token: Token) -> ProvisionerSchema | None:
    """The SSHPOP provisioner a token names in its audience fragment (`#sshpop/<name>`)."""
    name = _fragment(token)
    for prov in ssh.authority.config.provisioners:
        if prov.type.upper() == "SSHPOP" and prov.name == name:
            return prov
    return None


def _sshpop(ssh: SSHAuthority, raw: str, path: str, *, check_validity: bool) -> SSHPOPGrant:
    token = parse_token(raw)
    prov = _sshpop_provisioner(ssh, token)
    if prov is None or "sshpop" not in token.header:
        raise unauthorized("authority.authorizeToken: provisioner not found or invalid audience")
    ssh.authority._check_issued_at(token.claims.get("iat"))
    config = ssh.authority.config
    grant = authorize_sshpop(
        token,
        prov.name,
        config.claims.merged(prov.claims),
        ssh.keys.verification_keys(),
        ssh_audiences(config.dns_names, path, prov.name),
        check_validity=check_validity,
    )
    if ssh.store.is_revoked(grant.certificate.serial):
        raise unauthorized("sshpop.authorizeToken; sshpop certificate is revoked")
    return grant


def _renewal_checks(grant: SSHPOPGrant) -> None:
    """step-ca's DefaultAuthorizeSSHRenew."""
    cert, now = grant.certificate, int(datetime.now(UTC).timestamp())
    if grant.claims.disable_renewal:
        raise unauthorized(f"renew is disabled for provisioner '{grant.provisioner_name}'")
    if now < cert.valid_after:
        raise unauthorized("certificate is not yet valid")
    if (
        cert.valid_before != FOREVER
        and now >= cert.valid_before
        and not grant.claims.allow_renewal_after_expiry
    ):
        raise unauthorized("certificate has expired")


def _reissue(ssh: SSHAuthority, grant: SSHPOPGrant, public_key: Any, kind: str) -> SSHCertificate:
    """The old certificate's type, key ID, principals, options and lifetime from now
    (backdated), on `public_key`; the token burned with the new certificate's record."""
    old = grant.certificate
    if old.valid_after == 0 or old.valid_before == 0:
        raise bad_request("cannot renew a certificate without validity period")
    backdate = int(ssh.authority.config.backdate.total_seconds())
    lifetime = old.valid_before - old.valid_after
    now = int(datetime.now(UTC).timestamp())
    after, before = now - backdate, now + lifetime - backdate
    cert_type = "user" if old.type == SSHCertificateType.USER else "host"
    if kind == "ssh.rekey":  # RekeySSH runs the provisioner's validity validator
        claims = grant.claims
        low = claims.min_user_ssh if cert_type == "user" else claims.min_host_ssh
        high = claims.max_user_ssh if cert_type == "user" else claims.max_host_ssh
        duration = timedelta(seconds=before - after)
        if duration < low or duration > high + timedelta(seconds=backdate):
            raise forbidden(f"requested duration of {format_duration(duration)} is not allowed")
    signer = ssh.keys.signer(cert_type)
    builder = (
        SSHCertificateBuilder()
        .public_key(public_key)
        .type(old.type)
        .key_id(old.key_id)
        .valid_principals(list(old.valid_principals))
        .valid_after(after)
        .valid_before(before)
    )
    for name, value in old.critical_options.items():
        builder = builder.add_critical_option(name, value)
    for name, value in old.extensions.items():
        builder = builder.add_extension(name, value)
    return ssh.store.issue(
        UsedToken(grant.token_id, grant.provisioner_name, grant.token_expires),
        grant.provisioner_name,
        lambda: builder.serial(new_serial()).sign(signer),
        AuditEvent(
            kind,
            f"{grant.provisioner_name}:{old.key_id.decode(errors='replace')}",
            details={"provisioner": grant.provisioner_name, "from_serial": str(old.serial)},
        ),
    )


def renew(ssh: SSHAuthority, ott: str) -> SSHCertificate:
    """POST /ssh/renew: a host certificate renewed by its own SSHPOP token."""
    grant = _sshpop(ssh, ott, "ssh/renew", check_validity=False)
    require_host(grant.certificate)
    _renewal_checks(grant)
    return _reissue(ssh, grant, grant.certificate.public_key(), "ssh.renew")


def rekey(ssh: SSHAuthority, ott: str, public_key: SSHPublicKey) -> SSHCertificate:
    """POST /ssh/rekey: a host certificate's identity on a new key."""
    grant = _sshpop(ssh, ott, "ssh/rekey", check_validity=True)
    require_host(grant.certificate)
    check_key(public_key)
    return _reissue(ssh, grant, public_key, "ssh.rekey")


def revoke(ssh: SSHAuthority, req: SSHRevokeRequest) -> str:
    """POST /ssh/revoke (passive only): by an SSHPOP token for the certificate itself, or a
    JWK token whose subject is the serial. Returns the provisioner's name."""
    if not req.passive:
        raise CAError(
            ErrorKind.NOT_IMPLEMENTED,
            "non-passive revocation not implemented",
            public="non-passive revocation not implemented",
        )
    token = parse_token(req.ott)
    if "sshpop" in token.header:
        grant = _sshpop(ssh, req.ott, "ssh/revoke", check_validity=True)
        if grant.subject != str(grant.certificate.serial):
            raise bad_request(
                "sshpop token subject must be equivalent to sshpop certificate serial number"
            )
        name, subject = grant.provisioner_name, grant.subject
        used = UsedToken(grant.token_id, name, grant.token_expires)
    else:
        authority = ssh.authority
        prov = authority.registry.for_token(token, ssh.all_audiences)
        authority._check_issued_at(token.claims.get("iat"))
        revoke_audiences = ssh_audiences(authority.config.dns_names, "ssh/revoke")
        options = prov.authorize(token, Method.REVOKE, revoke_audiences)
        name, subject = prov.name, options.subject
        used = UsedToken(options.token_id, name, options.token_expires)
    if subject != str(req.serial):
        raise forbidden(
            f'request serial number "{req.serial}" and token subject "{subject}" do not match'
        )
    ssh.store.revoke(
        req.serial,
        req.reason_code,
        req.reason,
        name,
        used,
        AuditEvent("ssh.revoke", f"{name}:{subject}", details={"provisioner": name}),
    )
    return name
