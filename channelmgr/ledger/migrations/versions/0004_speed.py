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
    pass


def downgrade() -> None:
    pass
