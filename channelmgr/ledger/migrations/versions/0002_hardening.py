"""hardening: late-night windows, repeats, hostile input, crash recovery

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:10:00

One migration for the schema changes of one working session; each part's operations are
marked with a comment naming what they are for. SQLite needs ``batch_alter_table`` to
alter a table.
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # repeats (issue 9): the content fingerprint of a booking revision, so that a resend of
    # what was applied last (new EchoToken/TimeStamp, same booking) is answered as a duplicate
    with op.batch_alter_table("booking_revisions") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))


def downgrade() -> None:
    # repeats (issue 9)
    with op.batch_alter_table("booking_revisions") as batch:
        batch.drop_column("fingerprint")
