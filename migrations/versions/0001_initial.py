"""Issued certificates and used tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "x509_certs",
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("provisioner", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_x509_certs_not_after", "x509_certs", ["not_after"])
    op.create_table(
        "used_tokens",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("provisioner", sa.String(255), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("used_tokens")
    op.drop_index("ix_x509_certs_not_after", table_name="x509_certs")
    op.drop_table("x509_certs")
