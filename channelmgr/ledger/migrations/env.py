"""Alembic environment: always handed a connection by channelmgr.ledger.migrate."""

from alembic import context

from channelmgr.ledger.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic revision --autogenerate` by hand
    raise SystemExit("run migrations with `channelmgr db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
context.run_migrations()
