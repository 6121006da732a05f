"""Assembling an authority from ca.json: certificates, the issuing key, provisioners, database.

The loading (files, a key store that may fork for an HSM, the database and its schema's
revision) is here, so that `Authority` itself is a plain object made of its parts and tests or
a reload can build one from parts of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from appliance.config import CAConfig
from appliance.db.engine import database_url, migrate, open_engine
from appliance.db.repository import Repository
from appliance.db.schema import SchemaError, require_current
from appliance.ocsp import OCSPResponder
from appliance.signer import IssuerSigner
from appliance.ssh_keys import SSHKeys
from keystores import KeyStoreError
from pki.certs import parse_certificates
from pki.steppath import resolve
from provisioners.registry import ProvisionerRegistry


class AuthorityError(RuntimeError):
    """The CA cannot start: a missing file, a wrong password, a bad config."""


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (or one DER certificate)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuthorityError(f"error reading {path}: {exc.strerror}") from None
    try:
        return parse_certificates(data)
    except ValueError:
        raise AuthorityError(f"error parsing {path}: not a certificate") from None


@dataclass
class AuthorityParts:
    """What an authority is made of."""

    config: CAConfig
    roots: list[x509.Certificate]
    federated_roots: list[x509.Certificate]
    intermediates: list[x509.Certificate]
    issuer_signer: IssuerSigner
    registry: ProvisionerRegistry
    repository: Repository
    ocsp: OCSPResponder
    ssh_keys: SSHKeys = field(default_factory=SSHKeys)
    """The `ssh` block's CA keys, opened at start so a wrong password stops the CA."""


def assemble(
    config: CAConfig, password: bytes | None = None, *, migrate_schema: bool = False
) -> AuthorityParts:
    """The parts ca.json describes; AuthorityError names what could not be loaded.

    The server passes `migrate_schema=False`: a schema other than this build's head is then
    refused with the command to run (`step-ca db upgrade`), and nothing is created or
    altered. True migrates first: for tests and tools that build an authority in-process.
    """
    roots = [c for p in config.roots for c in load_certificates(p)]
    federated = [c for p in config.federated_roots for c in load_certificates(p)]
    intermediates = load_certificates(config.crt)
    if password is None and config.password:
        password = config.password.encode()
    issuer_signer = IssuerSigner(
        config.kms.as_json() if config.kms else None,
        config.key,
        intermediates[0],
        password,
        config.base_dir,
    )
    try:
        issuer_signer.check()
    except KeyStoreError as exc:
        raise AuthorityError(str(exc)) from None
    registry = ProvisionerRegistry(config.provisioners, config.claims)
    if not migrate_schema:
        try:
            require_current(config)
        except SchemaError as exc:
            raise AuthorityError(str(exc)) from None
    engine = open_engine(database_url(config.db.as_json() if config.db else None, config.base_dir))
    if migrate_schema:
        migrate(engine)
    repository = Repository(engine)
    ocsp = ocsp_responder(config, intermediates[0], issuer_signer, repository, password)
    try:
        ssh_keys = SSHKeys.load(config, password)
    except KeyStoreError as exc:
        raise AuthorityError(f"ssh keys: {exc}") from None
    return AuthorityParts(
        config, roots, federated, intermediates, issuer_signer, registry, repository, ocsp,
        ssh_keys,
    )


def ocsp_responder(
    config: CAConfig,
    issuer: x509.Certificate,
    issuer_signer: IssuerSigner,
    repository: Repository,
    password: bytes | None,
) -> OCSPResponder:
    """The intermediate answers OCSP, or a delegated OCSP signer when configured."""
    if not config.crl.ocsp_crt:
        return OCSPResponder(issuer, issuer_signer.get, repository)
    delegate = load_certificates(resolve(config.crl.ocsp_crt, config.base_dir))[0]
    try:
        delegate.verify_directly_issued_by(issuer)
        eku = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        raise AuthorityError(
            f"{config.crl.ocsp_crt} must be issued by the intermediate, "
            "with the OCSPSigning EKU"
        ) from None
    if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        raise AuthorityError(f"{config.crl.ocsp_crt} lacks the OCSPSigning EKU")
    signer = IssuerSigner(None, config.crl.ocsp_key, delegate, password, config.base_dir)
    try:
        signer.check()
    except KeyStoreError as exc:
        raise AuthorityError(str(exc)) from None
    return OCSPResponder(issuer, signer.get, repository, delegate)
