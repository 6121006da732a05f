"""Tables of the CA's database (SQLAlchemy Core: the signing hot path avoids the ORM)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

x509_certs = Table(
    "x509_certs",
    metadata,
    Column("serial", String(64), primary_key=True, comment="decimal serial number"),
    Column("der", LargeBinary, nullable=False),
    Column("provisioner", String(255), nullable=False, default=""),
    Column("subject", String(1024), nullable=False, default=""),
    Column("not_before", DateTime(timezone=True), nullable=True, comment="always set by the CA"),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("token_id", String(255), nullable=True, comment="burned token's id; NULL: none known"),
)
# Keyset paging orders (migration 0003 says why these three).
Index("ix_x509_certs_expiry", x509_certs.c.not_after, x509_certs.c.serial)
Index("ix_x509_certs_issued", x509_certs.c.issued_at, x509_certs.c.serial)
Index(
    "ix_x509_certs_provisioner",
    x509_certs.c.provisioner,
    x509_certs.c.issued_at,
    x509_certs.c.serial,
)

# Byte order on PostgreSQL too, so that a glob's literal prefix is an index range.
_NAME = String(1024).with_variant(String(1024, collation="C"), "postgresql")

x509_cert_names = Table(
    "x509_cert_names",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("name", _NAME, primary_key=True, comment="subject CN or SAN, lowercase"),
    Column("rname", _NAME, nullable=False, comment="name reversed, for suffix globs"),
)
Index("ix_x509_cert_names_name", x509_cert_names.c.name, x509_cert_names.c.serial)
Index("ix_x509_cert_names_rname", x509_cert_names.c.rname, x509_cert_names.c.serial)

used_tokens = Table(
    "used_tokens",
    metadata,
    Column("id", String(255), primary_key=True, comment="jti, nonce or SHA-256 of the token"),
    Column("provisioner", String(255), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

revoked_x509_certs = Table(
    "revoked_x509_certs",
    metadata,
    Column("serial", String(64), primary_key=True, comment="decimal serial number"),
    Column("reason_code", Integer, nullable=False),
    Column("reason", String(1024), nullable=False, default=""),
    Column("revoked_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("provisioner", String(255), nullable=False, default=""),
    Column("token_id", String(255), nullable=False, default=""),
    Column("mtls", Boolean, nullable=False, default=False),
)

crls = Table(
    "crls",
    metadata,
    Column("id", Integer, primary_key=True, comment="always 1: the current CRL"),
    Column("number", Integer, nullable=False),
    Column("der", LargeBinary, nullable=False),
    Column("this_update", DateTime(timezone=True), nullable=False),
    Column("next_update", DateTime(timezone=True), nullable=False),
)

# Beyond step-ca: the tamper-evident audit log (appliance/db/audit.py, docs/audit.md).
audit = Table(
    "audit",
    metadata,
    # BIGINT on PostgreSQL; INTEGER on SQLite makes it the rowid (already 64-bit).
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
        comment="1, 2, 3...: the chain's order",
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(64), nullable=False, comment="e.g. certificate.sign, config.reload"),
    Column("actor", String(1024), nullable=False),
    Column("request_id", String(128), nullable=False, default=""),
    Column("subject", String(1024), nullable=False, default=""),
    Column("serial", String(64), nullable=False, default="", comment="decimal serial number"),
    Column("details", Text, nullable=False, comment="canonical JSON"),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, comment="SHA-256 hex, see appliance/db/audit.py"),
)
Index("ix_audit_at", audit.c.at)

# SSH certificates (appliance/ssh_store.py): step-ca's ssh_certs and its host/user principal
# buckets, as one row per certificate and one per principal.
ssh_certs = Table(
    "ssh_certs",
    metadata,
    Column("serial", String(20), primary_key=True, comment="decimal uint64 serial"),
    Column("cert_type", String(8), nullable=False, comment="user or host"),
    Column("key_id", String(1024), nullable=False, default=""),
    Column("cert", LargeBinary, nullable=False, comment="SSH wire format"),
    Column("provisioner", String(255), nullable=False, default=""),
    Column("valid_after", DateTime(timezone=True), nullable=False),
    Column("valid_before", DateTime(timezone=True), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("token_id", String(255), nullable=True),
)

ssh_principals = Table(
    "ssh_principals",
    metadata,
    Column("serial", String(20), primary_key=True),
    Column("principal", String(1024), primary_key=True, comment="lowercase"),
    Column("cert_type", String(8), nullable=False),
    Column("valid_before", DateTime(timezone=True), nullable=False),
)
Index(
    "ix_ssh_principals_type",
    ssh_principals.c.cert_type,
    ssh_principals.c.principal,
    ssh_principals.c.valid_before,
)

revoked_ssh_certs = Table(
    "revoked_ssh_certs",
    metadata,
    Column("serial", String(20), primary_key=True, comment="decimal uint64 serial"),
    Column("reason_code", Integer, nullable=False),
    Column("reason", String(1024), nullable=False, default=""),
    Column("revoked_at", DateTime(timezone=True), nullable=False),
    Column("provisioner", String(255), nullable=False, default=""),
    Column("token_id", String(255), nullable=False, default=""),
)

# --- ACME (RFC 8555; migration 0006). JSON lists are Text: identical on SQLite and PostgreSQL.

acme_accounts = Table(
    "acme_accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("provisioner", String(255), nullable=False),
    Column("thumbprint", String(64), nullable=False, unique=True, comment="RFC 7638, base64url"),
    Column("jwk", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("contact", Text, nullable=False, default="[]"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

acme_orders = Table(
    "acme_orders",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False, index=True),
    Column("provisioner", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("identifiers", Text, nullable=False),
    Column("authz_ids", Text, nullable=False),
    Column("not_before", DateTime(timezone=True), nullable=True),
    Column("not_after", DateTime(timezone=True), nullable=True),
    Column("expires", DateTime(timezone=True), nullable=False),
    Column("serial", String(64), nullable=True, comment="the certificate, once issued"),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

acme_authzs = Table(
    "acme_authzs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False, comment="dns, ip or permanent-identifier"),
    Column("value", String(1024), nullable=False),
    Column("wildcard", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
)

acme_challenges = Table(
    "acme_challenges",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("authz_id", String(64), nullable=False, index=True),
    Column("kind", String(16), nullable=False, comment="http-01, ..."),
    Column("token", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("validated", DateTime(timezone=True), nullable=True),
    Column("error", Text, nullable=True),
)

acme_nonces = Table(
    "acme_nonces",
    metadata,
    Column("nonce", String(64), primary_key=True, comment="issued; deleted when used"),
    Column("issued_at", DateTime(timezone=True), nullable=False, index=True),
)

acme_certs = Table(
    "acme_certs",
    metadata,
    Column("serial", String(64), primary_key=True, comment="x509_certs.serial"),
    Column("account_id", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
)
