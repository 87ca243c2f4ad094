"""Retention: what the services keep themselves is deleted once nothing can need it any more.

A janitor runs in every process (`Platform` starts it) every VUONMINH_JANITOR_INTERVAL_S and
deletes, per service of the process:
- published outbox rows older than VUONMINH_OUTBOX_RETENTION_DAYS (the log has them);
- `processed_events` rows older than VUONMINH_DEDUPE_WINDOW_DAYS, a window that must outlast any
  redelivery of an event (docs/operations.md, "Retention", says why 45 days);
and, in embedded mode, from the local log:
- records of a topic that every consumer group reading it has committed past. The groups are the
  ones the process's services subscribe with, plus any other group that has committed offsets on
  the topic; a group that has not committed yet counts as being at offset 0, so it loses nothing;
- records of dead-letter topics older than VUONMINH_DLQ_RETENTION_DAYS (as Kafka's retention.ms).
On Kafka the brokers apply the topics' retention.ms themselves.

Deletions run in short transactions (a few thousand rows) so they never hold up intake or a
consumer for long; on PostgreSQL one replica of a service prunes at a time (advisory lock).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Table, delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from vuonminh.shared.metrics import LOCAL_LOG_BYTES, RETENTION_DELETED
from vuonminh.shared.settings import Settings
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.transport.local import LocalLog

if TYPE_CHECKING:
    from vuonminh.shared.runtime import Platform

log = structlog.get_logger(__name__)

DELETE_CHUNK = 5000
DAY_S = 86_400


@dataclass(frozen=True)
class ServiceTables:
    """One service's database and the two tables the janitor trims."""

    name: str
    engine: AsyncEngine
    outbox: Table
    processed_events: Table


@dataclass
class PruneReport:
    log_records: dict[str, int] = field(default_factory=dict)  # topic -> records deleted
    outbox_rows: dict[str, int] = field(default_factory=dict)  # service -> rows deleted
    processed_events_rows: dict[str, int] = field(default_factory=dict)

    def total(self) -> int:
        return (
            sum(self.log_records.values()) + sum(self.outbox_rows.values()) + sum(self.processed_events_rows.values())
        )


