"""SSH certificate options: what a request asks for, what a token allows, and step-ca's rules
for matching the two (provisioner.SignSSHOptions and its sshCertOptionsValidator)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pki.durations import parse_time_or_duration
from pki.errors import CAError, ErrorKind, bad_request, forbidden, unauthorized
from provisioners.claims import Claims

USER = "user"
HOST = "host"

#: The request's `certType` while its token is authorised (step-ca's NewContextWithCertType):
#: the GCP provisioner signs user or host certificates by it.
REQUEST_CERT_TYPE: ContextVar[str] = ContextVar("ssh_request_cert_type", default="")

# step-ca's sshutil.DefaultExtensions for user certificates; host certificates get none.
USER_EXTENSIONS = (
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
)


def _decoding(detail: str) -> CAError:
    """step-ca fails these while decoding the JSON body: its public message says so."""
    return CAError(ErrorKind.BAD_REQUEST, detail, public="error decoding json")


def _time(value: object, what: str) -> datetime | timedelta | None:
    """A TimeDuration: RFC 3339 time, Go duration (relative to now), or ""/null for unset."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _decoding(f"{what} is not a string")
    try:
        return parse_time_or_duration(value)
    except ValueError as exc:
        raise _decoding(f"{what}: {exc}") from None


def resolve(value: datetime | timedelta | None, now: datetime) -> int:
    """Unix seconds of a TimeDuration relative to `now` (0 when unset, as Go's zero time)."""
    if value is None:
        return 0
    when = now + value if isinstance(value, timedelta) else value
    return int(when.timestamp())


@dataclass(frozen=True)
class SSHOptions:
    """SignSSHOptions: the request body's fields or the token's `step.ssh` claim."""

    cert_type: str = ""
    key_id: str = ""
    principals: tuple[str, ...] = ()
    valid_after: datetime | timedelta | None = None
    valid_before: datetime | timedelta | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> SSHOptions:
        """Options from JSON (`where` names the source in the log); types checked."""
        cert_type = data.get("certType") or ""
        key_id = data.get("keyID") or ""
        principals = data.get("principals") or []
        if not isinstance(cert_type, str) or not isinstance(key_id, str):
            raise _decoding(f"{where}: certType or keyID is not a string")
        if not isinstance(principals, list) or not all(isinstance(p, str) for p in principals):
            raise _decoding(f"{where}: principals is not a list of strings")
        return cls(
            cert_type,
            key_id,
            tuple(principals),
            _time(data.get("validAfter"), f"{where} validAfter"),
            _time(data.get("validBefore"), f"{where} validBefore"),
        )

    def validate(self) -> None:
        """step-ca's SignSSHOptions.Validate."""
        if self.cert_type not in ("", USER, HOST):
            raise bad_request(f"certType '{self.cert_type}' is not valid")
        if any(p == "" for p in self.principals):
            raise bad_request("principals cannot contain empty values")

    def check_grant(self, grant: SSHSignGrant) -> None:
        """The request against the token's options, and its key ID against the subject;
        a grant that takes the request's names (OIDC admins) needs them all."""
        if grant.from_request:
            for missing, message in (
                (not self.cert_type, "ssh certificate certType cannot be empty"),
                (not self.key_id, "ssh certificate keyID cannot be empty"),
                (not self.principals, "ssh certificate principals cannot be empty"),
            ):
                if missing:
                    raise bad_request(message)
            return
        if grant.require_principals and not self.principals:
            raise bad_request("ssh certificate principals cannot be empty")
        self.check_against(grant.token_options)
        if grant.subject:
            self.check_against(SSHOptions(key_id=grant.subject))

    def check_against(self, want: SSHOptions) -> None:
        """The request (`self`) may only narrow what the token (`want`) says: step-ca's
        SignSSHOptions.match, 403 on a difference."""
        if want.cert_type and self.cert_type and want.cert_type != self.cert_type:
            raise forbidden(
                f"ssh certificate type does not match - got {self.cert_type}, want {want.cert_type}"
            )
        if want.principals and self.principals and not set(self.principals) <= set(want.principals):
            raise forbidden(
                f"ssh certificate principals does not match - got {_go_list(self.principals)}, "
                f"want {_go_list(want.principals)}"
            )
        if want.key_id and self.key_id and want.key_id != self.key_id:
            raise forbidden(
                f"ssh certificate key id does not match - got {self.key_id}, want {want.key_id}"
            )
        for name, got, expected in (
            ("validAfter", self.valid_after, want.valid_after),
            ("validBefore", self.valid_before, want.valid_before),
        ):
            if got is not None and expected is not None and got != expected:
                raise forbidden(f"ssh certificate {name} does not match")


