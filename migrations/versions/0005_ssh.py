"""SSH certificates: one row per certificate, one per principal (host lookups, /ssh/hosts),
and the revoked ones.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ssh_certs",
        sa.Column("serial", sa.String(20), primary_key=True),
        sa.Column("cert_type", sa.String(8), nullable=False),
        sa.Column("key_id", sa.String(1024), nullable=False),
        sa.Column("cert", sa.LargeBinary, nullable=False),
        sa.Column("provisioner", sa.String(255), nullable=False),
        sa.Column("valid_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_id", sa.String(255), nullable=True),
    )
    op.create_table(
        "ssh_principals",
        sa.Column("serial", sa.String(20), primary_key=True),
        sa.Column("principal", sa.String(1024), primary_key=True),
        sa.Column("cert_type", sa.String(8), nullable=False),
        sa.Column("valid_before", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_ssh_principals_type", "ssh_principals", ["cert_type", "principal", "valid_before"]
    )
    op.create_table(
        "revoked_ssh_certs",
        sa.Column("serial", sa.String(20), primary_key=True),
        sa.Column("reason_code", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provisioner", sa.String(255), nullable=False),
        sa.Column("token_id", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("revoked_ssh_certs")
    op.drop_index("ix_ssh_principals_type", table_name="ssh_principals")
    op.drop_table("ssh_principals")
    op.drop_table("ssh_certs")
