"""Helpers for the test suites of every service (not used at run time)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from vuonminh.orders.webhooks import sign
from vuonminh.shared.app import create_app
from vuonminh.shared.auth import Caller, Role, SigningKey, issue_token
from vuonminh.shared.runtime import Platform, embedded_platform
from vuonminh.shared.settings import Settings

T = TypeVar("T")
# The deprecated global direct-channel secret (VUONMINH_DIRECT_SECRET): it signs for every shop
# that is not registered, which keeps tests about other things short.
TEST_SECRET = "test-direct-secret"
# A fixed Fernet key for the shops' secrets at rest (VUONMINH_SECRETS_KEY); tests only.
TEST_SECRETS_KEY = "hcFW7IUv7fHaTfsHlbqUdJTqnXllTX2lA2gSFnFFpNU="
# A fixed Ed25519 key that signs callers' tokens (VUONMINH_TOKEN_SIGNING_KEY); tests only.
TEST_TOKEN_SIGNING_KEY = "test-1:icn0IItZ-CcggrM-f-5c57pY1NtfDnK5MhpjEZhpAe8"
# What every test platform is started with (embedded_client adds them; a test starting a
# `vuonminh` process passes them as environment variables via process_env()).
TEST_SETTINGS: dict[str, Any] = {
    "direct_secret": TEST_SECRET,
    "secrets_key": TEST_SECRETS_KEY,
    "token_signing_key": TEST_TOKEN_SIGNING_KEY,
}


def process_env() -> dict[str, str]:
    """TEST_SETTINGS as the environment variables of a `vuonminh` process."""
    return {
        "VUONMINH_DIRECT_SECRET": TEST_SECRET,
        "VUONMINH_SECRETS_KEY": TEST_SECRETS_KEY,
        "VUONMINH_TOKEN_SIGNING_KEY": TEST_TOKEN_SIGNING_KEY,
    }


def auth_headers(
    role: Role | str = Role.operator,
    *,
    seller_ids: set[str] | frozenset[str] = frozenset(),
    shop_ids: set[str] | frozenset[str] = frozenset(),
    ward_codes: set[str] | frozenset[str] = frozenset(),
    province_codes: set[str] | frozenset[str] = frozenset(),
    carrier: str | None = None,
    subject: str | None = None,
    ttl: timedelta = timedelta(hours=1),
    token_id: str | None = None,
    now: datetime | None = None,
    signing_key: str = TEST_TOKEN_SIGNING_KEY,
) -> dict[str, str]:
    """An Authorization header with a token for this role and scope, signed with the test key.

    e.g. `client.get("/v1/orders", headers=auth_headers(Role.seller, seller_ids={"co-ba-hong"}))`.
    """
    role = Role(role)
    caller = Caller(
        role=role,
        subject=subject or f"test-{role.value}",
        seller_ids=frozenset(seller_ids),
        shop_ids=frozenset(shop_ids),
        ward_codes=frozenset(ward_codes),
        province_codes=frozenset(province_codes),
        carrier=carrier,
    )
    token = issue_token(SigningKey.parse(signing_key), caller, ttl=ttl, token_id=token_id, now=now)
    return {"Authorization": f"Bearer {token}"}


def operator_headers() -> dict[str, str]:
    return auth_headers(Role.operator)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout_s: float = 15.0, interval_s: float = 0.05
) -> T:
    """The first truthy result of `probe`, polling until the timeout (then AssertionError)."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s (last value: {last!r})")


