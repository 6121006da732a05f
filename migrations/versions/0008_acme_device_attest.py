"""ACME device-attest-01: the key each valid attestation vouched for, and identifier types
longer than `dns`/`ip` (`permanent-identifier`).

Finalize issues only for the attested key, so the key's fingerprint must outlive the
challenge request: one row per authorization validated by device-attest-01.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("acme_authzs") as batch:
        batch.alter_column("kind", type_=sa.String(32), existing_type=sa.String(8))
    op.create_table(
        "acme_attestations",
        sa.Column("authz_id", sa.String(64), primary_key=True),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("identifier", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("acme_attestations")
    with op.batch_alter_table("acme_authzs") as batch:
        batch.alter_column("kind", type_=sa.String(8), existing_type=sa.String(32))
