"""ACME External Account Binding keys (RFC 8555 §7.3.4), managed by `step ca acme eab`.

A key belongs to one ACME provisioner, may carry an external reference (unique per
provisioner: NULL when none, so unreferenced keys never collide), and binds at most one
account (`account_id`, set once by a conditional UPDATE).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "acme_eab_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("provisioner", sa.String(255), nullable=False),
        sa.Column("reference", sa.String(256), nullable=True),
        sa.Column("hmac_key", sa.String(128), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("bound_at", _WHEN, nullable=True),
        sa.UniqueConstraint("provisioner", "reference", name="uq_acme_eab_keys_reference"),
    )
    op.create_index("ix_acme_eab_keys_provisioner", "acme_eab_keys", ["provisioner"])


def downgrade() -> None:
    op.drop_table("acme_eab_keys")
