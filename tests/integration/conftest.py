"""Integration tests run the services as real processes against Kafka and PostgreSQL.

`scripts/dev-services up` starts both and prints the two variables these tests read. On a
laptop without them the tests skip; in CI (CI=true) a missing broker or database fails.

The fault tests (test_faults_*.py) stop, kill, flood and lock servers, so they never touch
those shared ones: `private_postgres` and `private_kafka` start servers of the test module's
own, on free ports and in a temporary state dir, through the same script.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import asyncpg
import httpx
import pytest

from vuonminh.shared.runtime import SERVICE_NAMES
from vuonminh.wiring.testing import (
    TEST_SECRET,
    VuonminhProcess,
    asyncpg_dsn,
    dead_letters,
    delete_topics,
    eventually,
    fetch_rows,
    free_port,
    operator_headers,
    scratch_database,
    seed_catalog,
)
from vuonminh.wiring.testing import count_rows as count_rows_in

DEV_SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "dev-services"
# Ports of the servers other developers and test runs share: the fault tests must never use them.
SHARED_PORTS = {15432, 19092, 19093}


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        _missing(f'{name} is not set: run `eval "$(scripts/dev-services env)"` after `scripts/dev-services up`')
    return value


@pytest.fixture
def kafka_bootstrap() -> str:
    return _require("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture
async def database_url() -> str:
    """A database of this test's own on the PostgreSQL server, dropped afterwards."""
    async with scratch_database(_require("DATABASE_URL")) as url:
        yield url


@pytest.fixture
async def service_env(kafka_bootstrap: str, database_url: str) -> AsyncIterator[dict[str, str]]:
    namespace = f"test-{uuid.uuid4().hex[:8]}."
    yield {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "VUONMINH_DIRECT_SECRET": TEST_SECRET,
        # Topics and groups of their own, so tests never read each other's events.
        "VUONMINH_KAFKA_NAMESPACE": namespace,
        "VUONMINH_TOPIC_PARTITIONS": "3",
    }
    # The shared broker keeps no test's topics: a few thousand partitions left per run would
    # exhaust its heap within days. A broker that is gone (a fault test's own) has nothing to keep.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(delete_topics(kafka_bootstrap, namespace), timeout=20)


@pytest.fixture
async def start_service(service_env, tmp_path):
    """Starts `vuonminh serve <name>` processes; all are stopped at the end of the test."""
    started: list[VuonminhProcess] = []

    async def start(name: str, *, extra_env: dict[str, str] | None = None, port: int | None = None) -> VuonminhProcess:
        process = VuonminhProcess(
            ["serve", name], env={**service_env, **(extra_env or {})}, log_path=tmp_path / f"{name}.log", port=port
        ).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def start_stack(start_service):
    """Starts services (all four by default) and waits until each is ready.

    `crash=(service, point)` starts that service with VUONMINH_CRASH_POINT set.
    """

    async def start(names=SERVICE_NAMES, *, crash: tuple[str, str] | None = None) -> dict[str, VuonminhProcess]:
        processes = {}
        for name in names:
            env = {"VUONMINH_CRASH_POINT": crash[1]} if crash and crash[0] == name else None
            processes[name] = await start_service(name, extra_env=env)
        await asyncio.gather(*(p.wait_ready() for p in processes.values()))
        return processes

    return start


@pytest.fixture
def seed_catalog_via(count_rows):
    """Seeds the test catalog through catalog's API, then waits until orders has replicated it."""

    async def seed(catalog: VuonminhProcess) -> None:
        async with httpx.AsyncClient(headers=operator_headers(), base_url=catalog.url) as client:
            await seed_catalog(client)

        async def replicated() -> bool:
            return await count_rows("SELECT count(*) FROM orders.catalog_products") == 3

        await eventually(replicated, timeout_s=30)

    return seed


