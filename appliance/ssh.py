"""The SSH CA: step-ca's SignSSH (user and host certificates from one-time tokens), the
add-user certificate, and the host lookups. Certificates are built by cryptography's
SSHCertificateBuilder and signed by the key-store signer of `ssh.userKey`/`ssh.hostKey`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
)

from appliance.authority import Authority
from appliance.db.audit import AuditEvent
from appliance.db.issuance import UsedToken
from appliance.ssh_keys import SSHKeys, SSHPublicKey, ssh_public_text
from appliance.ssh_store import SSHStore
from appliance.ssh_templates import Output, SSHKeyValue, render_config
from pki.durations import format_duration
from pki.errors import CAError, ErrorKind, bad_request, forbidden
from provisioners.audience import Method, audiences
from provisioners.registry import parse_token
from provisioners.ssh import (
    HOST,
    REQUEST_CERT_TYPE,
    USER,
    USER_EXTENSIONS,
    SSHOptions,
    SSHSignGrant,
    resolve,
)
from provisioners.sshpop import ssh_audiences

log = logging.getLogger(__name__)

DEFAULT_ADD_USER_PRINCIPAL = "provisioner"
DEFAULT_ADD_USER_COMMAND = "sudo useradd -m <principal>; nc -q0 localhost 22"


@dataclass(frozen=True)
class SSHSignRequest:
    """A validated `/ssh/sign` body."""

    public_key: SSHPublicKey
    ott: str
    options: SSHOptions
    add_user_key: SSHPublicKey | None = None


@dataclass(frozen=True)
class SSHSignResult:
    certificate: SSHCertificate
    add_user: SSHCertificate | None
    provisioner: str


def new_serial() -> int:
    """A random non-zero uint64, as step-ca's sshutil draws it."""
    while True:
        value = secrets.randbits(64)
        if value:
            return value


