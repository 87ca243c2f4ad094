"""`vuonminh analytics rebuild`: replay the topics from their start into fresh projections.

The replay goes through the same consumer code and handlers as the live service (inbox included),
under a consumer group of its own, so the live group's offsets are untouched. It stops at the end
of the log as it finds it. Embedded mode (the platform stopped) then puts the rebuilt file in place
of analytics.sqlite3; on PostgreSQL the rebuilt schema is left beside the live one (see
docs/operations.md, "Rebuilding analytics").
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine
from tqdm import tqdm

from vuonminh.shared import db
from vuonminh.shared.events import Envelope
from vuonminh.shared.inbox import ConsumerRunner
from vuonminh.shared.records import OutgoingRecord
from vuonminh.shared.service import ServiceSpec
from vuonminh.shared.settings import Settings
from vuonminh.shared.transport import LogConsumer, Transport
from vuonminh.shared.transport.local import LocalTransport
from vuonminh.shared.unit_of_work import UnitOfWork

REPLAY_BATCH = 1000
# What people entered rather than events projected: carried over from the old database as it is.
KEPT_TABLES = ("commune_targets",)
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
            if not isinstance(transport, LocalTransport):
                # Kafka: the group's offsets let an operator see the replay's progress. The local
                # log would keep this group's offsets for ever and hold its retention back.
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


async def rebuild_embedded(spec: ServiceSpec, data_dir: Path, *, progress: bool = True) -> RebuildReport:
    """Replays the data dir's local log into a new SQLite file, then puts it in place of the
    service's file. The platform must be stopped (the log refuses a second writer)."""
    transport = LocalTransport(data_dir / "log.sqlite3")
    await transport.open()  # raises DataDirInUse while `vuonminh run` holds the data dir
    target = data_dir / f"{spec.name}.rebuild.sqlite3"
    _remove_sqlite(target)
    engine = db.sqlite_engine(target)
    live = data_dir / f"{spec.name}.sqlite3"
    try:
        report = await rebuild(spec, transport, engine, progress=progress)
        if live.exists():
            old = db.sqlite_engine(live)
            try:
                await carry_over(spec, old, engine)
            finally:
                await old.dispose()
    finally:
        await engine.dispose()
        await transport.close()
    _remove_sqlite(live)
    os.replace(target, live)
    return report


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def rebuild_kafka(spec: ServiceSpec, settings: Settings, *, swap: bool, progress: bool = True) -> RebuildReport:
    """Replays the Kafka topics into the schema `<service>_rebuild` (made afresh), then, with
    `swap`, renames it to `<service>` (the old one is kept as `<service>_before_<time>`). Stop the
    service's workers first: events they would apply meanwhile are in the replay."""
    from vuonminh.shared.transport.kafka import KafkaTransport
    from vuonminh.shared.transport.kafka_topics import TopicPolicy

    if not settings.kafka_bootstrap_servers or not settings.database_url:
        raise SystemExit("rebuild on Kafka needs KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL")
    schema = f"{spec.name}_rebuild"
    engine = db.postgres_engine(settings.database_url, schema=schema)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        transport = KafkaTransport(
            settings.kafka_bootstrap_servers,
            namespace=settings.kafka_namespace,
            policy=TopicPolicy.from_settings(settings),
        )
        report = await _rebuild_into_schema(spec, transport, engine, schema, progress=progress)
        old = db.postgres_engine(settings.database_url, schema=spec.name)
        try:
            await carry_over(spec, old, engine)
        finally:
            await old.dispose()
        if swap:
            kept = f"{spec.name}_before_{datetime.now(UTC):%Y%m%d%H%M%S}"
            async with engine.begin() as conn:
                await conn.execute(text(f'ALTER SCHEMA "{spec.name}" RENAME TO "{kept}"'))
                await conn.execute(text(f'ALTER SCHEMA "{schema}" RENAME TO "{spec.name}"'))
    finally:
        await engine.dispose()
    return report


async def _rebuild_into_schema(
    spec: ServiceSpec, transport: Transport, engine: AsyncEngine, schema: str, *, progress: bool
) -> RebuildReport:
    # db.migrate creates the schema named after the service; this one has another name.
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return await rebuild(spec, transport, engine, progress=progress)


async def carry_over(spec: ServiceSpec, old: AsyncEngine, new: AsyncEngine) -> None:
    """Copies the KEPT_TABLES' rows from the old database into the rebuilt one."""
    for name in KEPT_TABLES:
        table = spec.metadata.tables[name]
        async with old.connect() as conn:
            try:
                rows = [dict(row._mapping) for row in await conn.execute(table.select())]
            except (OperationalError, ProgrammingError):  # a database from before the table: nothing to keep
                rows = []
        if rows:
            async with new.begin() as conn:
                await conn.execute(table.insert(), rows)
