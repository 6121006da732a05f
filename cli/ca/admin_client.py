"""The client side of step-ca's administration API: every request carries a fresh x5c admin
token (`Authorization: <token>`, `iss` step-admin-client/1.0, `aud` the request's URL) signed
by an admin certificate.

The certificate is `--admin-cert/--admin-key`, or, as step does without them, one obtained on
the fly: a short-lived certificate for `--admin-subject` (default `step`, the super-admin
`step ca init --remote-management` creates) from the JWK provisioner `--admin-provisioner`,
its key opened with `--password-file` (or a prompt).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from cli.ca.certfiles import CertPair
from cli.ca.client import CAClient
from cli.ca.flows import choose_provisioner
from cli.ca.issue import make_csr
from cli.ca.tokens import DEFAULT_VALIDITY, audience, decrypt_provisioner_key, sign_token
from cli.ca.x5c_flow import check_credential, load_credential, x5c_token
from cli.common import CLIError

ADMIN_ISSUER = "step-admin-client/1.0"
DEFAULT_SUBJECT = "step"


@dataclass(frozen=True)
class AdminOptions:
    """The admin flags step's admin commands share."""

    cert: Path | None = None
    key: Path | None = None
    provisioner: str | None = None
    subject: str | None = None
    password_file: Path | None = None


def _subject_of(leaf: x509.Certificate) -> str:
    cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""


def admin_credential(client: CAClient, opts: AdminOptions) -> tuple[CertPair, str]:
    """The admin certificate and key, and the subject the tokens carry."""
    if opts.cert or opts.key:
        if not (opts.cert and opts.key):
            raise CLIError("flags '--admin-cert' and '--admin-key' must be given together")
        pair = load_credential(opts.cert, opts.key, opts.password_file)
        check_credential(pair)
        return pair, opts.subject or _subject_of(pair.leaf)
    subject = opts.subject or DEFAULT_SUBJECT
    prov = choose_provisioner(client.provisioners(), opts.provisioner, None, "JWK")
    pk = decrypt_provisioner_key(client, prov, opts.password_file)
    now = datetime.now(UTC).replace(microsecond=0)
    ott = sign_token(
        pk,
        subject=subject,
        aud=audience(client.ca_url, "/1.0/sign"),
        sans=[subject],
        root_fingerprint=None,
        not_before=now,
        expires=now + DEFAULT_VALIDITY,
    )
    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr(subject, [subject], key).public_bytes(Encoding.PEM).decode()
    not_after = (now + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resp = client.sign(csr, ott, "", not_after)
    try:
        chain = [
            x509.load_pem_x509_certificate(str(c).encode())
            for c in resp.get("certChain") or [resp["crt"], resp["ca"]]
        ]
    except (KeyError, ValueError):
        raise CLIError("error parsing the admin certificate sent by the CA") from None
    return CertPair(chain, key), subject


class AdminClient:
    """Admin API requests to one CA, each with its own single-use token."""

    def __init__(self, client: CAClient, opts: AdminOptions) -> None:
        self.client = client
        self.pair, self.subject = admin_credential(client, opts)

    def _token(self, path: str) -> str:
        now = datetime.now(UTC)
        return x5c_token(
            self.pair,
            issuer=ADMIN_ISSUER,
            audience=audience(self.client.ca_url, path),
            subject=self.subject,
            sans=None,
            not_before=now,
            expires=now + DEFAULT_VALIDITY,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A JSON request under /admin; error answers become one-line CLIErrors."""
        headers = {"Authorization": self._token(path)}
        return self.client.json(method, path, headers=headers, **kwargs)

    def eab_path(self, provisioner: str, *rest: str) -> str:
        parts = [quote(p, safe="") for p in (provisioner, *rest)]
        return "/admin/acme/eab/" + "/".join(parts)


def not_found_hint(exc: CLIError) -> CLIError:
    """A CA without the admin API answers its routes 404: say what to enable."""
    if str(exc).startswith("The requested resource could not be found"):
        return CLIError(
            "the CA does not serve the administration API: set 'authority.enableAdmin' to "
            "true in its ca.json"
        )
    return exc
