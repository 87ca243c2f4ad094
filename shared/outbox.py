"""Transactional outbox: events commit with the business rows, a relay sends them in order.

A handler or command never talks to the log. It stages events on its unit of work; they are
written to the service's `outbox` table in the same transaction as the business change, so
either both happen or neither. The relay then sends unpublished rows in id order and marks
them. A crash between send and mark sends a row again: consumers are idempotent (inbox).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import structlog
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vuonminh.shared.aio import wait_for_event
from vuonminh.shared.events import Envelope
from vuonminh.shared.faults import crash_point
from vuonminh.shared.metrics import OUTBOX_PENDING, OUTBOX_PUBLISHED
from vuonminh.shared.records import OutgoingRecord
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transport import LogProducer

log = structlog.get_logger(__name__)

RELAY_BATCH = 200
RELAY_IDLE_POLL_S = 0.5  # rows committed by another process of the service are seen this fast


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("message_key", Text, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )


async def write_to_outbox(session: AsyncSession, table: Table, envelopes: Sequence[Envelope]) -> None:
    if not envelopes:
        return
    if session.get_bind().dialect.name == "postgresql":
        await _serialise_per_key(session, table, sorted({envelope.subject for envelope in envelopes}))
    rows = []
    for envelope in envelopes:
        record = envelope.to_record()
        rows.append(
            {
                "event_id": envelope.id,
                "event_type": envelope.type,
                "topic": record.topic,
                "message_key": record.key.decode(),
                "headers": [[name, value.decode()] for name, value in record.headers],
                "payload": record.value.decode(),
                "created_at": utc_now(),
            }
        )
    await session.exec(insert(table).values(rows))


async def _serialise_per_key(session: AsyncSession, table: Table, keys: list[str]) -> None:
    """Makes id order equal commit order for each key, on PostgreSQL.

    Ids come from a sequence at insert time, so two transactions writing events about one
    aggregate could commit in the other order than their ids, and the relay (which sends in id
    order) would send them reversed. A transaction-scoped advisory lock per key, taken before the
    insert and held to commit, makes the second writer wait for the first to commit before it
    draws its id. Keys are locked in sorted order, so two writers never wait on each other.
    SQLite needs none of this: it has one writer at a time.
    """
    # The schema names the service (one schema each), so services sharing a server don't collide.
    await session.exec(
        text(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':' || :table || ':' || k, 0)) "
            "FROM unnest(CAST(:keys AS text[])) AS k"
        ),
        params={"table": table.name, "keys": keys},
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        table: Table,
        engine: AsyncEngine,
        sessions: async_sessionmaker,
        producer: LogProducer,
    ) -> None:
        self._service = service
        self._table = table
        self._is_postgres = engine.dialect.name == "postgresql"
        self._sessions = sessions
        self._producer = producer
        self._wake = asyncio.Event()
        self.last_error: str | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                sent = await self.publish_batch()
                self.last_error, backoff = None, 0.1
            except asyncio.CancelledError:
                raise
            except Exception as error:  # log or database unavailable: keep the rows, try again
                self.last_error = repr(error)
                log.warning("outbox.relay_failed", service=self._service, error=repr(error), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if sent < RELAY_BATCH:
                await wait_for_event(self._wake, RELAY_IDLE_POLL_S)
                self._wake.clear()

    async def publish_batch(self) -> int:
        t = self._table
        async with self._sessions() as session, session.begin():
            if self._is_postgres:
                # One relay at a time per service keeps the send order equal to commit order
                # when the service runs several replicas.
                lock_key = func.hashtext(f"vuonminh-outbox-{self._service}")
                if not await session.scalar(select(func.pg_try_advisory_xact_lock(lock_key))):
                    return 0
            rows = (
                await session.exec(
                    select(t.c.id, t.c.topic, t.c.message_key, t.c.headers, t.c.payload)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.id)
                    .limit(RELAY_BATCH)
                )
            ).all()
            OUTBOX_PENDING.labels(self._service).set(len(rows))
            if not rows:
                return 0
            await self._producer.send(
                [
                    OutgoingRecord(
                        topic=row.topic,
                        key=row.message_key.encode(),
                        value=row.payload.encode(),
                        headers=tuple((name, value.encode()) for name, value in _headers(row.headers)),
                    )
                    for row in rows
                ]
            )
            crash_point(f"{self._service}:outbox-after-send-before-mark")
            await session.exec(update(t).where(t.c.id.in_([row.id for row in rows])).values(published_at=utc_now()))
        OUTBOX_PUBLISHED.labels(self._service).inc(len(rows))
        return len(rows)


def _headers(stored: object) -> list[list[str]]:
    # JSON columns come back parsed on PostgreSQL and SQLite alike; tolerate a string anyway.
    return json.loads(stored) if isinstance(stored, str) else stored  # type: ignore[return-value]
