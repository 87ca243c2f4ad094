"""Wiring: the same services, outbox, relay and consumers over Kafka+PostgreSQL or embedded.

Like Loki's or Tempo's targets, the mode only changes which log and which databases the
components get: `serve <service>` runs one service against Kafka and its PostgreSQL schema;
`run` puts all four in one process, each on its own SQLite file, over the local log.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vuonminh.shared import db
from vuonminh.shared.events import ALL_TOPICS, Envelope
from vuonminh.shared.inbox import ConsumerRunner
from vuonminh.shared.outbox import OutboxRelay, write_to_outbox
from vuonminh.shared.retention import Janitor
from vuonminh.shared.service import ServiceSpec
from vuonminh.shared.settings import Settings
from vuonminh.shared.transport import LogProducer, Transport
from vuonminh.shared.transport.kafka import KafkaTransport
from vuonminh.shared.transport.kafka_topics import TopicPolicy, TopicPolicyError
from vuonminh.shared.transport.local import LocalTransport
from vuonminh.shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

SERVICE_NAMES = ("catalog", "orders", "logistics", "analytics")


def load_service(name: str) -> ServiceSpec:
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICE_NAMES)}")
    return importlib.import_module(f"vuonminh.{name}.service").SERVICE


class ServiceRuntime:
    def __init__(self, spec: ServiceSpec, *, engine: AsyncEngine, transport: Transport, settings: Settings) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = settings
        self.engine = engine
        self.sessions = db.session_factory(engine)
        self.producer: LogProducer = transport.producer(client_id=f"vuonminh-{spec.name}")
        self.relay = OutboxRelay(
            service=spec.name, table=spec.outbox, engine=engine, sessions=self.sessions, producer=self.producer
        )
        self.consumer: ConsumerRunner | None = None
        if spec.subscriptions:
            handlers = {t: h for by_type in spec.subscriptions.values() for t, h in by_type.items()}
            topics = list(spec.subscriptions)
            self.consumer = ConsumerRunner(
                group_id=spec.consumer_group,
                topics=topics,
                handlers=handlers,
                consumer_factory=lambda: transport.consumer(group_id=spec.consumer_group, topics=topics),
                unit_of_work=self.unit_of_work,
                processed_table=spec.processed_events,
                dead_letter_producer=self.producer,
                max_attempts=settings.max_handler_attempts,
            )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await db.migrate(self.engine, self.spec.metadata, service=self.name)
        await self.producer.start()
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox-relay"))
        if self.consumer:
            self._tasks.append(asyncio.create_task(self.consumer.run(), name=f"{self.name}-consumer"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.producer.stop()
        await self.engine.dispose()

    @asynccontextmanager
    async def unit_of_work(self, caused_by: Envelope | None = None) -> AsyncIterator[UnitOfWork]:
        """A transaction whose published events are written to the outbox before it commits."""
        async with self.sessions() as session, session.begin():
            uow = UnitOfWork(session, service=self.name, caused_by=caused_by)
            yield uow
            await write_to_outbox(session, self.spec.outbox, uow.staged)
        if uow.staged:
            self.relay.wake()

    async def readiness(self) -> dict[str, str]:
        """Each check's state, 'ok' or what is wrong."""
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(3):
                await db.ping(self.engine)
            checks["database"] = "ok"
        except Exception as error:
            checks["database"] = f"unreachable: {error!r}"
        if self.consumer:
            stalled_after = self.settings.consumer_stall_s
            last = self.consumer.last_poll_monotonic
            if not self.consumer.is_assigned():
                checks["consumer"] = "no partitions assigned yet"
            elif last is None or time.monotonic() - last > stalled_after:
                checks["consumer"] = f"poll loop has not turned for over {stalled_after:.0f} s"
            else:
                checks["consumer"] = "ok"
        if self.relay.last_error:
            checks["outbox_relay"] = f"failing: {self.relay.last_error}"
        return checks

    def is_live(self) -> bool:
        """False once a background loop died: restarting the process is then the cure."""
        return all(not task.done() for task in self._tasks)


class Platform:
    """The services this process runs, and the log they share."""

    def __init__(self, runtimes: Sequence[ServiceRuntime], transport: Transport, *, mode: str) -> None:
        self.runtimes = {rt.name: rt for rt in runtimes}
        self.transport = transport
        self.mode = mode
        self.janitor = Janitor.for_platform(self)  # retention of outbox, inbox and local log

    def service(self, name: str) -> ServiceRuntime:
        return self.runtimes[name]

    async def start(self) -> None:
        await self.transport.ensure_topics(ALL_TOPICS)
        for runtime in self.runtimes.values():
            await runtime.start()
        self.janitor.start()
        log.info("platform.started", mode=self.mode, services=list(self.runtimes))

    async def stop(self) -> None:
        await self.janitor.stop()
        for runtime in reversed(list(self.runtimes.values())):
            await runtime.stop()
        await self.transport.close()


def kafka_platform(settings: Settings, service_names: Sequence[str]) -> Platform:
    if not settings.kafka_bootstrap_servers or not settings.database_url:
        raise SystemExit(
            "serve needs KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL "
            "(scripts/dev-services up prints both); `vuonminh run` needs neither"
        )
    policy = TopicPolicy.from_settings(settings)
    try:
        policy.check_at_start(settings.kafka_namespace)  # a clear stop now, not a retry loop later
    except TopicPolicyError as error:
        raise SystemExit(f"vuonminh serve: {error}") from error
    transport = KafkaTransport(settings.kafka_bootstrap_servers, namespace=settings.kafka_namespace, policy=policy)
    runtimes = [
        ServiceRuntime(
            load_service(name),
            engine=db.postgres_engine(settings.database_url, schema=name),
            transport=transport,
            settings=settings,
        )
        for name in service_names
    ]
    return Platform(runtimes, transport, mode="kafka")


def embedded_platform(settings: Settings, data_dir: Path | None = None) -> Platform:
    data_dir = data_dir or settings.data_dir
    max_bytes = int(settings.local_log_max_mb * 2**20) if settings.local_log_max_mb else None
    transport = LocalTransport(data_dir / "log.sqlite3", max_bytes=max_bytes)
    runtimes = [
        ServiceRuntime(
            load_service(name),
            engine=db.sqlite_engine(data_dir / f"{name}.sqlite3"),
            transport=transport,
            settings=settings,
        )
        for name in SERVICE_NAMES
    ]
    return Platform(runtimes, transport, mode="embedded")