def signed_headers(body: bytes, secret: str = TEST_SECRET, *, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {"content-type": "application/json", "X-VuonMinh-Signature": sign(body, secret=secret, timestamp=timestamp)}


def order_body(
    order_id: str = "TT-0001", *, shop_id: str = "shop-1", items: list[dict] | None = None, **overrides: Any
) -> dict:
    body = {
        "shop_id": shop_id,
        "order_id": order_id,
        "placed_at": "2026-11-20T09:15:00+07:00",
        "livestream_id": "live-tet-2026",
        "buyer": {
            "name": "Nguyễn Thu Hà",
            "phone": "0912345678",
            "address": {"province_code": "01", "ward_code": "00004", "line": "12 Phan Đình Phùng"},
        },
        "items": items if items is not None else [{"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000}],
        "payment": {"method": "cod"},
    }
    body.update(overrides)
    return body


def encode(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


@asynccontextmanager
async def embedded_client(
    data_dir: Path, *, headers: dict[str, str] | None = None, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
    """The whole embedded platform in this event loop, with an HTTP client on its ASGI app.

    The client calls as the operator unless given other `headers` ({} for none); a request's own
    headers (e.g. `auth_headers(Role.seller, ...)`) replace them for that request."""
    settings = {**TEST_SETTINGS, **settings}
    platform = embedded_platform(Settings(**settings), data_dir)
    app = create_app(platform)
    async with app.router.lifespan_context(app):
        await platform.wait_connected()
        transport = httpx.ASGITransport(app=app)
        headers = operator_headers() if headers is None else headers
        async with httpx.AsyncClient(transport=transport, base_url="http://vuonminh.test", headers=headers) as client:
            yield client, platform


async def seed_catalog(client: httpx.AsyncClient, platform: Platform | None = None) -> None:
    """Two sellers in two communes and three products, through catalog's API.

    With the embedded `platform`, also waits until orders has them: catalog's events and a
    shop's webhook travel on different topics, so nothing orders them against each other.
    """
    sellers = [
        {
            "seller_id": "co-ba-hong",
            "name": "Miến dong Cô Ba Hồng",
            "kind": "aggregator",
            "province_code": "12",
            "ward_code": "03390",
        },
        {
            "seller_id": "htx-che",
            "name": "HTX Chè Tân Cương",
            "kind": "cooperative",
            "province_code": "19",
            "ward_code": "05503",
        },
    ]
    products = [
        {
            "sku": "MIEN-DONG-500",
            "seller_id": "co-ba-hong",
            "name": "Miến dong 500 g",
            "unit_weight_g": 500,
            "ocop_stars": 3,
        },
        {"sku": "KHOAI-SAM-5KG", "seller_id": "co-ba-hong", "name": "Khoai sâm đất 5 kg", "unit_weight_g": 5000},
        {
            "sku": "CHE-200",
            "seller_id": "htx-che",
            "name": "Chè Tân Cương 200 g",
            "unit_weight_g": 250,
            "ocop_stars": 4,
        },
    ]
    for seller in sellers:
        assert (await client.post("/v1/sellers", json=seller)).status_code in (200, 201)
    for product in products:
        # Stock enough for any test's orders: catalog reserves it when orders places them.
        product = {**product, "initial_stock": 100_000}
        assert (await client.post("/v1/products", json=product)).status_code in (200, 201)
    if platform is not None:
        from vuonminh.wiring.demo import wait_until_orders_know_products

        await wait_until_orders_know_products(platform, len(products), timeout_s=15)


async def register_shop(platform: Platform, shop_id: str, *, seller_id: str | None = None) -> str:
    """Registers a shop with orders (as `vuonminh shops add` does) and returns its new secret."""
    from vuonminh.orders import shops

    orders = platform.service("orders")
    async with orders.unit_of_work() as uow:
        secret = await shops.add_shop(
            uow.session, shops.SecretBox(orders.settings.secrets_key), shop_id=shop_id, seller_id=seller_id
        )
    await shops.registry_of(orders).reload()  # a change made in this process is seen at once
    return secret


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VuonminhProcess:
    """A real `vuonminh` process (serve or run), for the tests that kill things."""

    def __init__(self, args: list[str], *, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        import os
        import sys

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The interpreter running the tests runs the command too: no reliance on PATH.
        self.args = [sys.executable, "-m", "vuonminh.wiring.cli", *args, "--port", str(self.port)]
        if args[0] == "serve":
            self.args += ["--host", "127.0.0.1"]
        self.env = {**os.environ, "VUONMINH_LOG_LEVEL": "INFO", **process_env(), **env}
        # The test signing key is in process_env(): these headers call as the operator.
        self.headers = operator_headers()
        self.log_path = log_path
        self.process: Any = None

    def start(self) -> VuonminhProcess:
        import subprocess

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        async def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.args} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"{self.url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            await eventually(ready, timeout_s=timeout_s, interval_s=0.2)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log_tail()}") from error

    async def wait_exit(self, timeout_s: float = 60.0) -> int:
        async def exited() -> bool:
            return self.process.poll() is not None

        await eventually(exited, timeout_s=timeout_s, interval_s=0.1)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, like a node losing power or the OOM killer."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> int | None:
        """SIGTERM, as Kubernetes stops a pod. Returns the exit code: after a graceful shutdown
        uvicorn re-raises the signal, so a clean stop ends as -SIGTERM, not 0."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except Exception:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode if self.process else None

    def log_lines(self, containing: str) -> list[str]:
        """The lines of this process's log that contain the text (e.g. an event name)."""
        try:
            return [line for line in self.log_path.read_text(errors="replace").splitlines() if containing in line]
        except OSError:
            return []

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus counter's samples matching the labels."""
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"{self.url}/metrics", headers=self.headers)).text
        return metric_value(text, name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of metric `name` matching the labels, in a /metrics text."""
    total = 0.0
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def migrate_to(engine: Any, service: str, metadata: Any, revision: str) -> None:
    """Upgrades a service's database to one revision (to test the data migrations after it)."""
    from alembic import command

    from vuonminh.shared.migrations import alembic_config

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{service}"')
        await conn.run_sync(lambda c: command.upgrade(alembic_config(service, metadata, c), revision))


async def check_orders_upgrade_keeps_stored_orders(engine: Any) -> None:
    """orders' revision 0002 on a database holding an order stored under 0001: the order keeps its
    id, gets its items back from its lines, and its amounts take values over 32 bits."""
    import sqlalchemy as sa
    from sqlmodel.sql.sqltypes import UTCDateTime

    from vuonminh.orders.handlers import find_order, received_from
    from vuonminh.orders.models import Order
    from vuonminh.shared import db
    from vuonminh.shared.runtime import load_service

    metadata = load_service("orders").metadata
    await migrate_to(engine, "orders", metadata, "0001")
    moment = datetime(2026, 11, 20, 2, 15, tzinfo=UTC)
    order_columns = (
        "id", "channel", "shop_id", "external_order_id", "status", "livestream_id", "payment_method", "buyer_name",
        "buyer_phone", "buyer_province_code", "buyer_ward_code", "buyer_address_line", "total_vnd", "total_weight_g",
    )  # fmt: skip
    orders = sa.table(
        "orders",
        *(sa.column(name) for name in order_columns),
        sa.column("rejection_reasons", sa.JSON()),
        *(sa.column(name, UTCDateTime()) for name in ("placed_at", "received_at", "created_at")),
    )
    line_columns = (
        "order_id", "line_no", "sku", "product_name", "seller_id", "seller_province_code", "seller_ward_code",
        "quantity", "unit_price_vnd", "unit_weight_g", "line_total_vnd", "line_weight_g",
    )  # fmt: skip
    lines = sa.table("order_lines", *(sa.column(name) for name in line_columns))
    buyer = order_body()["buyer"]
    async with engine.begin() as conn:
        await conn.execute(
            orders.insert().values(
                id="legacy-1", channel="direct", shop_id="shop one", external_order_id="TT 1", status="placed",
                livestream_id=None, payment_method="cod", buyer_name=buyer["name"], buyer_phone=buyer["phone"],
                buyer_province_code="01", buyer_ward_code="00004", buyer_address_line=buyer["address"]["line"],
                total_vnd=310000, total_weight_g=1250, rejection_reasons=[],
                placed_at=moment, received_at=moment, created_at=moment,
            )
        )  # fmt: skip
        for line_no, (sku, quantity, price, weight) in enumerate((("A", 2, 65000, 500), ("B", 1, 180000, 250)), 1):
            await conn.execute(
                lines.insert().values(
                    order_id="legacy-1", line_no=line_no, sku=sku, product_name=sku, seller_id="s",
                    seller_province_code="12", seller_ward_code="03390", quantity=quantity, unit_price_vnd=price,
                    unit_weight_g=weight, line_total_vnd=quantity * price, line_weight_g=quantity * weight,
                )
            )  # fmt: skip

    await db.migrate(engine, metadata, service="orders")

    async with db.session_factory(engine)() as session, session.begin():
        order = await find_order(session, "direct", "shop one", "TT 1")
        assert order is not None and order.id == "legacy-1"
        assert order.items == [
            {"sku": "A", "quantity": 2, "unit_price_vnd": 65000},
            {"sku": "B", "quantity": 1, "unit_price_vnd": 180000},
        ]
        assert order.conflicts == [] and order.awaiting_since is None
        assert received_from(order).placed_at == moment
        order.total_vnd, order.total_weight_g = 10_000_000_000, 20_000_000_000_000
    async with db.session_factory(engine)() as session:
        stored = await session.get(Order, "legacy-1")
        assert (stored.total_vnd, stored.total_weight_g) == (10_000_000_000, 20_000_000_000_000)


async def migration_drift(engine: Any, metadata: Any) -> list:
    """What differs between the models and the migrated database ([] when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def compare(connection: Any) -> list:
        return compare_metadata(MigrationContext.configure(connection), metadata)

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


def order_line(seller_id: str, ward_code: str, quantity: int, unit_price_vnd: int, unit_weight_g: int, **fields: Any):
    """An OrderLine with its totals computed, for domain tests."""
    from vuonminh.shared.events import OrderLine

    defaults = {"sku": f"{seller_id}-sku", "product_name": "sản phẩm", "seller_province_code": "12"}
    return OrderLine(
        **{**defaults, **fields},
        seller_id=seller_id,
        seller_ward_code=ward_code,
        quantity=quantity,
        unit_price_vnd=unit_price_vnd,
        unit_weight_g=unit_weight_g,
        line_total_vnd=quantity * unit_price_vnd,
        line_weight_g=quantity * unit_weight_g,
    )


def placed_order(
    lines: list, *, placed_at: str = "2026-11-20T09:15:00+07:00", payment_method: str = "cod", **buyer_address: str
):
    """An OrderPlaced of these lines, for domain tests; buyer_address overrides the Hà Nội default."""
    from vuonminh.shared.events import OrderPlaced

    buyer = order_body()["buyer"]
    buyer["address"].update(buyer_address)
    return OrderPlaced(
        order_id="o-1",
        channel="direct",
        shop_id="shop-1",
        external_order_id="TT-1",
        placed_at=placed_at,
        livestream_id=None,
        payment_method=payment_method,
        buyer=buyer,
        lines=tuple(lines),
        total_vnd=sum(line.line_total_vnd for line in lines),
        total_weight_g=sum(line.line_weight_g for line in lines),
    )


def asyncpg_dsn(database_url: str) -> str:
    """A DATABASE_URL as plain asyncpg takes it (no SQLAlchemy driver suffix)."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def scratch_database(server_url: str, *, prefix: str = "vuonminh_test") -> AsyncIterator[str]:
    """A new database on the PostgreSQL server at `server_url`, dropped on exit; yields its URL."""
    import uuid

    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(server_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def count_rows(database_url: str, sql: str, *args: object) -> int:
    """A COUNT query on a PostgreSQL database; 0 while the table does not exist yet."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetchval(sql, *args)
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


async def fetch_rows(database_url: str, sql: str, *args: object) -> list[tuple]:
    """The rows of a query on a PostgreSQL database, as tuples."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return [tuple(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


@dataclass(frozen=True)
class WebhookAttempt:
    """One POST of an order's webhook, as the shop saw it."""

    order_id: str
    started_at: float  # time.monotonic()
    duration_s: float
    status: int | None  # None: no HTTP answer (refused connection, timeout)
    retry_after: str | None = None
    error: str | None = None  # why there was no answer

    @property
    def ended_at(self) -> float:
        return self.started_at + self.duration_s

    def describe(self) -> str:
        outcome = self.status if self.status is not None else self.error
        return f"{self.order_id}: {outcome} after {self.duration_s:.2f} s (Retry-After: {self.retry_after})"


class ShopSender:
    """Posts signed direct-channel webhooks as a shop does, while a test injects faults.

    `workers` loops each send a new order every `pace_s` until `finish()`; every order is
    retried (any answer but 2xx, or none) until acknowledged, with the same body, as a shop
    retries. It retries after `retry_pause_s` rather than Retry-After, to probe an outage densely.
    Every attempt is recorded, and which orders were acknowledged.
    """

    def __init__(
        self,
        base_url: str,
        *,
        prefix: str,
        items: list[dict] | None = None,
        workers: int = 2,
        pace_s: float = 0.1,
        request_timeout_s: float = 10.0,
        retry_pause_s: float = 0.25,
        secret: str = TEST_SECRET,
    ) -> None:
        self.base_url = base_url
        self.prefix = prefix
        self.items = items
        self.workers = workers
        self.pace_s = pace_s
        self.request_timeout_s = request_timeout_s
        self.retry_pause_s = retry_pause_s
        self.secret = secret
        self.sent: list[str] = []  # every order started, in order
        self.acknowledged: dict[str, float] = {}  # order id -> time.monotonic() of its 2xx
        self.attempts: list[WebhookAttempt] = []
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ShopSender:
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.request_timeout_s)
        self._tasks = [asyncio.create_task(self._work(), name=f"shop-sender-{n}") for n in range(self.workers)]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def finish(self, *, timeout_s: float = 120.0) -> None:
        """Stops starting new orders and waits until every started one is acknowledged."""
        self._stopping.set()
        done, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in done:
            task.result()  # a worker's own error, if any
        if pending:
            unacknowledged = [order_id for order_id in self.sent if order_id not in self.acknowledged]
            last = [a.describe() for a in self.attempts[-5:]]
            raise AssertionError(
                f"{len(unacknowledged)} orders not acknowledged within {timeout_s} s: {unacknowledged[:10]}; "
                f"last attempts: {last}"
            )

    async def wait_acknowledged(self, count: int, *, timeout_s: float = 60.0) -> None:
        async def enough() -> bool:
            return len(self.acknowledged) >= count

        await eventually(enough, timeout_s=timeout_s, interval_s=0.05)

    def attempts_between(self, start: float, end: float) -> list[WebhookAttempt]:
        """Attempts that started and ended within [start, end] (time.monotonic())."""
        return [a for a in self.attempts if a.started_at >= start and a.ended_at <= end]

    async def _work(self) -> None:
        while not self._stopping.is_set():
            order_id = f"{self.prefix}-{len(self.sent):05d}"
            self.sent.append(order_id)
            await self._deliver(order_id)
            await asyncio.sleep(self.pace_s)

    async def _deliver(self, order_id: str) -> None:
        assert self._client is not None
        body = encode(order_body(order_id, items=self.items))
        while True:
            started = time.monotonic()
            try:
                response = await self._client.post(
                    "/v1/webhooks/direct", content=body, headers=signed_headers(body, self.secret)
                )
            except httpx.HTTPError as error:
                self.attempts.append(
                    WebhookAttempt(order_id, started, time.monotonic() - started, None, error=repr(error))
                )
            else:
                ended = time.monotonic()
                attempt = WebhookAttempt(
                    order_id, started, ended - started, response.status_code, response.headers.get("retry-after")
                )
                self.attempts.append(attempt)
                if response.is_success:
                    self.acknowledged[order_id] = ended
                    return
            await asyncio.sleep(self.retry_pause_s)


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    headers: dict[str, str]
    value: bytes

    def describe(self) -> str:
        return f"{self.topic}@{self.offset}: {self.headers.get('dlq_error', '?')[:300]}"


async def dead_letters(bootstrap_servers: str, namespace: str, *, timeout_s: float = 30.0) -> list[DeadLetter]:
    """Every record on the namespace's dead-letter topics (read from the start, up to their end)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from vuonminh.shared.events import Topic, dead_letter_topic

    wanted = {namespace + dead_letter_topic(topic.value) for topic in Topic}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = sorted(wanted & set(await admin.list_topics()))
        described = await admin.describe_topics(existing) if existing else []
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[DeadLetter] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise AssertionError(f"dead-letter topics not read to their end within {timeout_s} s")
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                found += [
                    DeadLetter(
                        m.topic.removeprefix(namespace),
                        m.partition,
                        m.offset,
                        {k: v.decode(errors="replace") for k, v in m.headers or ()},
                        m.value or b"",
                    )
                    for m in messages
                ]
        return found
    finally:
        await consumer.stop()


async def recovery_problems(processes: dict[str, VuonminhProcess], *, timeout_s: float = 60) -> list[str]:
    """What keeps the same processes from being live and ready again ([] when they all are)."""
    found: list[str] = []
    for name, process in processes.items():
        if process.process.poll() is not None:
            found.append(f"{name} exited ({process.process.returncode}) instead of recovering:\n{process.log_tail()}")
            continue
        try:
            await process.wait_ready(timeout_s=timeout_s)
        except AssertionError as error:
            found.append(f"{name} not ready again within {timeout_s} s: {error}")
            continue
        async with httpx.AsyncClient(timeout=5) as client:
            health = await client.get(f"{process.url}/healthz")
        if health.status_code != 200:
            found.append(f"{name} /healthz {health.status_code}: {health.text}")
    return found


def log_evidence(processes: dict[str, VuonminhProcess], *events: str, samples: int = 2) -> str:
    """How often each service logged each event, with the first lines: context for a failure."""
    lines = []
    for name, process in processes.items():
        for event in events:
            found = process.log_lines(event)
            if found:
                lines.append(f"{name}: {len(found)} x {event}, e.g.")
                lines += [f"    {line[:400]}" for line in found[:samples]]
    return "\n".join(lines) or "(none of " + ", ".join(events) + " in the services' logs)"


# --- catalog's stock step of the order saga -----------------------------------------------------------


def order_placed_event(
    order_id: str, lines: list[tuple[str, str, int]], *, placed_at: str = "2026-11-20T09:15:00+07:00"
):
    """An order_placed envelope as orders publishes it; `lines` are (sku, seller_id, quantity)."""
    from vuonminh.shared.events import Envelope

    order = placed_order(
        [order_line(seller, "03390", quantity, 65000, 500, sku=sku) for sku, seller, quantity in lines],
        placed_at=placed_at,
    ).model_copy(update={"order_id": order_id, "external_order_id": f"ext-{order_id}"})
    return Envelope.new(order, source="/vuonminh/orders")


def order_cancelled_event(order_id: str):
    from vuonminh.shared.events import Envelope, OrderCancelled

    cancelled = OrderCancelled(
        order_id=order_id, cancelled_at=datetime.now(UTC), cancelled_by="buyer", reason_code="buyer_request"
    )
    return Envelope.new(cancelled, source="/vuonminh/orders")


def shipment_picked_up_event(order_id: str, seller_id: str, *, status: str = "picked_up"):
    from vuonminh.shared.events import Envelope, ShipmentStatusChanged

    now = datetime.now(UTC)
    change = ShipmentStatusChanged(
        shipment_id=f"shp-{order_id}-{seller_id}",
        order_id=order_id,
        seller_id=seller_id,
        carrier="ghtk",
        status=status,
        previous_status="pickup_assigned",
        occurred_at=now,
        recorded_at=now,
    )
    return Envelope.new(change, source="/vuonminh/logistics")


async def reservation_outcomes(catalog: Any) -> dict[str, str]:
    """What catalog decided per order: reserved, failed or released (from its own table)."""
    from sqlalchemy import text

    async with catalog.sessions() as session:
        rows = await session.execute(text("SELECT order_id, outcome FROM reservation_decisions"))
        return dict(rows.tuples().all())


async def published_by_catalog(catalog: Any, event_type: str) -> list[dict]:
    """The payloads of one event type in catalog's outbox, in id order."""
    from sqlalchemy import select

    outbox = catalog.spec.outbox
    async with catalog.sessions() as session:
        rows = await session.execute(select(outbox).where(outbox.c.event_type == event_type).order_by(outbox.c.id))
        return [json.loads(row.payload) for row in rows]


async def delete_topics(bootstrap_servers: str, namespace: str) -> int:
    """Removes a run's namespaced topics from a shared broker; how many were deleted.

    A broker that keeps every test run's topics grows by thousands of partitions a day and
    ends in OutOfMemoryError; each run cleans up after itself.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    if not namespace:
        return 0
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="vuonminh-cleanup", request_timeout_ms=10000
    )
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(namespace)]
        if topics:
            await admin.delete_topics(topics)
        return len(topics)
    finally:
        await admin.close()
