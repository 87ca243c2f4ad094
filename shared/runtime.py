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
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vuonminh.shared import db
from vuonminh.shared.events import ALL_TOPICS, Envelope
from vuonminh.shared.inbox import ConsumerRunner
from vuonminh.shared.outbox import OutboxRelay, write_to_outbox
from vuonminh.shared.retention import Janitor
from vuonminh.shared.retry import until_done
from vuonminh.shared.service import BackgroundJob, ServiceSpec
from vuonminh.shared.settings import Settings
from vuonminh.shared.transport import LogProducer, Transport
from vuonminh.shared.transport.kafka import KafkaTransport, ProducerBatching
from vuonminh.shared.transport.kafka_topics import TopicPolicy, TopicPolicyError
from vuonminh.shared.transport.local import LocalTransport
from vuonminh.shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

SERVICE_NAMES = ("catalog", "orders", "logistics", "analytics")
# Which parts of a service a process runs: its HTTP API, its workers (consumer and outbox relay), or both.
Role = Literal["api", "worker", "all"]
ROLES: tuple[Role, ...] = ("api", "worker", "all")


def load_service(name: str) -> ServiceSpec:
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICE_NAMES)}")
    return importlib.import_module(f"vuonminh.{name}.service").SERVICE


class ServiceRuntime:
    def __init__(
        self,
        spec: ServiceSpec,
        *,
        engine: AsyncEngine,
        transport: Transport,
        settings: Settings,
        role: Role = "all",
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = settings
        self.role = role
        self.engine = engine
        self.sessions = db.session_factory(engine)
        self.producer: LogProducer = transport.producer(client_id=f"vuonminh-{spec.name}")
        self.log_connected = False
        self.relay = OutboxRelay(
            service=spec.name, table=spec.outbox, engine=engine, sessions=self.sessions, producer=self.producer
        )
        self.consumer: ConsumerRunner | None = None
        if spec.subscriptions and self.runs_workers:
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
                hold_s=settings.unknown_type_hold_s,
            )
        self._tasks: list[asyncio.Task[None]] = []
        # What a service keeps in memory for this runtime (e.g. orders' cache of shop secrets).
        self.state: dict[str, Any] = {}

    @property
    def runs_api(self) -> bool:
        return self.role in ("api", "all")

    @property
    def runs_workers(self) -> bool:
        return self.role in ("worker", "all")

    async def migrate(self) -> None:
        """Brings the database to head, waiting for it if it is not up yet, then starts the loops
        the API needs (they do not wait for the log)."""
        await until_done("migrate", lambda: db.migrate(self.engine, self.spec.metadata, service=self.name))
        if self.runs_api:
            self._start_jobs(self.spec.api_background)

    def _start_jobs(self, jobs: tuple[BackgroundJob, ...]) -> None:
        for job in jobs:
            name = f"{self.name}-{getattr(job, '__name__', 'background')}"
            self._tasks.append(asyncio.create_task(job(self), name=name))

    async def connect(self) -> None:
        """Connects to the log (waiting while it is down), then starts the background loops."""
        await until_done("connect to the log", self.producer.start, service=self.name)
        self.log_connected = True
        if self.runs_workers:
            self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox-relay"))
        if self.consumer:
            self._tasks.append(asyncio.create_task(self.consumer.run(), name=f"{self.name}-consumer"))
        if self.runs_workers:
            self._start_jobs(self.spec.background)

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
        checks["log"] = await self._log_state()
        if self.consumer:
            checks["consumer"] = self._consumer_state(self.consumer)
        if self.runs_workers and self.relay.last_error:
            checks["outbox_relay"] = f"failing: {self.relay.last_error}"
        return checks

    async def _log_state(self) -> str:
        if not self.log_connected:
            return "connecting (waiting for the log to answer)"
        try:
            async with asyncio.timeout(3):
                await self.producer.check()
        except Exception as error:
            return f"unreachable: {error!r}"
        return "ok"

    def _consumer_state(self, consumer: ConsumerRunner) -> str:
        stalled_after = self.settings.consumer_stall_s
        last = consumer.last_poll_monotonic
        if not consumer.is_assigned():
            return "no partitions assigned yet"
        if last is None or time.monotonic() - last > stalled_after:
            return f"poll loop has not turned for over {stalled_after:.0f} s"
        if consumer.held:
            held = ", ".join(f"{t}[{p}]@{h.offset} ({h.event_type})" for (t, p), h in consumer.held.items())
            return f"holding at event types newer than this code: {held}"
        return "ok"

    def parts(self, checks: dict[str, str]) -> dict[str, list[str]]:
        """What each part this process runs still lacks ([] = ready). The API needs only what
        its routes use: orders' webhook intake needs the log, not the database."""
        lacking = {name for name, state in checks.items() if state != "ok"}
        parts: dict[str, list[str]] = {}
        if self.runs_api:
            parts["api"] = sorted(lacking & set(self.spec.api_needs))
        if self.runs_workers:
            parts["worker"] = sorted(lacking)
        return parts

    def is_live(self) -> bool:
        """False once a background loop died: restarting the process is then the cure."""
        return all(not task.done() for task in self._tasks)