@pytest.fixture
def count_rows(database_url):
    """Runs a COUNT query on the test's database (to check effects, or wait for a replica)."""

    async def count(sql: str, *args: object) -> int:
        return await count_rows_in(database_url, sql, *args)

    return count


# --- private servers for fault injection ------------------------------------------------------


class DevServices:
    """`scripts/dev-services` pointed at private ports and a private state dir."""

    def __init__(self, base_dir: Path, **settings: int) -> None:
        assert not SHARED_PORTS & set(settings.values()), f"{settings} would reuse a shared server's port"
        # Without these the script's `up` would reuse the shared servers; the fault commands
        # never look at them, but nothing here should ever point at the shared servers.
        self.env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
        self.env.update(
            {
                "VUONMINH_STATE_DIR": str(base_dir / "state"),
                "VUONMINH_PG_DATA": str(base_dir / "pg"),
                **{name: str(value) for name, value in settings.items()},
            }
        )

    def run(self, command: str, *, timeout_s: float = 180) -> None:
        try:
            done = subprocess.run(
                [str(DEV_SERVICES), command], env=self.env, capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired as error:
            raise AssertionError(f"dev-services {command} did not finish within {timeout_s} s") from error
        if done.returncode != 0:
            raise AssertionError(f"dev-services {command} failed ({done.returncode}):\n{done.stderr[-3000:]}")

    async def arun(self, command: str, *, timeout_s: float = 180) -> None:
        """Without blocking the event loop: webhooks keep flowing while a server restarts."""
        await asyncio.to_thread(self.run, command, timeout_s=timeout_s)


def _private_base_dir() -> Path:
    # As root the cluster is run by the postgres user, which must be able to reach its data dir
    # (the script keeps root's clusters in /var/tmp for the same reason).
    base = Path(tempfile.mkdtemp(prefix="vuonminh-faults-", dir="/var/tmp" if os.geteuid() == 0 else None))
    base.chmod(0o755)
    return base


def _postgres_missing() -> str | None:
    have_bin = shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not have_bin:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed: run scripts/dev-services up once"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root needs the postgres user (Debian's postgresql package creates it)"
    return None


def _kafka_missing() -> str | None:
    version = re.search(r'KAFKA_VERSION="\$\{KAFKA_VERSION:-([^}]+)\}"', DEV_SERVICES.read_text())
    version = os.environ.get("KAFKA_VERSION") or (version.group(1) if version else "?")
    cache = Path(os.environ.get("VUONMINH_CACHE_DIR", Path.home() / ".cache" / "vuonminh"))
    if not shutil.which("java") or not (cache / f"kafka-{version}" / ".complete").exists():
        return f"Java or Kafka {version} (in {cache}) is missing: run scripts/dev-services up once"
    return None


class PrivatePostgres:
    """A PostgreSQL cluster of one test module, which its tests stop, flood and make read-only."""

    SERVICE_BACKENDS = "vuonminh-%"  # application_name of every service connection (shared/db.py)

    def __init__(self, base_dir: Path) -> None:
        self.port = free_port()
        self.script = DevServices(base_dir, PG_PORT=self.port)
        self.data_dir = base_dir / "pg"
        self.url = f"postgresql://vuonminh@127.0.0.1:{self.port}/vuonminh"
        self._admin_dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @contextlib.asynccontextmanager
    async def admin(self) -> AsyncIterator[asyncpg.Connection]:
        """A superuser session (it may use the reserved slots), never read-only itself."""
        conn = await asyncpg.connect(
            self._admin_dsn, timeout=10, server_settings={"default_transaction_read_only": "off"}
        )
        try:
            yield conn
        finally:
            await conn.close()

    async def terminate_service_backends(self) -> int:
        async with self.admin() as conn:
            return await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name LIKE $1 AND pid <> pg_backend_pid()",
                self.SERVICE_BACKENDS,
            )

    @contextlib.asynccontextmanager
    async def stopped(self, *, shutting_down_s: float = 0.0) -> AsyncIterator[None]:
        """Stopped as for a restart, started again on exit.

        With `shutting_down_s`, the shutdown lingers first, as when a session holds it up: for
        that long the server refuses new sessions with 57P03 ("the database system is shutting
        down") while the services' sessions are terminated (57P01). Then it stops (`pg_ctl stop
        -m fast`): connections are refused until the exit.
        """
        try:
            if shutting_down_s:
                async with self.admin() as lingering:
                    os.kill(self._postmaster_pid(), signal.SIGTERM)  # smart shutdown: waits for sessions
                    await lingering.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1",
                        self.SERVICE_BACKENDS,
                    )
                    await asyncio.sleep(shutting_down_s)
            await self.script.arun("pg-stop")
            yield
        finally:
            await self.script.arun("pg-stop")  # a no-op, unless a failure left a shutdown lingering
            await self.script.arun("pg-up")

    def _postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    @contextlib.asynccontextmanager
    async def connections_exhausted(self) -> AsyncIterator[int]:
        """Every connection slot held by idle sessions (new ones fail with 53300), released on exit.

        The services' pools would go on using the sessions they hold, so those are terminated
        once the slots are full; a background task takes every slot they free.
        """
        hogs: list[asyncpg.Connection] = []

        async def take_free_slots() -> None:
            while True:
                try:
                    hogs.append(await asyncpg.connect(asyncpg_dsn(self.url), timeout=10))
                except asyncpg.TooManyConnectionsError:
                    return

        async def keep_taking() -> None:
            while True:
                await take_free_slots()
                await asyncio.sleep(0.02)

        async with self.admin() as admin:
            try:
                await take_free_slots()
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1",
                    self.SERVICE_BACKENDS,
                )
                taker = asyncio.create_task(keep_taking())
                try:
                    yield len(hogs)
                finally:
                    taker.cancel()
                    await asyncio.gather(taker, return_exceptions=True)
            finally:
                await asyncio.gather(*(hog.close(timeout=5) for hog in hogs), return_exceptions=True)

    @contextlib.asynccontextmanager
    async def read_only(self) -> AsyncIterator[None]:
        """Every transaction read-only (writes fail with 25006), like a standby just after a failover."""
        async with self.admin() as admin:
            await admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            await admin.execute("SELECT pg_reload_conf()")
        try:
            await self.terminate_service_backends()  # pooled sessions come back read-only
            yield
        finally:
            async with self.admin() as admin:
                await admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
                await admin.execute("SELECT pg_reload_conf()")

    async def restore(self) -> None:
        """Running and writable again, whatever a failed test left behind."""
        await self.script.arun("pg-up")
        async with self.admin() as admin:
            await admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
            await admin.execute("SELECT pg_reload_conf()")


