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


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