class SSHAuthority:
    """The SSH half of one CA: its keys, the X.509 authority's provisioners and database."""

    def __init__(self, authority: Authority, keys: SSHKeys) -> None:
        self.authority = authority
        self.keys = keys
        self.store = SSHStore(authority.repository.engine)
        config = authority.config
        self._audiences = audiences(config.dns_names, Method.SIGN)
        all_methods = {a for m in Method for a in audiences(config.dns_names, m)}
        all_methods.update(ssh_audiences(config.dns_names, "ssh/revoke"))
        self.all_audiences = sorted(all_methods)
        ssh = config.ssh
        self.add_user_principal = (ssh.addUserPrincipal if ssh else None) or (
            DEFAULT_ADD_USER_PRINCIPAL
        )
        self.add_user_command = (ssh.addUserCommand if ssh else None) or DEFAULT_ADD_USER_COMMAND

    @classmethod
    def open(cls, authority: Authority, password: bytes | None = None) -> SSHAuthority:
        """The SSH CA of `authority`, its key files opened now (KeyStoreError if they fail)."""
        return cls(authority, SSHKeys.load(authority.config, password))

    # --- signing ------------------------------------------------------------------------

    def _authorize(self, ott: str, cert_type: str = "") -> SSHSignGrant:
        token = parse_token(ott)
        prov = self.authority.registry.for_token(token, self.all_audiences)
        self.authority._check_issued_at(token.claims.get("iat"))  # X.509's rule, shared
        asked = REQUEST_CERT_TYPE.set(cert_type)
        try:
            return prov.authorize_ssh_sign(token, self._audiences)
        finally:
            REQUEST_CERT_TYPE.reset(asked)

    def _window(self, req: SSHOptions, grant: SSHSignGrant, now: datetime) -> tuple[int, int]:
        """step-ca's order: the request's times, the token's (which win), then the default
        duration from a backdated now; then the validity validator."""
        after, before = resolve(req.valid_after, now), resolve(req.valid_before, now)
        if after and before and after > before:
            raise bad_request("ssh certificate valid after cannot be greater than valid before")
        token = grant.token_options
        if token.valid_after is not None:
            after = resolve(token.valid_after, now)
        if token.valid_before is not None:
            before = resolve(token.valid_before, now)
        claims = grant.claims
        user = grant.cert_type == USER
        default = claims.default_user_ssh if user else claims.default_host_ssh
        backdate = int(self.authority.config.backdate.total_seconds())
        backdated = 0
        if after == 0:
            backdated = backdate
            after = int(now.timestamp())
        if grant.not_after_limit is not None:
            before = _limit(after, before, default, grant.not_after_limit)
        if before == 0:
            before = after + int(default.total_seconds())
        if after > backdated:
            after -= backdated
        if before < int(now.timestamp()):
            raise bad_request("ssh certificate validBefore cannot be in the past")
        if before < after:
            raise bad_request("ssh certificate validBefore cannot be before validAfter")
        low = claims.min_user_ssh if user else claims.min_host_ssh
        high = (claims.max_user_ssh if user else claims.max_host_ssh) + timedelta(seconds=backdate)
        duration = timedelta(seconds=before - after)
        if duration < low:
            raise forbidden(
                f"requested duration of {format_duration(duration)} is less than minimum "
                f"accepted duration for selected provisioner of {format_duration(low)}"
            )
        if duration > high:
            raise forbidden(
                f"requested duration of {format_duration(duration)} is more than the "
                f"authorized maximum certificate duration of {format_duration(high)}"
            )
        return after, before

    def sign(self, req: SSHSignRequest) -> SSHSignResult:
        """POST /ssh/sign: authorise the token, check the request against it, sign, record
        (the token burned in the same transaction); then the add-user certificate."""
        now = datetime.now(UTC).replace(microsecond=0)
        req.options.validate()
        grant = self._authorize(req.ott, req.options.cert_type)
        req.options.check_grant(grant)
        if grant.request_principals and req.options.principals:
            grant = replace(grant, principals=req.options.principals)
        if grant.from_request:  # an OIDC admin: the request names the certificate
            opts = req.options
            grant = replace(
                grant, cert_type=opts.cert_type, key_id=opts.key_id, principals=opts.principals
            )
        if not self.keys.enabled:
            raise CAError(
                ErrorKind.NOT_IMPLEMENTED,
                f"authority.SignSSH: {grant.cert_type} certificate signing is not enabled",
            )
        check_key(req.public_key)
        after, before = self._window(req.options, grant, now)
        signer = self.keys.signer(grant.cert_type)  # 501 when that CA key is not configured
        prov = self.authority.registry.by_name(grant.provisioner_name)
        for rules in (self.authority.config.policy, prov.policy if prov else None):  # step-ca's
            if rules is not None:  # issuance policies, authority's first; PolicyError: 403
                rules.check_ssh(grant.cert_type == HOST, grant.principals)
        builder = (
            SSHCertificateBuilder()
            .public_key(req.public_key)
            .type(SSHCertificateType.USER if grant.cert_type == USER else SSHCertificateType.HOST)
            .key_id(grant.key_id.encode())
            .valid_principals([p.encode() for p in grant.principals])
            .valid_after(after)
            .valid_before(before)
        )
        if grant.cert_type == USER:
            for name in USER_EXTENSIONS:
                builder = builder.add_extension(name.encode(), b"")
        cert = self.store.issue(
            UsedToken(grant.token_id, grant.provisioner_name, grant.token_expires),
            grant.provisioner_name,
            lambda: builder.serial(new_serial()).sign(signer),
            AuditEvent(
                "ssh.sign",
                f"{grant.provisioner_name}:{grant.key_id}",
                details={
                    "provisioner": grant.provisioner_name,
                    "token_id": grant.token_id,
                    "cert_type": grant.cert_type,
                    "principals": list(grant.principals),
                },
            ),
        )
        log.debug("issued ssh %s certificate serial=%s", grant.cert_type, cert.serial)
        add_user = None
        if req.add_user_key is not None and _valid_for_add_user(cert):
            add_user = self.sign_add_user(req.add_user_key, cert, grant.provisioner_name)
        return SSHSignResult(cert, add_user, grant.provisioner_name)

    def sign_add_user(
        self, key: SSHPublicKey, subject: SSHCertificate, provisioner: str
    ) -> SSHCertificate:
        """step-ca's SignSSHAddUser: a certificate for the `provisioner` principal whose
        force-command creates the user's account, valid as long as `subject`."""
        check_key(key)
        signer = self.keys.signer(USER)
        principal = subject.valid_principals[0].decode()
        command = self.add_user_command.replace("<principal>", principal)
        builder = (
            SSHCertificateBuilder()
            .public_key(key)
            .type(SSHCertificateType.USER)
            .key_id(f"{principal}-{self.add_user_principal}".encode())
            .valid_principals([self.add_user_principal.encode()])
            .valid_after(subject.valid_after)
            .valid_before(subject.valid_before)
            .add_critical_option(b"force-command", command.encode())
        )
        return self.store.issue(
            None,
            provisioner,
            lambda: builder.serial(new_serial()).sign(signer),
            AuditEvent(
                "ssh.sign",
                f"{provisioner}:{principal}",
                details={"provisioner": provisioner, "add_user": True},
            ),
        )

    # --- public keys and hosts ----------------------------------------------------------

    def roots(self, *, federated: bool = False) -> dict[str, list[str]]:
        """`/ssh/roots` (own keys) or `/ssh/federation` (plus `ssh.keys`); 404 when none."""
        out = self.keys.roots(federated=federated)
        if not out:
            raise CAError(ErrorKind.NOT_FOUND, "no keys found", public="no keys found")
        return out

    def ssh_config(self, kind: str, data: dict[str, Any]) -> list[Output]:
        """`/ssh/config`: the user's or the host's templates rendered (step-ca's
        GetSSHConfig); 404 without SSH keys or templates."""
        if not self.keys.enabled:
            raise CAError(
                ErrorKind.NOT_FOUND,
                "getSSHConfig: ssh is not configured",
                public="ssh is not configured",
            )
        if kind not in (USER, HOST):
            raise bad_request(f"invalid certificate type '{kind}'")
        keys = self.keys

        def values(signer: Any, extra: list[Any]) -> tuple[Any, list[SSHKeyValue]]:
            own = SSHKeyValue(ssh_public_text(signer.public_key())) if signer else None
            return own, [SSHKeyValue(ssh_public_text(k)) for k in extra]

        host, host_fed = values(keys.host, keys.host_federated)
        user, user_fed = values(keys.user, keys.user_federated)
        step = {"SSH": {"HostKey": host, "UserKey": user, "HostFederatedKeys": host_fed,
                        "UserFederatedKeys": user_fed}}  # fmt: skip
        config = self.authority.config
        return render_config(config.templates, kind, data, step, config.base_dir)

    def check_host(self, cert_type: str, principal: str) -> bool:
        """`/ssh/check-host`: whether a host certificate was issued for `principal`."""
        if cert_type != HOST:
            raise bad_request(f"unsupported type {cert_type}")
        if not principal:
            raise bad_request("missing or empty principal")
        return self.store.is_host(principal)

    def hosts(self) -> list[str]:
        """`/ssh/hosts`: principals of the host certificates still valid."""
        return self.store.host_principals()


def _limit(after: int, before: int, default: timedelta, not_after: datetime) -> int:
    """step-ca's sshLimitDuration: no certificate outlives the credential (an X5C leaf)."""
    cap = int(not_after.timestamp())
    if after > cap:
        raise forbidden(
            f"provisioning credential expiration ({not_after}) is before requested "
            "certificate validAfter"
        )
    if before == 0:
        return min(after + int(default.total_seconds()), cap)
    if before > cap:
        raise forbidden(
            f"provisioning credential expiration ({not_after}) is before requested "
            "certificate validBefore"
        )
    return before


def check_key(public: SSHPublicKey) -> None:
    """step-ca's sshDefaultPublicKeyValidator: RSA keys of 2048 bits at least."""
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
        raise forbidden("ssh certificate key must be at least 2048 bits (256 bytes)")


def _valid_for_add_user(cert: SSHCertificate) -> bool:
    """step-ca's IsValidForAddUser: one principal, not root, a plain user name."""
    if cert.type != SSHCertificateType.USER or len(cert.valid_principals) != 1:
        return False
    name = cert.valid_principals[0].decode(errors="replace")
    return name != "root" and all(c.isalnum() or c in "._-" for c in name)
