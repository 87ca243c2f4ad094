"""Each service's own database: a schema on the PostgreSQL server, or a SQLite file (embedded)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def postgres_engine(database_url: str, *, schema: str) -> AsyncEngine:
    """An engine whose unqualified table names resolve to the service's own schema."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.drivername}://")
    url = url.set(drivername="postgresql+asyncpg")
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"server_settings": {"search_path": schema, "application_name": f"vuonminh-{schema}"}},
    )


def sqlite_engine(path: Path) -> AsyncEngine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
        # Autocommit at the driver so SQLAlchemy's BEGIN below is the only one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an accepted effect survives a crash
        cursor.execute("PRAGMA foreign_keys=ON")
        # The WAL shrinks back to this after a checkpoint, instead of keeping its largest size.
        cursor.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediate(connection) -> None:  # noqa: ANN001
        # Take the write lock up front: a deferred transaction that reads then writes can fail
        # with "database is locked" instead of waiting for the other writer.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


async def migrate(engine: AsyncEngine, metadata: MetaData, *, service: str) -> None:
    """Brings the service's database to the newest revision (services/<name>/migrations)."""
    from vuonminh.shared.migrations import upgrade_to_head

    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Replicas starting together would race on CREATE SCHEMA and on the revisions.
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('vuonminh-migrate'))"))
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service}"'))
        await conn.run_sync(lambda sync_conn: upgrade_to_head(sync_conn, service=service, metadata=metadata))


async def create_tables(engine: AsyncEngine, metadata: MetaData) -> None:
    """Tables straight from the models, for tests of the shared kit that have no migrations."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
