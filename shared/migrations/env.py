"""Alembic environment: always handed a live connection by vuonminh.shared.migrations."""

from alembic import context

config = context.config
connection = config.attributes["connection"]
if connection is None:
    raise RuntimeError("run migrations through vuonminh (`vuonminh db upgrade`), not the alembic command")


def _skip_empty_revision(_context, _revision, directives) -> None:  # noqa: ANN001 - Alembic's hook
    if directives and directives[0].upgrade_ops.is_empty():
        print("No difference between the models and the migrated schema: no revision written.")
        directives[:] = []


context.configure(
    connection=connection,
    target_metadata=config.attributes["target_metadata"],
    # SQLite alters tables by copying them; batch mode does that for us.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    process_revision_directives=_skip_empty_revision,
)
with context.begin_transaction():
    context.run_migrations()
