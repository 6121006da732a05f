"""ACME (RFC 8555): accounts, orders, authorizations, challenges, nonces, and which account
each ACME certificate (a row of x509_certs) belongs to.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "acme_accounts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("provisioner", sa.String(255), nullable=False),
        sa.Column("thumbprint", sa.String(64), nullable=False, unique=True),
        sa.Column("jwk", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
    )
    op.create_table(
        "acme_orders",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("provisioner", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("identifiers", sa.Text, nullable=False),
        sa.Column("authz_ids", sa.Text, nullable=False),
        sa.Column("not_before", _WHEN, nullable=True),
        sa.Column("not_after", _WHEN, nullable=True),
        sa.Column("expires", _WHEN, nullable=False),
        sa.Column("serial", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
    )
    op.create_index("ix_acme_orders_account_id", "acme_orders", ["account_id"])
    op.create_table(
        "acme_authzs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.Column("wildcard", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires", _WHEN, nullable=False),
    )
    op.create_table(
        "acme_challenges",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("authz_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("validated", _WHEN, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_acme_challenges_authz_id", "acme_challenges", ["authz_id"])
    op.create_table(
        "acme_nonces",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("issued_at", _WHEN, nullable=False),
    )
    op.create_index("ix_acme_nonces_issued_at", "acme_nonces", ["issued_at"])
    op.create_table(
        "acme_certs",
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "acme_certs", "acme_nonces", "acme_challenges", "acme_authzs", "acme_orders",
        "acme_accounts",
    ):  # fmt: skip
        op.drop_table(table)
