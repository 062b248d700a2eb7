"""reports and settlement (issue 14): commission rates, imported statements and their lines

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 13:00:00

One migration per issue of this session, chained so that each can be filled in on its
own. SQLite needs ``batch_alter_table`` to alter a table.
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the booking-date reports (issue 14): a property's bookings by when they were made
    op.create_index("ix_bookings_property_booked_at", "bookings", ["property_id", "booked_at"])
    # settlement: every OTA statement imported, whole (who, when, the file's digest: the same
    # file imported again is recognised and changes nothing), and its lines as read
    op.create_table(
        "statements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("imported_by", sa.String(64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.UniqueConstraint("channel", "content_sha256", name="uq_statements_channel_sha"),
    )
    op.create_table(
        "statement_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("statement_id", sa.BigInteger(), sa.ForeignKey("statements.id"), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("hotel_code", sa.String(64), nullable=True),
        sa.Column("ota_booking_id", sa.String(128), nullable=False),
        sa.Column("checkin", sa.Date(), nullable=True),
        sa.Column("checkout", sa.Date(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("commission_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
    )
    op.create_index("ix_statement_lines_statement_id", "statement_lines", ["statement_id"])
    op.create_index("ix_statement_lines_ota_booking_id", "statement_lines", ["ota_booking_id"])


def downgrade() -> None:
    op.drop_index("ix_statement_lines_ota_booking_id", "statement_lines")
    op.drop_index("ix_statement_lines_statement_id", "statement_lines")
    op.drop_table("statement_lines")
    op.drop_table("statements")
    op.drop_index("ix_bookings_property_booked_at", "bookings")
