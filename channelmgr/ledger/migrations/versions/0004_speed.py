"""speed (issue 13): indexes for the outbox claim and the console's queries, retention

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:00:00

One migration per issue of this session, chained so that each can be filled in on its
own. SQLite needs ``batch_alter_table`` to alter a table.
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the outbox claim (issue 13): a priority per row (0 closes: a fall in rooms to sell, a
    # stop-sell; 1 any other change; 2 a whole-property full push), so a closure overtakes
    # queued price pushes; the claim walks (channel, status, priority, id) in index order
    # (no temporary B-tree), and a cell's claimed row is found by (channel, cell, status)
    # (no correlated scan of every claimed row)
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False, server_default=sa.text("1")))
    op.execute("UPDATE outbox SET priority = 2 WHERE kind = 'full'")
    op.create_index("ix_outbox_next", "outbox", ["channel", "status", "priority", "id"])
    op.create_index("ix_outbox_channel_cell", "outbox", ["channel", "cell", "status"])
    # retention (`channelmgr db prune`): settled outbox rows by age
    op.create_index("ix_outbox_created_at", "outbox", ["created_at"])

    # the console at 100,000 bookings (issue 13, for the pages): search by the OTA's id, by
    # our confirmation number, list by arrival. (channel, ota_booking_id) is unique with
    # channel first and (property_id, checkin) leads with the property: neither serves these.
    op.create_index("ix_bookings_ota_booking_id", "bookings", ["ota_booking_id"])
    op.create_index("ix_bookings_confirmation", "bookings", ["confirmation"])
    op.create_index("ix_bookings_checkin", "bookings", ["checkin"])


def downgrade() -> None:
    op.drop_index("ix_bookings_checkin", "bookings")
    op.drop_index("ix_bookings_confirmation", "bookings")
    op.drop_index("ix_bookings_ota_booking_id", "bookings")
    op.drop_index("ix_outbox_created_at", "outbox")
    op.drop_index("ix_outbox_channel_cell", "outbox")
    op.drop_index("ix_outbox_next", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("priority")
