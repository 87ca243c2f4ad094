"""Alembic environment: always handed a live connection by vuonminh.shared.migrations."""

from alembic import context

config = context.config
connection = config.attributes["connection"]
if connection is None:
    raise RuntimeError("run migrations through vuonminh (`vuonminh db upgrade`), not the alembic command")

context.configure(
    connection=connection,
    target_metadata=config.attributes["target_metadata"],
    # SQLite alters tables by copying them; batch mode does that for us.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
