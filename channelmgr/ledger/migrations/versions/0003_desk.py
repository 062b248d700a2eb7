"""the reservations desk (issue 12): direct bookings, idempotency keys, special requests, access audit, overbooking policy

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:00:00

One migration per issue of this session, chained so that each can be filled in on its
own. SQLite needs ``batch_alter_table`` to alter a table.
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


TS = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Idempotency-Key of POST/PATCH /api/v1/bookings: the first answer, kept for a retry
    op.create_table(
        "desk_idempotency",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    # special requests on their 2-hour clock
    op.create_table(
        "desk_requests",
        sa.Column("id", Id, primary_key=True),
        sa.Column("booking_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("bookings.id", name="fk_desk_requests_booking_id_bookings"), nullable=False),
        sa.Column("property_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("properties.id", name="fk_desk_requests_property_id_properties"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text_ct", sa.Text(), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("answered_by", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("done_at", TS, nullable=True),
        sa.Column("done_by", sa.String(64), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_desk_requests_booking_id", "desk_requests", ["booking_id"])
    op.create_index("ix_desk_requests_status_due", "desk_requests", ["status", "due_at"])
    # the access audit of revealed guest data
    op.create_table(
        "desk_access_audit",
        sa.Column("id", Id, primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("booking_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("bookings.id", name="fk_desk_access_audit_booking_id_bookings"), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
    )
    op.create_index("ix_desk_access_audit_booking_id", "desk_access_audit", ["booking_id"])
    # pulled booking revisions acknowledged to their OTA (the ack deadlines)
    op.create_table(
        "desk_acks",
        sa.Column("id", Id, primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("ota_booking_id", sa.String(128), nullable=False),
        sa.Column("revision", sa.String(128), nullable=False),
        sa.Column("acked_at", TS, nullable=False),
        sa.UniqueConstraint("channel", "ota_booking_id", "revision", name="uq_desk_acks_key"),
    )
    # contacts as keyed digests (suspicious-booking checks)
    op.create_table(
        "desk_contacts",
        sa.Column("id", Id, primary_key=True),
        sa.Column("booking_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("bookings.id", name="fk_desk_contacts_booking_id_bookings"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("rooms", sa.Integer(), nullable=False),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.UniqueConstraint("booking_id", "kind", name="uq_desk_contacts_booking_kind"),
    )
    op.create_index("ix_desk_contacts_booking_id", "desk_contacts", ["booking_id"])
    op.create_index("ix_desk_contacts_digest_at", "desk_contacts", ["digest", "at"])
    # the desk's high-water marks
    op.create_table(
        "desk_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for name in ("desk_state", "desk_contacts", "desk_acks", "desk_access_audit", "desk_requests",
                 "desk_idempotency"):
        op.drop_table(name)
