"""`vuonminh analytics rebuild`: replay the topics from their start into fresh projections.

The replay goes through the same consumer code and handlers as the live service (inbox included),
under a consumer group of its own, so the live group's offsets are untouched. It stops at the end
of the log as it finds it. Embedded mode (the platform stopped) then puts the rebuilt file in place
of analytics.sqlite3; on PostgreSQL the rebuilt schema is left beside the live one (see
docs/operations.md, "Rebuilding analytics").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from tqdm import tqdm

from vuonminh.shared import db
from vuonminh.shared.events import Envelope
from vuonminh.shared.inbox import ConsumerRunner
from vuonminh.shared.records import OutgoingRecord
from vuonminh.shared.service import ServiceSpec
from vuonminh.shared.transport import LogConsumer, Transport
from vuonminh.shared.transport.local import LocalTransport
from vuonminh.shared.unit_of_work import UnitOfWork

REPLAY_BATCH = 1000
IDLE_POLL_S = 1.0


class ReplayStopped(RuntimeError):
    """The replay met an event type newer than this code: run the rebuild with the newer code."""


class _CountingProducer:
    """Stands in for the dead-letter producer: the live consumer has parked these records already."""

    def __init__(self) -> None:
        self.records = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def check(self) -> None: ...

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        self.records += len(records)


@dataclass(frozen=True)
class RebuildReport:
    events: int  # records read
    dead_lettered: int  # records no handler could apply (already on the dead-letter topic)
    group_id: str


async def _records_in_log(transport: Transport, topics: Sequence[str], consumer: LogConsumer) -> int | None:
    if isinstance(transport, LocalTransport):
        held = await transport.log.topics()
        return sum(last - first + 1 for topic, (first, last) in held.items() if topic in topics)
    return await consumer.lag() if consumer.is_assigned() else None


async def rebuild(
    spec: ServiceSpec,
    transport: Transport,
    engine: AsyncEngine,
    *,
    group_id: str | None = None,
    progress: bool = True,
) -> RebuildReport:
    """Migrates `engine`'s (fresh) database, then applies every record of the service's topics."""
    await db.migrate(engine, spec.metadata, service=spec.name)
    group = group_id or f"{spec.consumer_group}.rebuild.{uuid.uuid4().hex[:8]}"
    topics = list(spec.subscriptions)
    sessions = db.session_factory(engine)

    @asynccontextmanager
    async def unit_of_work(caused_by: Envelope | None = None) -> AsyncIterator[UnitOfWork]:
        async with sessions() as session, session.begin():
            yield UnitOfWork(session, service=spec.name, caused_by=caused_by)

    dead_letters = _CountingProducer()
    runner = ConsumerRunner(
        group_id=group,
        topics=topics,
        handlers={t: h for by_type in spec.subscriptions.values() for t, h in by_type.items()},
        consumer_factory=lambda: transport.consumer(group_id=group, topics=topics),
        unit_of_work=unit_of_work,
        processed_table=spec.processed_events,
        dead_letter_producer=dead_letters,
    )
    await transport.ensure_topics(topics)
    consumer = transport.consumer(group_id=group, topics=topics)
    await consumer.start()
    read = 0
    bar = tqdm(desc=f"rebuild {spec.name}", unit=" events", disable=not progress, dynamic_ncols=True)
    try:
        while True:
            if bar.total is None:
                bar.total = await _records_in_log(transport, topics, consumer)
                bar.refresh()
            records = await consumer.poll(max_records=REPLAY_BATCH, timeout_s=IDLE_POLL_S)
            if not records:
                # The end of the log as the replay found it (a Kafka consumer first needs its assignment).
                if consumer.is_assigned() and await consumer.lag() == 0:
                    break
                continue
            positions = {}
            for partition, batch in _by_partition(records).items():
                positions[partition] = await runner.process_batch(batch)
                if runner.held:
                    hold = next(iter(runner.held.values()))
                    raise ReplayStopped(f"event type {hold.event_type} is newer than this code: rebuild with it")
            await consumer.commit(positions)
            read += len(records)
            bar.update(len(records))
    finally:
        bar.close()
        await asyncio.shield(consumer.stop())
    return RebuildReport(events=read, dead_lettered=dead_letters.records, group_id=group)


def _by_partition(records: Sequence) -> dict[tuple[str, int], list]:
    grouped: dict[tuple[str, int], list] = {}
    for record in records:
        grouped.setdefault((record.topic, record.partition), []).append(record)
    return grouped
