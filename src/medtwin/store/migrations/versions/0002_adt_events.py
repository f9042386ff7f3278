"""ADT events of the hospital twin's live census.

One row per accepted admission/discharge/transfer event, unique by message id; the patient and
visit numbers are AES-GCM ciphertexts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# Written out here rather than imported: a migration must not change when the models do.
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # the rowid on SQLite


def upgrade() -> None:
    """Create ``adt_events``."""
    op.create_table(
        "adt_events",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=3), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("patient_enc", sa.LargeBinary(), nullable=False),
        sa.Column("visit_enc", sa.LargeBinary(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("bed", sa.String(length=64), nullable=True),
        sa.Column("prior_unit", sa.String(length=64), nullable=True),
        sa.Column("prior_bed", sa.String(length=64), nullable=True),
        sa.Column("patient_class", sa.String(length=1), nullable=True),
        sa.Column("acuity", sa.String(length=64), nullable=True),
        sa.Column("admission_type", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adt_events")),
        sa.UniqueConstraint("message_id", name=op.f("uq_adt_events_message_id")),
    )


def downgrade() -> None:
    """Drop ``adt_events``."""
    op.drop_table("adt_events")
