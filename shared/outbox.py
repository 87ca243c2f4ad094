"""Transactional outbox: events commit with the business rows, a relay sends them in order.

A handler or command never talks to the log. It stages events on its unit of work; they are
written to the service's `outbox` table in the same transaction as the business change, so
either both happen or neither. The relay then sends unpublished rows in id order and marks
them. A crash between send and mark sends a row again: consumers are idempotent (inbox).
"""

from __future__ import annotations

import asyncio
import json
import time
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
    Row,
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
from vuonminh.shared.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PARKED, OUTBOX_PENDING, OUTBOX_PUBLISHED
from vuonminh.shared.records import OutgoingRecord
from vuonminh.shared.retry import until_done
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transient import is_transient
from vuonminh.shared.transport import LogFull, LogProducer

log = structlog.get_logger(__name__)

RELAY_BATCH = 500
MAX_SEND_ATTEMPTS = 3  # sends of one row the log refuses (not an outage) before it is parked
RELAY_IDLE_POLL_S = 0.5  # rows committed by another process of the service are seen this fast
BACKLOG_REPORT_S = 10.0  # how often the relay measures the backlog (count and oldest age)


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
        # A row the log refuses for good (too large, invalid topic) is parked after a few tries, so it
        # does not block the rows behind it; the operator sees it (metric, log, `vuonminh outbox`).
        Column("send_attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
        Column("parked_at", DateTime(timezone=True), nullable=True),
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
        self._stopping = asyncio.Event()
        self.last_error: str | None = None
        self._backlog_measured_at = float("-inf")
        # Rows per send: halved while the log is too full to take a whole batch (a batch larger than
        # the space retention frees would otherwise be retried forever), doubled back once it fits.
        self._batch_rows = self._last_limit = RELAY_BATCH

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        """Graceful stop: `run` returns once a pass begun after this call found nothing more to
        send, i.e. every row committed before the call is on the log. Never cancelled mid-pass
        (a send not yet marked would be sent again by the next relay)."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while True:
            stopping = self._stopping.is_set()  # only a pass begun after the request may end the loop
            if time.monotonic() - self._backlog_measured_at >= BACKLOG_REPORT_S:
                self._backlog_measured_at = time.monotonic()
                await self.measure_backlog()
            sent = await until_done("outbox relay", self._publish_batch_noting_errors, service=self._service)
            if sent < self._last_limit:  # a short batch: nothing more is waiting
                if stopping:
                    return
                await wait_for_event(self._wake, RELAY_IDLE_POLL_S)
                self._wake.clear()

    async def measure_backlog(self) -> tuple[int, float] | None:
        """Sets the backlog gauges: rows waiting (parked ones aside) and the oldest one's age.
        None (gauges untouched) when the database cannot answer now; the relay says so anyway."""
        t = self._table
        try:
            async with self._sessions() as session:
                waiting, oldest = (
                    await session.exec(
                        select(func.count(), func.min(t.c.created_at)).where(
                            t.c.published_at.is_(None), t.c.parked_at.is_(None)
                        )
                    )
                ).one()
        except Exception as error:
            log.debug("outbox.backlog_unmeasured", service=self._service, error=repr(error))
            return None
        age = 0.0
        if oldest is not None:
            if oldest.tzinfo is None:  # SQLite hands back naive datetimes (stored as UTC)
                oldest = oldest.replace(tzinfo=utc_now().tzinfo)
            age = max(0.0, (utc_now() - oldest).total_seconds())
        OUTBOX_PENDING.labels(self._service).set(waiting)
        OUTBOX_OLDEST_AGE.labels(self._service).set(age)
        return waiting, age

    async def _publish_batch_noting_errors(self) -> int:
        try:
            sent = await self.publish_batch()
        except Exception as error:  # log or database unavailable: the rows stay, the caller retries
            self.last_error = repr(error)
            raise
        self.last_error = None
        return sent

    async def publish_batch(self) -> int:
        """Sends the oldest unsent rows in id order and marks them; returns how many were sent."""
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
                    select(t.c.id, t.c.topic, t.c.message_key, t.c.headers, t.c.payload, t.c.send_attempts)
                    .where(t.c.published_at.is_(None), t.c.parked_at.is_(None))
                    .order_by(t.c.id)
                    .limit(limit := self._batch_rows)
                )
            ).all()
            if not rows:
                OUTBOX_PENDING.labels(self._service).set(0)
                OUTBOX_OLDEST_AGE.labels(self._service).set(0)
                return 0
            try:
                await self._producer.send([_record(row) for row in rows])
                sent_ids = [row.id for row in rows]
                self._batch_rows = min(RELAY_BATCH, self._batch_rows * 2)
            except Exception as error:
                if isinstance(error, LogFull):
                    self._batch_rows = max(1, len(rows) // 2)
                if is_transient(error):
                    raise
                sent_ids = await self._send_one_at_a_time(session, rows)
            crash_point(f"{self._service}:outbox-after-send-before-mark")
            if sent_ids:
                await session.exec(update(t).where(t.c.id.in_(sent_ids)).values(published_at=utc_now()))
        OUTBOX_PUBLISHED.labels(self._service).inc(len(sent_ids))
        self._last_limit = limit
        return len(rows)

    async def _send_one_at_a_time(self, session: AsyncSession, rows: Sequence[Row]) -> list[int]:
        """The log refused the batch: find the rows it refuses, count their tries, park them at the
        limit, and send every other row (a broken row must not hold up the rows behind it)."""
        t = self._table
        sent: list[int] = []
        for row in rows:
            try:
                await self._producer.send([_record(row)])
            except Exception as error:
                if is_transient(error):
                    break  # the log went away meanwhile: mark what was sent, retry the rest later
                attempts = row.send_attempts + 1
                parked = attempts >= MAX_SEND_ATTEMPTS
                await session.exec(
                    update(t)
                    .where(t.c.id == row.id)
                    .values(
                        send_attempts=attempts, last_error=repr(error)[:2000], parked_at=utc_now() if parked else None
                    )
                )
                log.error(
                    "outbox.row_parked" if parked else "outbox.row_refused",
                    service=self._service,
                    outbox_id=row.id,
                    topic=row.topic,
                    attempts=attempts,
                    error=repr(error),
                )
                if parked:
                    OUTBOX_PARKED.labels(self._service).inc()
                continue
            sent.append(row.id)
        return sent


def _record(row: Row) -> OutgoingRecord:
    return OutgoingRecord(
        topic=row.topic,
        key=row.message_key.encode(),
        value=row.payload.encode(),
        headers=tuple((name, value.encode()) for name, value in _headers(row.headers)),
    )


def _headers(stored: object) -> list[list[str]]:
    # JSON columns come back parsed on PostgreSQL and SQLite alike; tolerate a string anyway.
    return json.loads(stored) if isinstance(stored, str) else stored  # type: ignore[return-value]