def _go_list(items: tuple[str, ...]) -> str:
    return "[" + " ".join(items) + "]"


@dataclass(frozen=True)
class SSHSignGrant:
    """What an authorised SSH token allows: the certificate's type, key ID and principals
    (from the token, else its subject), the token's validity overrides, and the claims."""

    provisioner_name: str
    cert_type: str
    key_id: str
    principals: tuple[str, ...]
    token_options: SSHOptions
    subject: str
    claims: Claims
    token_id: str
    token_expires: datetime
    # OIDC admins: type, key ID and principals come from the request (step-ca's admin
    # template); everyone else gets the grant's.
    from_request: bool = False
    # Instance identities (step-ca's DefaultIIDTemplate): the request's principals when it
    # names any (limited by `token_options`), else `principals`; with custom names allowed a
    # request must name some.
    request_principals: bool = False
    require_principals: bool = False
    # X5C: the certificate may not outlive the presented one (step-ca's sshLimitDuration).
    not_after_limit: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def sanitize_principal(email: str) -> str:
    """step-ca's SanitizeSSHUserPrincipal: the e-mail's local part, lowercase, dots dropped,
    anything outside a-z, 0-9 and `-` as `_`."""
    local = email.rpartition("@")[0] if "@" in email else email
    out = []
    for ch in local.lower():
        if "a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-":
            out.append(ch)
        elif ch != ".":
            out.append("_")
    return "".join(out)


def oidc_principals(email: str) -> tuple[str, ...]:
    """step-ca's default OIDC identity: the sanitized local part, the raw local part and
    the e-mail, each once."""
    names = [sanitize_principal(email)]
    if "@" in email:
        names.append(email.rpartition("@")[0])
    names.append(email)
    return tuple(dict.fromkeys(n for n in names if n))


def ssh_claim(claims: dict[str, Any], kind: str) -> SSHOptions:
    """The token's `step.ssh` claim; a token without one is not an SSH token (401)."""
    step = claims.get("step")
    ssh = step.get("ssh") if isinstance(step, dict) else None
    if not isinstance(ssh, dict):
        raise unauthorized(
            f"{kind}.AuthorizeSSHSign; {kind} token must be an SSH provisioning token"
        )
    return SSHOptions.from_json(ssh, "token step.ssh")


def require_ssh_enabled(claims: Claims, kind: str, name: str) -> None:
    """step-ca refuses SSH tokens from a provisioner without `enableSSHCA`."""
    if not claims.enable_ssh_ca:
        raise unauthorized(
            f"{kind}.AuthorizeSSHSign; sshCA is disabled for {kind} provisioner '{name}'"
        )


def grant(
    provisioner: str,
    subject: str,
    options: SSHOptions,
    claims: Claims,
    token_id: str,
    token_expires: datetime,
) -> SSHSignGrant:
    """step-ca's JWK defaults: a user certificate, key ID and principal the subject, each
    replaced by what the token's `step.ssh` sets."""
    options.validate()
    return SSHSignGrant(
        provisioner_name=provisioner,
        cert_type=options.cert_type or USER,
        key_id=options.key_id or subject,
        principals=options.principals or (subject,),
        token_options=options,
        subject=subject,
        claims=claims,
        token_id=token_id,
        token_expires=token_expires,
    )
