"""Idempotent consumers: effect and event id commit together; offsets are committed after.

For the records a poll brings from one partition the runner opens one transaction that
(1) checks the service's `processed_events` table for their event ids, (2) runs the handlers in
offset order, whose effects and staged events join the transaction, and (3) records the ids.
If that transaction fails, the records are applied one at a time instead, so one poison record
cannot hold the others back. Only when the effects of a polled batch are committed does it
commit the offsets. A redelivery (crash before the offset commit, a
rebalance, a duplicate publish by a relay) finds the id and changes nothing.

Failures (see shared/transient.py): an error of the infrastructure (database restarting,
read-only, out of connections, log unreachable) is retried with backoff until it returns, the
consumer staying where it is; any other error is retried a few times, then the record is parked
on `<topic>.dlq` with the error and the consumer moves on. A record that is not one of our
events goes to the dead-letter topic at once. One of our events whose type this code does not
know yet (a newer producer during a rolling deploy) holds its partition: nothing behind it on
that partition is applied, the hold is retried every `hold_s`, and readiness says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import structlog
from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, insert, select
from tenacity import RetryCallState

from vuonminh.shared.events import Envelope, PoisonMessage, UnknownEventType, dead_letter_topic
from vuonminh.shared.faults import crash_point
from vuonminh.shared.metrics import DEAD_LETTERED, EVENTS_CONSUMED, HANDLER_FAILURES, HELD_PARTITIONS
from vuonminh.shared.records import IncomingRecord, OutgoingRecord
from vuonminh.shared.retry import retrying, until_done
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transient import is_transient
from vuonminh.shared.transport import LogConsumer, LogProducer
from vuonminh.shared.transport.base import TopicPartition
from vuonminh.shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

Handler = Callable[[UnitOfWork, Envelope], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BatchHandler:
    """A handler that takes a run of consecutive events of its type in one call, so that it can
    write them with one multi-row statement instead of a few statements per event.

    It gets the new (not yet processed) events of the run in offset order, inside the batch's
    transaction. `uow.caused_by` is unset during the call: an event it publishes names its cause
    with `uow.publish(payload, caused_by=envelope)`. Called with a single event it must do what it
    does for many: that is how a failed batch is retried one event at a time.
    """

    apply: Callable[[UnitOfWork, Sequence[Envelope]], Awaitable[None]]

    async def __call__(self, uow: UnitOfWork, envelope: Envelope) -> None:
        await self.apply(uow, (envelope,))


UnitOfWorkFactory = Callable[[Envelope], AbstractAsyncContextManager[UnitOfWork]]

POLL_MAX_RECORDS = 200
POLL_TIMEOUT_S = 0.5
DEFAULT_HOLD_S = 30.0
STUCK_CHECK_S = 20.0  # idle this long: check that nothing waits unfetched


class ConsumerStuck(ConnectionError):
    """Records wait on the log but the client fetches none: the consumer is rebuilt."""


def processed_events_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events",
        metadata,
        Column("consumer_group", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
        # Retention deletes by age (shared/retention.py).
        Index("ix_processed_events_processed_at", "processed_at"),
    )


@dataclass(frozen=True, slots=True)
class Hold:
    """A partition stopped at one record that this code cannot read yet."""

    offset: int
    event_type: str
    retry_at: float


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
        hold_s: float = DEFAULT_HOLD_S,
    ) -> None:
        self.group_id = group_id
        self.topics = tuple(topics)
        self._handlers = handlers
        self._consumer_factory = consumer_factory
        self._unit_of_work = unit_of_work
        self._processed = processed_table
        self._dlq = dead_letter_producer
        self._max_attempts = max_attempts
        self._hold_s = hold_s
        self._consumer: LogConsumer | None = None
        # Partitions stopped at a type newer than this code, until a record past it is applied;
        # paused between tries.
        self.held: dict[TopicPartition, Hold] = {}
        self._paused: set[TopicPartition] = set()
        self.last_poll_monotonic: float | None = None

    def is_assigned(self) -> bool:
        return self._consumer is not None and self._consumer.is_assigned()

    async def run(self) -> None:
        """Consume until cancelled; a broken consumer is rebuilt from the committed offsets."""
        await until_done("consumer", self._run_one_consumer, group=self.group_id)

    async def _run_one_consumer(self) -> None:
        consumer = self._consumer_factory()
        try:
            await consumer.start()
            self._consumer = consumer
            self._forget_holds()  # a new member starts from the committed offsets, holds included
            await self._consume(consumer)
        finally:
            self._consumer = None
            await asyncio.shield(_stop_quietly(consumer))

    async def _consume(self, consumer: LogConsumer) -> None:
        last_records = time.monotonic()
        while True:
            self._retry_expired_holds(consumer)
            records = await consumer.poll(max_records=POLL_MAX_RECORDS, timeout_s=POLL_TIMEOUT_S)
            self.last_poll_monotonic = now = time.monotonic()
            if not records:
                if now - last_records >= STUCK_CHECK_S:
                    last_records = now
                    await self._check_not_stuck(consumer)
                continue
            last_records = now
            positions: dict[TopicPartition, int] = {}
            for partition, batch in _by_partition(records).items():
                if partition in self._paused:
                    continue  # records fetched behind a hold wait for it
                hold_before = self.held.get(partition)
                positions[partition] = await self.process_batch(batch)
                hold_after = self.held.get(partition)
                if hold_after is not None and hold_after is not hold_before:  # held (again) here
                    consumer.seek(partition, positions[partition])
                    consumer.pause([partition])
                    self._paused.add(partition)
                elif hold_before is not None:  # the code knows the type now: the hold is over
                    del self.held[partition]
                    HELD_PARTITIONS.labels(self.group_id, partition[0]).dec()
            crash_point(f"{self.group_id}:after-effect-before-commit")
            await consumer.commit(positions)

    async def _check_not_stuck(self, consumer: LogConsumer) -> None:
        """Nothing came for a while: fine if nothing waits, but a client that lost its broker
        (aiokafka's fetcher can stay on a dead connection after a broker restart) has records
        waiting it never fetches. Rebuilding the consumer from the committed offsets cures it."""
        async with asyncio.timeout(STUCK_CHECK_S):
            waiting = await consumer.lag(exclude=self._paused)
        if waiting > 0:
            raise ConsumerStuck(f"{waiting} records wait but none were fetched for {STUCK_CHECK_S:.0f} s")

    def _retry_expired_holds(self, consumer: LogConsumer) -> None:
        now = time.monotonic()
        due = [partition for partition in self._paused if self.held[partition].retry_at <= now]
        if due:
            self._paused.difference_update(due)
            consumer.resume(due)

    def _forget_holds(self) -> None:
        for topic, _partition in self.held:
            HELD_PARTITIONS.labels(self.group_id, topic).dec()
        self.held.clear()
        self._paused.clear()

    async def process_batch(self, records: Sequence[IncomingRecord]) -> int:
        """Applies one partition's records in order, in one transaction when they all succeed.

        Returns the next offset to commit: past the batch, or at a record the partition holds at.
        When the batch's transaction fails, nothing of it was applied and its records are applied
        one at a time, which isolates a poison record (dead-lettered) from the good ones.
        """
        applicable: list[tuple[IncomingRecord, Envelope, Handler]] = []
        next_offset = records[0].offset
        for record in records:
            try:
                envelope = Envelope.from_record(record)
            except UnknownEventType as error:
                self._hold(record, error.event_type)
                break
            except PoisonMessage as error:
                await self._dead_letter(record, error, event_type=record.header("ce_type") or "unknown")
                next_offset = record.offset + 1
                continue
            next_offset = record.offset + 1
            handler = self._handlers.get(envelope.type)
            if handler is None:
                EVENTS_CONSUMED.labels(self.group_id, envelope.type, "ignored").inc()
                continue
            applicable.append((record, envelope, handler))
        if not applicable:
            return next_offset
        try:
            await self._apply_batch(applicable)
            return next_offset
        except Exception as error:
            log.warning(
                "consumer.batch_failed_applying_one_by_one",
                group=self.group_id,
                records=len(applicable),
                error=repr(error),
            )
        for record, envelope, handler in applicable:
            await self._process_one(record, envelope, handler)
        return next_offset

    async def _apply_batch(self, items: Sequence[tuple[IncomingRecord, Envelope, Handler]]) -> None:
        """One transaction: the batch's effects, its staged events (outbox) and its inbox rows."""
        applied: list[Envelope] = []
        duplicates: list[Envelope] = []
        async with self._unit_of_work(None) as uow:
            already = await uow.session.exec(
                select(self._processed.c.event_id).where(
                    self._processed.c.consumer_group == self.group_id,
                    self._processed.c.event_id.in_([envelope.id for _, envelope, _ in items]),
                )
            )
            seen = {row.event_id for row in already}
            fresh: list[tuple[Envelope, Handler]] = []
            for _record, envelope, handler in items:
                if envelope.id in seen:
                    duplicates.append(envelope)
                    continue
                seen.add(envelope.id)
                fresh.append((envelope, handler))
            for index, (handler, envelopes) in enumerate(_runs(fresh)):
                if isinstance(handler, BatchHandler):
                    uow.caused_by = None
                    await handler.apply(uow, envelopes)
                else:
                    (envelope,) = envelopes
                    uow.caused_by = envelope
                    with structlog.contextvars.bound_contextvars(
                        event_id=envelope.id, correlation_id=envelope.correlation_id, event_type=envelope.type
                    ):
                        await handler(uow, envelope)
                applied.extend(envelopes)
                if index == 0 and len(items) > 1:
                    crash_point(f"{self.group_id}:mid-batch")
            if applied:
                # The primary key makes a racing duplicate fail here and roll the batch back.
                now = utc_now()
                await uow.session.exec(
                    insert(self._processed).values(
                        [
                            {
                                "consumer_group": self.group_id,
                                "event_id": envelope.id,
                                "event_type": envelope.type,
                                "processed_at": now,
                            }
                            for envelope in applied
                        ]
                    )
                )
        for envelope in applied:
            EVENTS_CONSUMED.labels(self.group_id, envelope.type, "applied").inc()
        for envelope in duplicates:
            EVENTS_CONSUMED.labels(self.group_id, envelope.type, "duplicate").inc()

    async def _process_one(self, record: IncomingRecord, envelope: Envelope, handler: Handler) -> None:
        with structlog.contextvars.bound_contextvars(
            event_id=envelope.id, correlation_id=envelope.correlation_id, event_type=envelope.type
        ):
            try:
                applied = await self._apply_with_retries(handler, envelope)
            except Exception as error:
                await self._dead_letter(record, error, event_type=envelope.type)
                return
        EVENTS_CONSUMED.labels(self.group_id, envelope.type, "applied" if applied else "duplicate").inc()

    async def _apply_with_retries(self, handler: Handler, envelope: Envelope) -> bool:
        """Infrastructure errors are waited out for as long as they last (never dead-lettered);
        errors of the record itself get `max_attempts` tries, then the last one is raised."""
        record_errors = 0

        def give_up(state: RetryCallState) -> bool:
            nonlocal record_errors
            error = state.outcome.exception() if state.outcome else None
            transient = error is not None and is_transient(error)
            HANDLER_FAILURES.labels(self.group_id, envelope.type, "transient" if transient else "error").inc()
            if transient:
                return False
            record_errors += 1
            return record_errors >= self._max_attempts

        async for attempt in retrying("apply event", stop=give_up, initial_s=0.05, group=self.group_id):
            with attempt:
                return await self._apply(handler, envelope)
        raise AssertionError("unreachable: retrying never stops without an outcome")

    def _hold(self, record: IncomingRecord, event_type: str) -> None:
        partition = (record.topic, record.partition)
        if partition not in self.held:
            HELD_PARTITIONS.labels(self.group_id, record.topic).inc()
        self.held[partition] = Hold(record.offset, event_type, time.monotonic() + self._hold_s)
        EVENTS_CONSUMED.labels(self.group_id, event_type, "held").inc()
        log.error(
            "consumer.holding_partition",
            group=self.group_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_type=event_type,
            hint="a newer producer wrote a type this code does not know: finish the rolling deploy",
            retry_in_s=self._hold_s,
        )

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
        # The offset must not move past a record that is neither handled nor parked: wait, never drop.
        await until_done("dead-letter send", lambda: self._dlq.send([parked]), group=self.group_id)
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


def _runs(items: Sequence[tuple[Envelope, Handler]]) -> list[tuple[Handler, list[Envelope]]]:
    """Consecutive events for one BatchHandler form one run; any other handler gets its events one by one."""
    runs: list[tuple[Handler, list[Envelope]]] = []
    for envelope, handler in items:
        if runs and isinstance(handler, BatchHandler) and runs[-1][0] is handler:
            runs[-1][1].append(envelope)
        else:
            runs.append((handler, [envelope]))
    return runs


def _by_partition(records: Sequence[IncomingRecord]) -> dict[TopicPartition, list[IncomingRecord]]:
    """A poll's records per partition, each in offset order (the order of the log)."""
    batches: dict[TopicPartition, list[IncomingRecord]] = {}
    for record in records:
        batches.setdefault((record.topic, record.partition), []).append(record)
    return batches


async def _stop_quietly(consumer: LogConsumer) -> None:
    try:
        await consumer.stop()
    except Exception as error:  # already broken; a new consumer is built anyway
        log.warning("consumer.stop_failed", error=repr(error))