class Janitor:
    def __init__(
        self,
        *,
        services: Sequence[ServiceTables],
        settings: Settings,
        local_log: LocalLog | None = None,
        readers: Mapping[str, set[str]] | None = None,
        topics_have_retention: bool = False,
    ) -> None:
        self.services = list(services)
        self.settings = settings
        self.local_log = local_log
        # topic -> the consumer groups of this process that read it
        self.readers = {topic: set(groups) for topic, groups in (readers or {}).items()}
        self._topics_have_retention = topics_have_retention
        self._task: asyncio.Task[None] | None = None
        self.last_report: PruneReport | None = None

    @classmethod
    def for_platform(cls, platform: Platform) -> Janitor:
        runtimes = list(platform.runtimes.values())
        readers: dict[str, set[str]] = {}
        for runtime in runtimes:
            for topic in runtime.spec.subscriptions:
                readers.setdefault(topic, set()).add(runtime.spec.consumer_group)
        local_log = getattr(platform.transport, "log", None)
        return cls(
            services=[ServiceTables(rt.name, rt.engine, rt.spec.outbox, rt.spec.processed_events) for rt in runtimes],
            settings=runtimes[0].settings if runtimes else Settings(),
            local_log=local_log if isinstance(local_log, LocalLog) else None,
            readers=readers,
            topics_have_retention=platform.mode == "kafka",
        )

    # -- background loop ------------------------------------------------------------------------
    def start(self) -> None:
        self._warn_if_dedupe_window_is_short()
        self._task = asyncio.create_task(self._run(), name="retention-janitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.janitor_interval_s)
            try:
                await self.prune_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a database or the log is away: the next turn tries again
                log.warning("retention.failed", error=repr(error))

    def _warn_if_dedupe_window_is_short(self) -> None:
        s = self.settings
        longest = max(s.dlq_retention_days, s.topic_retention_days if self._topics_have_retention else 0)
        if s.dedupe_window_days <= longest:
            log.warning(
                "retention.dedupe_window_shorter_than_redelivery",
                dedupe_window_days=s.dedupe_window_days,
                longest_redelivery_days=longest,
                consequence="a replayed or re-read event older than the window is applied again "
                "where the effect has no deterministic id of its own",
            )

    # -- one pass ---------------------------------------------------------------------------------
    async def prune_once(self) -> PruneReport:
        started = time.monotonic()
        report = PruneReport()
        now = utc_now()
        for service in self.services:
            outbox, processed = service.outbox, service.processed_events
            report.outbox_rows[service.name] = await self._delete_in_chunks(
                service,
                outbox,
                select(outbox.c.id)
                .where(outbox.c.published_at < now - timedelta(days=self.settings.outbox_retention_days))
                .order_by(outbox.c.id),
                key=outbox.c.id,
            )
            report.processed_events_rows[service.name] = await self._delete_in_chunks(
                service,
                processed,
                select(processed.c.consumer_group, processed.c.event_id).where(
                    processed.c.processed_at < now - timedelta(days=self.settings.dedupe_window_days)
                ),
                key=tuple_(processed.c.consumer_group, processed.c.event_id),
            )
            if service.engine.dialect.name == "sqlite":
                await _checkpoint_sqlite(service.engine)
        if self.local_log is not None:
            report.log_records = await self._prune_local_log(self.local_log, now_ms=int(now.timestamp() * 1000))
        for store, counts in (
            ("local_log", report.log_records),
            ("outbox", report.outbox_rows),
            ("processed_events", report.processed_events_rows),
        ):
            for owner, count in counts.items():
                if count:
                    RETENTION_DELETED.labels(store, owner).inc(count)
        if report.total():
            log.info(
                "retention.pruned",
                log_records=sum(report.log_records.values()),
                outbox_rows=sum(report.outbox_rows.values()),
                processed_events_rows=sum(report.processed_events_rows.values()),
                took_s=round(time.monotonic() - started, 3),
            )
        self.last_report = report
        return report

    async def _delete_in_chunks(self, service: ServiceTables, table: Table, old_rows, *, key) -> int:  # noqa: ANN001
        deleted = 0
        is_postgres = service.engine.dialect.name == "postgresql"
        while True:
            async with service.engine.begin() as conn:
                if is_postgres:
                    lock = func.hashtext(f"vuonminh-janitor-{service.name}")
                    if not await conn.scalar(select(func.pg_try_advisory_xact_lock(lock))):
                        return deleted  # another replica of the service is pruning
                result = await conn.execute(delete(table).where(key.in_(old_rows.limit(DELETE_CHUNK))))
            deleted += result.rowcount
            if result.rowcount < DELETE_CHUNK:
                return deleted

    async def _prune_local_log(self, local_log: LocalLog, *, now_ms: int) -> dict[str, int]:
        deleted: dict[str, int] = {}
        committed = await local_log.group_offsets()
        dlq_cutoff_ms = now_ms - int(self.settings.dlq_retention_days * DAY_S * 1000)
        unread_cutoff_ms = now_ms - int(self.settings.topic_retention_days * DAY_S * 1000)
        for topic in await local_log.topics():
            if topic.endswith(".dlq"):
                deleted[topic] = await local_log.delete_records(topic, before_ms=dlq_cutoff_ms)
                continue
            groups = self.readers.get(topic, set()) | set(committed.get(topic, {}))
            if not groups:
                # Nobody here reads it (e.g. access.audit, for an outside log store): kept as long as
                # Kafka would keep it, as it may be what someone is about to read.
                deleted[topic] = await local_log.delete_records(topic, before_ms=unread_cutoff_ms)
                continue
            # A group that has not committed yet reads from 0: it holds everything back.
            low_water = min(committed.get(topic, {}).get(group, 0) for group in groups)
            if low_water > 0:
                deleted[topic] = await local_log.delete_records(topic, below_offset=low_water)
        await local_log.checkpoint()
        LOCAL_LOG_BYTES.set(local_log.size_bytes())
        return deleted


async def _checkpoint_sqlite(engine: AsyncEngine) -> None:
    """Truncates the file's WAL (it would otherwise keep the size of its largest burst).

    On the driver's connection: SQLAlchemy would open a transaction, inside which SQLite
    refuses to checkpoint. A reader in the way only makes it a partial checkpoint.
    """
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def disk_usage(data_dir: Path) -> dict[str, int]:
    """Bytes on disk of each SQLite file of an embedded data dir, its WAL included."""
    usage: dict[str, int] = {}
    for path in sorted(data_dir.glob("*.sqlite3")):
        wal = path.with_name(path.name + "-wal")
        usage[path.name] = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return usage


def table_bytes(path: Path) -> dict[str, int]:
    """Bytes each table of a SQLite file takes, its indexes included, plus "(free)" for pages
    the file holds for reuse. Needs SQLite's dbstat table (in the usual builds)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_schema").fetchall())
        usage: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            usage[table] = usage.get(table, 0) + size
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        usage["(free)"] = conn.execute("PRAGMA freelist_count").fetchone()[0] * page_size
        return usage
    finally:
        conn.close()


async def unconsumed(platform: Platform) -> int:
    """Outbox rows not yet sent plus local-log records some reading group has not committed:
    0 once everything sent has been handled (a quiet embedded platform)."""
    pending = 0
    for runtime in platform.runtimes.values():
        outbox = runtime.spec.outbox
        async with runtime.engine.connect() as conn:
            pending += await conn.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            )
    local_log = getattr(platform.transport, "log", None)
    if isinstance(local_log, LocalLog):
        committed = await local_log.group_offsets()
        for topic, (_first, last) in (await local_log.topics()).items():
            for runtime in platform.runtimes.values():
                if topic in runtime.spec.subscriptions:
                    pending += max(0, last + 1 - committed.get(topic, {}).get(runtime.spec.consumer_group, 0))
    return pending
