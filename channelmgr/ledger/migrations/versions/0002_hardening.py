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

    # crash recovery (issue 10): the processes that claim outbox rows, with a heartbeat, so
    # that a restart takes over the claims of its dead predecessor at once (the lease is a
    # backstop); and who closed a conflict, and why (a malformed message redelivered intact)
    op.create_table(
        "processes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("conflicts") as batch:
        batch.add_column(sa.Column("resolved_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("resolution", sa.Text(), nullable=True))

    # guest data (issue 10): sync-log bodies written before names and free-text requests were
    # masked are masked now, by the same masker and every adapter's fields (a data change
    # only; linear time, in batches)
    _mask_sync_log_bodies()

    # issue 11: accounts (users with roles, API tokens and browser sessions, both hashed)
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("users.id", name="fk_api_tokens_user_id_users"), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("session_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("csrf_sha256", sa.String(64), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("users.id", name="fk_web_sessions_user_id_users"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remote", sa.String(64), nullable=True),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])


def _mask_sync_log_bodies(batch_size: int = 500) -> None:
    from adapters.booking.client import GUEST_FIELDS as booking
    from adapters.ctrip.client import GUEST_FIELDS as ctrip
    from adapters.fliggy.client import GUEST_FIELDS as fliggy
    from adapters.meituan.client import GUEST_FIELDS as meituan
    from channelmgr.security import mask_body, union

    fields = union(booking, ctrip, fliggy, meituan)
    conn = op.get_bind()
    log = sa.table("sync_log", sa.column("id", sa.BigInteger), sa.column("request", sa.Text),
                   sa.column("response", sa.Text), sa.column("error", sa.Text))
    last = 0
    while True:
        rows = conn.execute(sa.select(log.c.id, log.c.request, log.c.response, log.c.error)
                            .where(log.c.id > last).order_by(log.c.id).limit(batch_size)).all()
        if not rows:
            return
        for r in rows:
            new = {k: mask_body(v, fields) for k, v in (("request", r.request), ("response", r.response),
                                                         ("error", r.error)) if v}
            if any(new[k] != getattr(r, k) for k in new):
                conn.execute(log.update().where(log.c.id == r.id).values(**new))
        last = rows[-1].id


def downgrade() -> None:
    # issue 11: accounts
    op.drop_table("web_sessions")
    op.drop_table("api_tokens")
    op.drop_table("users")

    # repeats (issue 9)
    with op.batch_alter_table("booking_revisions") as batch:
        batch.drop_column("fingerprint")

    # crash recovery (issue 10)
    with op.batch_alter_table("conflicts") as batch:
        batch.drop_column("resolution")
        batch.drop_column("resolved_by")
    op.drop_table("processes")
