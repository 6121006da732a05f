"""Tables of the CA's database (SQLAlchemy Core: the signing hot path avoids the ORM)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

x509_certs = Table(
    "x509_certs",
    metadata,
    Column("serial", String(64), primary_key=True, comment="decimal serial number"),
    Column("der", LargeBinary, nullable=False),
    Column("provisioner", String(255), nullable=False, default=""),
    Column("subject", String(1024), nullable=False, default=""),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
)
Index("ix_x509_certs_not_after", x509_certs.c.not_after)

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
