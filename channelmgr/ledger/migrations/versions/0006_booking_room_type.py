"""reports (issue 14): a booking keeps its room type and rate plan after it is cancelled

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 18:30:00

A cancelled booking keeps no nights (booking_nights are deleted on cancel) and the bookings
row kept no room type, so the cancellation rate could only be given per channel. Now the
row keeps the room type and rate plan of its first room line (the first stay as received,
booking_nights' lowest id), written on new and modify and left as it was on cancel.
Backfilled here from booking_nights; a booking cancelled before this migration has no
nights left to take them from and keeps NULL (shown as "(unmapped)" in the reports).
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # not batch_alter_table: its copy of bookings is refused by the foreign keys that point
        # at it (DROP TABLE bookings: FOREIGN KEY constraint failed); SQLite adds a NULL column
        # with a REFERENCES clause in place
        for col, ref in (("room_type_id", "room_types"), ("rate_plan_id", "rate_plans")):
            op.execute(f"ALTER TABLE bookings ADD COLUMN {col} INTEGER REFERENCES {ref} (id)")
    else:
        op.add_column("bookings", sa.Column("room_type_id", sa.BigInteger(), nullable=True))
        op.add_column("bookings", sa.Column("rate_plan_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key("fk_bookings_room_type_id_room_types", "bookings", "room_types",
                              ["room_type_id"], ["id"])
        op.create_foreign_key("fk_bookings_rate_plan_id_rate_plans", "bookings", "rate_plans",
                              ["rate_plan_id"], ["id"])
    # the first room line of every booking that still has nights (the same rule as the ledger's)
    op.execute(
        "UPDATE bookings SET "
        "room_type_id = (SELECT n.room_type_id FROM booking_nights n WHERE n.booking_id = bookings.id "
        "                ORDER BY n.id LIMIT 1), "
        "rate_plan_id = (SELECT n.rate_plan_id FROM booking_nights n WHERE n.booking_id = bookings.id "
        "                ORDER BY n.id LIMIT 1) "
        "WHERE EXISTS (SELECT 1 FROM booking_nights n WHERE n.booking_id = bookings.id)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for col in ("rate_plan_id", "room_type_id"):  # SQLite 3.35+ drops a column that nothing indexes
            op.execute(f"ALTER TABLE bookings DROP COLUMN {col}")
    else:
        op.drop_constraint("fk_bookings_rate_plan_id_rate_plans", "bookings", type_="foreignkey")
        op.drop_constraint("fk_bookings_room_type_id_room_types", "bookings", type_="foreignkey")
        op.drop_column("bookings", "rate_plan_id")
        op.drop_column("bookings", "room_type_id")