class Platform:
    """The services this process runs, and the log they share."""

    def __init__(self, runtimes: Sequence[ServiceRuntime], transport: Transport, *, mode: str, role: Role = "all"):
        self.runtimes = {rt.name: rt for rt in runtimes}
        self.transport = transport
        self.mode = mode
        self.role = role
        self._connecting: asyncio.Task[None] | None = None
        self.janitor = Janitor.for_platform(self)  # retention of outbox, inbox and local log

    def service(self, name: str) -> ServiceRuntime:
        return self.runtimes[name]

    @property
    def settings(self) -> Settings:
        """The process's settings (every service of one process is built from the same)."""
        return next(iter(self.runtimes.values())).settings

    async def start(self) -> None:
        """Migrates every database (waiting for it), then connects to the log in the background:
        a process started while Kafka is down serves /healthz and /readyz and waits for it."""
        for runtime in self.runtimes.values():
            await runtime.migrate()
        self._connecting = asyncio.create_task(self._connect(), name="connect-to-log")
        log.info("platform.started", mode=self.mode, role=self.role, services=list(self.runtimes))

    async def _connect(self) -> None:
        await until_done("create topics", lambda: self.transport.ensure_topics(ALL_TOPICS))
        for runtime in self.runtimes.values():
            await runtime.connect()
        self.janitor.start()
        log.info("platform.connected_to_log", mode=self.mode)

    async def wait_connected(self, timeout_s: float = 30.0) -> None:
        """For tools and tests that must not act before the log is there."""
        if self._connecting is not None:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._connecting)

    def dead_loops(self) -> list[str]:
        """The background loops that died (restarting the process is then the cure)."""
        dead = [name for name, runtime in self.runtimes.items() if not runtime.is_live()]
        task = self._connecting
        if task is not None and task.done() and (task.cancelled() or task.exception() is not None):
            dead.append("connect-to-log")
        return dead

    async def stop(self) -> None:
        await self.janitor.stop()
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        for runtime in reversed(list(self.runtimes.values())):
            await runtime.stop()
        await self.transport.close()


def kafka_platform(settings: Settings, service_names: Sequence[str], *, role: Role = "all") -> Platform:
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
    batching = ProducerBatching(
        linger_ms=settings.kafka_linger_ms,
        max_batch_bytes=settings.kafka_batch_bytes,
        compression=settings.kafka_compression,
    )
    transport = KafkaTransport(
        settings.kafka_bootstrap_servers, namespace=settings.kafka_namespace, policy=policy, batching=batching
    )
    runtimes = [
        ServiceRuntime(
            load_service(name),
            engine=db.postgres_engine(settings.database_url, schema=name),
            transport=transport,
            settings=settings,
            role=role,
        )
        for name in service_names
    ]
    return Platform(runtimes, transport, mode="kafka", role=role)


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
