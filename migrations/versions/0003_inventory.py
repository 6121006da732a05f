"""Inventory: validity start, names, burned token and the indexes listing pages need.

Names live in their own table, `x509_cert_names(serial, name, rname)`, one row per subject
common name or SAN, lowercase, rather than in a text column of x509_certs: a glob then becomes
an index range (`name` for a literal prefix such as `web-*`, `rname`, the name reversed, for a
literal suffix such as `*.example.com`) instead of a scan of every certificate. The name
columns use the "C" collation on PostgreSQL so that byte order, the order a prefix range
assumes, is the index's order (SQLite's BINARY already is).

Keyset paging walks (issued_at, serial) for the newest first, (provisioner, issued_at, serial)
within one provisioner, and (not_after, serial) for what expires next; the last replaces the
former not_after index, which it covers.

Old rows are backfilled from their DER with the same function the issuance uses
(appliance.db.certrow), so globs match them alike; their token id is unknown (NULL).
not_before stays nullable (the CA always writes it; no table rebuild on SQLite, and rows
written by other tools without it are still accepted).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from cryptography import x509

from appliance.db.certrow import NAME_MAX, name_rows

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BATCH = 1000


def _name_type() -> Any:
    return sa.String(NAME_MAX).with_variant(sa.String(NAME_MAX, collation="C"), "postgresql")


def upgrade() -> None:
    op.add_column("x509_certs", sa.Column("not_before", sa.DateTime(timezone=True)))
    op.add_column("x509_certs", sa.Column("token_id", sa.String(255)))
    names = op.create_table(
        "x509_cert_names",
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("name", _name_type(), primary_key=True),
        sa.Column("rname", _name_type(), nullable=False),
    )
    _backfill(names)
    op.drop_index("ix_x509_certs_not_after", table_name="x509_certs")
    op.create_index("ix_x509_certs_expiry", "x509_certs", ["not_after", "serial"])
    op.create_index("ix_x509_certs_issued", "x509_certs", ["issued_at", "serial"])
    op.create_index(
        "ix_x509_certs_provisioner", "x509_certs", ["provisioner", "issued_at", "serial"]
    )
    op.create_index("ix_x509_cert_names_name", "x509_cert_names", ["name", "serial"])
    op.create_index("ix_x509_cert_names_rname", "x509_cert_names", ["rname", "serial"])


def _backfill(names: sa.Table | None) -> None:
    """not_before and names of every existing certificate, a thousand rows at a time."""
    assert names is not None
    conn = op.get_bind()
    certs = sa.table(
        "x509_certs",
        sa.column("serial", sa.String),
        sa.column("der", sa.LargeBinary),
        sa.column("not_before", sa.DateTime(timezone=True)),
    )
    last = ""
    while True:
        rows = conn.execute(
            sa.select(certs.c.serial, certs.c.der)
            .where(certs.c.serial > last)
            .order_by(certs.c.serial)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        updates: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        for serial, der in rows:
            cert = x509.load_der_x509_certificate(der)
            updates.append({"s": serial, "nb": cert.not_valid_before_utc})
            inserts += name_rows(serial, cert)
        conn.execute(
            certs.update()
            .where(certs.c.serial == sa.bindparam("s"))
            .values(not_before=sa.bindparam("nb")),
            updates,
        )
        if inserts:
            conn.execute(names.insert(), inserts)
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_x509_cert_names_rname", table_name="x509_cert_names")
    op.drop_index("ix_x509_cert_names_name", table_name="x509_cert_names")
    op.drop_index("ix_x509_certs_provisioner", table_name="x509_certs")
    op.drop_index("ix_x509_certs_issued", table_name="x509_certs")
    op.drop_index("ix_x509_certs_expiry", table_name="x509_certs")
    op.create_index("ix_x509_certs_not_after", "x509_certs", ["not_after"])
    op.drop_table("x509_cert_names")
    with op.batch_alter_table("x509_certs") as batch:
        batch.drop_column("token_id")
        batch.drop_column("not_before")