class PrivateKafka:
    """A single-node Kafka of one test module, which its tests kill -9 and start again."""

    def __init__(self, base_dir: Path) -> None:
        self.port = free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.script = DevServices(base_dir, KAFKA_PORT=self.port, KAFKA_CONTROLLER_PORT=self.controller_port)
        self.bootstrap = f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Starts the broker on its ports and data (a no-op when it runs) and waits until it answers."""
        await self.script.arun("kafka-up", timeout_s=240)

    async def kill(self) -> None:
        """SIGKILL, like a broker losing power (a no-op when it is not running)."""
        await self.script.arun("kafka-kill", timeout_s=30)


@pytest.fixture(scope="module")
def private_postgres() -> PrivatePostgres:
    problem = _postgres_missing()
    if problem:
        _missing(problem)
    base = _private_base_dir()
    server = PrivatePostgres(base)
    try:
        server.script.run("pg-up")
        yield server
    finally:
        with contextlib.suppress(AssertionError):
            server.script.run("pg-stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def private_kafka() -> PrivateKafka:
    """Not started: each test starts or kills it as its scenario needs."""
    problem = _kafka_missing()
    if problem:
        _missing(problem)
    base = _private_base_dir()
    server = PrivateKafka(base)
    try:
        yield server
    finally:
        with contextlib.suppress(AssertionError):
            server.script.run("kafka-kill", timeout_s=30)
        shutil.rmtree(base, ignore_errors=True)


# --- what a fault test checks at the end --------------------------------------------------------


@pytest.fixture
def exactly_once_problems(database_url, kafka_bootstrap, service_env):
    """What breaks "every acknowledged order stored once, shipped once, counted once, nothing
    dead-lettered", once the flow has settled ([] when nothing does).

    Settled: every expected row is there, or nothing has changed for `idle_s` (what is missing
    then stays missing), or `timeout_s` has passed.
    """

    async def problems(
        acknowledged: Collection[str], *, sellers_per_order: int = 2, idle_s: float = 30, timeout_s: float = 180
    ) -> list[str]:
        expected = len(acknowledged)
        target = (expected, sellers_per_order * expected, sellers_per_order * expected, sellers_per_order * expected)
        counts_sql = (
            "SELECT (SELECT count(*) FROM orders.orders), (SELECT count(*) FROM logistics.shipments), "
            "(SELECT count(*) FROM analytics.seller_order_facts), (SELECT count(*) FROM analytics.shipment_facts)"
        )
        deadline = time.monotonic() + timeout_s
        last, changed_at = None, time.monotonic()
        while time.monotonic() < deadline:
            counts = (await fetch_rows(database_url, counts_sql))[0]
            if counts != last:
                last, changed_at = counts, time.monotonic()
            if counts == target or time.monotonic() - changed_at > idle_s:
                break
            await asyncio.sleep(0.5)
        found: list[str] = []
        if last != target:
            found.append(f"(orders, shipments, seller facts, shipment facts) = {last}, expected {target}")

        stored = dict(await fetch_rows(database_url, "SELECT external_order_id, status FROM orders.orders"))
        missing = sorted(set(acknowledged) - set(stored))
        if missing:
            found.append(f"{len(missing)} acknowledged orders not stored: {missing[:10]}")
        unexpected = sorted(set(stored) - set(acknowledged))
        if unexpected:
            found.append(f"{len(unexpected)} stored orders never acknowledged: {unexpected[:10]}")
        not_placed = {order: status for order, status in stored.items() if status not in ("placed", "confirmed")}
        if not_placed:
            found.append(f"{len(not_placed)} orders not placed: {dict(list(not_placed.items())[:10])}")
        for what, sql in (
            (
                "shipments",
                "SELECT o.external_order_id, count(s.id) FROM orders.orders o "
                "LEFT JOIN logistics.shipments s ON s.order_id = o.id GROUP BY 1",
            ),
            (
                "seller order facts",
                "SELECT o.external_order_id, count(f.seller_id) FROM orders.orders o "
                "LEFT JOIN analytics.seller_order_facts f ON f.order_id = o.id GROUP BY 1",
            ),
            (
                "shipment facts",
                "SELECT o.external_order_id, count(f.shipment_id) FROM orders.orders o "
                "LEFT JOIN analytics.shipment_facts f ON f.order_id = o.id GROUP BY 1",
            ),
        ):
            wrong = {order: n for order, n in await fetch_rows(database_url, sql) if n != sellers_per_order}
            if wrong:
                found.append(
                    f"{len(wrong)} orders with other than {sellers_per_order} {what}: {dict(list(wrong.items())[:10])}"
                )

        parked = await dead_letters(kafka_bootstrap, service_env["VUONMINH_KAFKA_NAMESPACE"])
        if parked:
            by_topic: dict[str, int] = {}
            for record in parked:
                by_topic[record.topic] = by_topic.get(record.topic, 0) + 1
            found.append(
                f"{len(parked)} records dead-lettered {by_topic}, e.g. " + "; ".join(r.describe() for r in parked[:3])
            )
        return found

    return problems
