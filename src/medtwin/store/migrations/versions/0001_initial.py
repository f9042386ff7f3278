"""Initial schema.

Users, patients (PHI encrypted), devices, observations, events, conditions, messages, twins,
forecasts, alerts and the hash-chained audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Written out here rather than imported: a migration must not change when the models do.
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # the rowid on SQLite
ID = sa.String(length=64)
GENESIS = "0" * 64  # medtwin.security.GENESIS: the chain hash before the first entry


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table, and the audit chain's head at GENESIS."""
    op.create_table(
        "patients",
        sa.Column("id", ID, nullable=False),
        sa.Column("identifier_enc", sa.LargeBinary(), nullable=True),
        sa.Column("identifier_index", sa.String(length=64), nullable=True),
        sa.Column("name_enc", sa.LargeBinary(), nullable=True),
        sa.Column("birth_date_enc", sa.LargeBinary(), nullable=True),
        sa.Column("sex", sa.String(length=16), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("identifier_index", name=op.f("uq_patients_identifier_index")),
    )
    op.create_table(
        "devices",
        sa.Column("id", ID, nullable=False),
        sa.Column("patient_id", ID, nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("manufacturer", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_devices_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index(op.f("ix_devices_patient_id"), "devices", ["patient_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("patient_id", ID, nullable=True),
        sa.Column("device_id", ID, nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_users_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_users_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "care_team",
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        _time("added_at"),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_care_team_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_care_team_user_id_users")),
        sa.PrimaryKeyConstraint("patient_id", "user_id", name=op.f("pk_care_team")),
    )
    op.create_index(op.f("ix_care_team_user_id"), "care_team", ["user_id"])
    op.create_table(
        "observations",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        _time("time"),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("device_id", ID, nullable=True),
        sa.Column("source_id", sa.Text(), nullable=False),
        _time("received_at"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_observations_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_observations_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
        sa.UniqueConstraint(
            "patient_id",
            "code",
            "time",
            "device_id",
            name=op.f("uq_observations_patient_id_code_time_device_id"),
        ),
        sa.UniqueConstraint(
            "patient_id", "source_id", name=op.f("uq_observations_patient_id_source_id")
        ),
    )
    op.create_index(op.f("ix_observations_patient_id_time"), "observations", ["patient_id", "time"])
    op.create_table(
        "events",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        _time("time"),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        _time("received_at"),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_events_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("patient_id", "source_id", name=op.f("uq_events_patient_id_source_id")),
    )
    op.create_index(op.f("ix_events_patient_id_time"), "events", ["patient_id", "time"])
    op.create_table(
        "conditions",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("system", sa.Text(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("display", sa.Text(), nullable=True),
        sa.Column("onset", sa.Date(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=False),
        _time("received_at"),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_conditions_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conditions")),
        sa.UniqueConstraint(
            "patient_id", "source_id", name=op.f("uq_conditions_patient_id_source_id")
        ),
    )
    op.create_table(
        "messages",
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        _time("received_at"),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_messages")),
    )
    op.create_table(
        "twins",
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        _time("as_of"),
        _time("updated_at"),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_twins_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_twins")),
    )
    op.create_table(
        "forecasts",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        _time("made_at"),
        sa.Column("payload", sa.JSON(), nullable=False),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_forecasts_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecasts")),
    )
    op.create_index(op.f("ix_forecasts_patient_id_made_at"), "forecasts", ["patient_id", "made_at"])
    op.create_table(
        "alerts",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        _time("time"),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("window_min", sa.Double(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=32), nullable=True),
        _time("acknowledged_at", nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["acknowledged_by"], ["users.id"], name=op.f("fk_alerts_acknowledged_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_alerts_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_patient_id_time"), "alerts", ["patient_id", "time"])
    op.create_index(op.f("ix_alerts_time"), "alerts", ["time"])
    op.create_table(
        "audit",
        sa.Column("seq", BIGID, autoincrement=False, nullable=False),
        _time("time"),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("patient_id", ID, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit")),
    )
    op.create_index(op.f("ix_audit_patient_id"), "audit", ["patient_id"])
    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "hash": GENESIS}])


def downgrade() -> None:
    """Drop every table (and with them every index and constraint)."""
    for name in (
        "audit_head",
        "audit",
        "alerts",
        "forecasts",
        "twins",
        "messages",
        "conditions",
        "events",
        "observations",
        "care_team",
        "users",
        "devices",
        "patients",
    ):
        op.drop_table(name)
