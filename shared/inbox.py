"""Idempotent consumers: effect and event id commit together; offsets are committed after.

For every record the runner opens one transaction that (1) checks the service's
`processed_events` table for the event id, (2) runs the handler, whose effect and staged
events join the transaction, and (3) records the id. Only when the effects of a polled batch
are committed does it commit the offsets. A redelivery (crash before the offset commit, a
rebalance, a duplicate publish by a relay) finds the id and changes nothing.

Failures: an error of the infrastructure (database or log unreachable) is retried without
end, the consumer staying where it is; any other error is retried a few times, then the record
is parked on `<topic>.dlq` with the error and the consumer moves on. A record that is not one
of our events goes to the dead-letter topic at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager

import structlog
from sqlalchemy import Column, DateTime, MetaData, String, Table, insert, select
from sqlalchemy.exc import InterfaceError, OperationalError

from vuonminh.shared.events import Envelope, PoisonMessage, dead_letter_topic
from vuonminh.shared.faults import crash_point
from vuonminh.shared.metrics import DEAD_LETTERED, EVENTS_CONSUMED, HANDLER_FAILURES
from vuonminh.shared.records import IncomingRecord, OutgoingRecord
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transport import LogConsumer, LogProducer
from vuonminh.shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

Handler = Callable[[UnitOfWork, Envelope], Awaitable[None]]
UnitOfWorkFactory = Callable[[Envelope], AbstractAsyncContextManager[UnitOfWork]]

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, OSError, TimeoutError)
POLL_MAX_RECORDS = 200
POLL_TIMEOUT_S = 0.5


def processed_events_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("consumer_group", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )


class ConsumerRunner:
    def __init__(
        self,
        *,
        group_id: str,
        topics: Sequence[str],
        handlers: Mapping[str, Handler],
        consumer_factory: Callable[[], LogConsumer],
        unit_of_work: UnitOfWorkFactory,
        processed_table: Table,
        dead_letter_producer: LogProducer,
        max_attempts: int = 3,
    ) -> None:
        self.group_id = group_id
        self.topics = tuple(topics)
        self._handlers = handlers
        self._consumer_factory = consumer_factory
        self._unit_of_work = unit_of_work
        self._processed = processed_table
        self._dlq = dead_letter_producer
        self._max_attempts = max_attempts
        self._consumer: LogConsumer | None = None
        self.last_poll_monotonic: float | None = None

    def is_assigned(self) -> bool:
        return self._consumer is not None and self._consumer.is_assigned()

    async def run(self) -> None:
        """Consume until cancelled; a broken consumer is rebuilt from the committed offsets."""
        backoff = 0.5
        while True:
            consumer = self._consumer_factory()
            try:
                await consumer.start()
                self._consumer = consumer
                backoff = 0.5
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.error("consumer.restarting", group=self.group_id, error=repr(error), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self._consumer = None
                await asyncio.shield(_stop_quietly(consumer))

    async def _consume(self, consumer: LogConsumer) -> None:
        while True:
            records = await consumer.poll(max_records=POLL_MAX_RECORDS, timeout_s=POLL_TIMEOUT_S)
            self.last_poll_monotonic = time.monotonic()
            if not records:
                continue
            positions: dict[tuple[str, int], int] = {}
            for record in records:
                await self.process(record)
                positions[(record.topic, record.partition)] = record.offset + 1
            crash_point(f"{self.group_id}:after-effect-before-commit")
            await consumer.commit(positions)

    async def process(self, record: IncomingRecord) -> None:
        """Apply one record's effect exactly once, or park it on the dead-letter topic."""
        try:
            envelope = Envelope.from_record(record)
        except PoisonMessage as error:
            await self._dead_letter(record, error, event_type=record.header("ce_type") or "unknown")
            return
        handler = self._handlers.get(envelope.type)
        if handler is None:
            EVENTS_CONSUMED.labels(self.group_id, envelope.type, "ignored").inc()
            return
        attempt, transient_wait = 0, 0.2
        while True:
            try:
                applied = await self._apply(handler, envelope)
            except TRANSIENT_ERRORS as error:
                # The database or the log is away: wait for it, never dead-letter for that.
                HANDLER_FAILURES.labels(self.group_id, envelope.type, "transient").inc()
                log.warning("consumer.transient_error", group=self.group_id, event_id=envelope.id, error=repr(error))
                await asyncio.sleep(transient_wait)
                transient_wait = min(transient_wait * 2, 5.0)
                continue
            except Exception as error:
                attempt += 1
                HANDLER_FAILURES.labels(self.group_id, envelope.type, "error").inc()
                log.warning(
                    "consumer.handler_failed",
                    group=self.group_id,
                    event_id=envelope.id,
                    correlation_id=envelope.correlation_id,
                    attempt=attempt,
                    error=repr(error),
                )
                if attempt >= self._max_attempts:
                    await self._dead_letter(record, error, event_type=envelope.type)
                    return
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            EVENTS_CONSUMED.labels(self.group_id, envelope.type, "applied" if applied else "duplicate").inc()
            return

    async def _apply(self, handler: Handler, envelope: Envelope) -> bool:
        async with self._unit_of_work(envelope) as uow:
            seen = await uow.session.scalar(
                select(self._processed.c.event_id).where(
                    self._processed.c.consumer_group == self.group_id,
                    self._processed.c.event_id == envelope.id,
                )
            )
            if seen is not None:
                return False
            await handler(uow, envelope)
            # The primary key makes a racing duplicate fail here and roll the effect back.
            await uow.session.exec(
                insert(self._processed).values(
                    consumer_group=self.group_id,
                    event_id=envelope.id,
                    event_type=envelope.type,
                    processed_at=utc_now(),
                )
            )
        return True

    async def _dead_letter(self, record: IncomingRecord, error: BaseException, *, event_type: str) -> None:
        headers = record.headers + tuple(
            (name, value.encode())
            for name, value in (
                ("dlq_original_topic", record.topic),
                ("dlq_original_partition", str(record.partition)),
                ("dlq_original_offset", str(record.offset)),
                ("dlq_consumer_group", self.group_id),
                ("dlq_error", repr(error)[:2000]),
                ("dlq_failed_at", utc_now().isoformat()),
            )
        )
        parked = OutgoingRecord(
            topic=dead_letter_topic(record.topic), key=record.key or b"", value=record.value or b"", headers=headers
        )
        wait = 0.2
        while True:  # the offset must not move past a record that is neither handled nor parked
            try:
                await self._dlq.send([parked])
                break
            except Exception as send_error:  # the log is away or refusing: wait, never drop
                log.warning("consumer.dead_letter_send_failed", group=self.group_id, error=repr(send_error))
                await asyncio.sleep(wait)
                wait = min(wait * 2, 5.0)
        EVENTS_CONSUMED.labels(self.group_id, event_type, "dead_lettered").inc()
        DEAD_LETTERED.labels(self.group_id, record.topic).inc()
        log.error(
            "consumer.dead_lettered",
            group=self.group_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=repr(error),
        )


async def _stop_quietly(consumer: LogConsumer) -> None:
    try:
        await consumer.stop()
    except Exception as error:  # already broken; a new consumer is built anyway
        log.warning("consumer.stop_failed", error=repr(error))
