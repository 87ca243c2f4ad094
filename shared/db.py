"""Each service's own database: a schema on the PostgreSQL server, or a SQLite file (embedded)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Integer, MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

# Money and weight columns: 64-bit integers. SQLite's INTEGER is 64-bit already, so they stay
# INTEGER there (changing the declared type would make SQLite copy whole tables for nothing).
BigInt = BigInteger().with_variant(Integer(), "sqlite")


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
        # with "database is locked" instead of waiting for the other writer. A connection that
        # only reads (execution option read_only=True) takes no lock and never waits for one.
        read_only = connection.get_execution_options().get("read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

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


@asynccontextmanager
async def read_only_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for reads alone: on SQLite it never waits for a writer's lock."""
    async with engine.connect() as conn:
        await conn.execution_options(read_only=True)
        async with AsyncSession(bind=conn) as session:
            yield session


class PointReader:
    """Reads one row by equality straight on the driver, for a read on a request's hot path.

    A pool checkout, a transaction and the ORM cost a few milliseconds of CPU per read; the driver
    alone costs a tenth of that. Read-only (SQLite: a `mode=ro` connection; PostgreSQL: a small
    asyncpg pool in the service's schema), opened on first use; `close` it when the service stops.
    """

    def __init__(self, engine: AsyncEngine, *, schema: str, max_connections: int = 4) -> None:
        self._url = engine.url
        self._schema = schema
        self._max_connections = max_connections
        self._sqlite: Any = None
        self._postgres: Any = None
        self._opening = asyncio.Lock()

    async def fetch_one(self, table: str, columns: Sequence[str], **equal: object) -> dict[str, Any] | None:
        """The first row of `table` whose columns equal `equal` (names come from code, never from input)."""
        await self._open()
        select_from = f"SELECT {', '.join(columns)} FROM {table} WHERE "
        if self._sqlite is not None:
            where = " AND ".join(f"{name} = ?" for name in equal)
            async with self._sqlite.execute(f"{select_from}{where} LIMIT 1", tuple(equal.values())) as cursor:
                row = await cursor.fetchone()
            return dict(zip(columns, row, strict=True)) if row is not None else None
        where = " AND ".join(f"{name} = ${n}" for n, name in enumerate(equal, start=1))
        row = await self._postgres.fetchrow(f"{select_from}{where} LIMIT 1", *equal.values())
        return dict(row) if row is not None else None

    async def _open(self) -> None:
        if self._sqlite is not None or self._postgres is not None:
            return
        async with self._opening:
            if self._url.get_backend_name() == "sqlite":
                import aiosqlite

                if self._sqlite is None:
                    self._sqlite = await aiosqlite.connect(f"file:{self._url.database}?mode=ro", uri=True)
            elif self._postgres is None:
                import asyncpg

                self._postgres = await asyncpg.create_pool(
                    self._url.set(drivername="postgresql").render_as_string(hide_password=False),
                    min_size=0,
                    max_size=self._max_connections,
                    server_settings={"search_path": self._schema, "application_name": f"vuonminh-{self._schema}"},
                )

    async def close(self) -> None:
        sqlite, postgres, self._sqlite, self._postgres = self._sqlite, self._postgres, None, None
        if sqlite is not None:
            await sqlite.close()
        if postgres is not None:
            await postgres.close()


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
