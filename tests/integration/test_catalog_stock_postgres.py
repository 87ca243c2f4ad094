"""Never oversell, on PostgreSQL: many orders race for the last units of one SKU.

Two ways, both through the code production runs: (1) concurrent transactions in one process, each
running catalog's order_placed handler in its own unit of work; (2) three `vuonminh serve catalog
--role worker` processes consuming `orders.orders` (three partitions) from Kafka at the same time.
Either way exactly K orders get the K units and the others a clear "out of stock".
"""

import asyncio
import json

import pytest

from vuonminh.catalog import commands, handlers
from vuonminh.catalog.models import ProductIn, SellerIn
from vuonminh.shared.events import StockReservationFailed
from vuonminh.shared.runtime import kafka_platform
from vuonminh.shared.settings import Settings
from vuonminh.shared.transport.kafka import KafkaTransport
from vuonminh.wiring.testing import (
    eventually,
    fetch_rows,
    order_placed_event,
    published_by_catalog,
    reservation_outcomes,
)

pytestmark = pytest.mark.integration

SELLER = SellerIn(
    seller_id="bl-htx", name="HTX Miến dong Bình Lư", kind="cooperative", province_code="12", ward_code="03390"
)


async def catalog_on(database_url: str, kafka_bootstrap: str, *, units: int):
    """catalog's runtime on this test's database (API role: no consumer), with one hot SKU of `units`."""
    platform = kafka_platform(
        Settings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap), ["catalog"], role="api"
    )
    catalog = platform.service("catalog")
    await catalog.migrate()
    async with catalog.unit_of_work() as uow:
        await commands.register_seller(uow, SELLER)
    async with catalog.unit_of_work() as uow:
        product = ProductIn(
            sku="HOT", seller_id="bl-htx", name="Miến dong livestream", unit_weight_g=500, initial_stock=units
        )
        await commands.list_product(uow, product)
    return catalog


async def test_concurrent_transactions_for_the_last_units_never_oversell(database_url, kafka_bootstrap):
    orders, units = 200, 25
    catalog = await catalog_on(database_url, kafka_bootstrap, units=units)
    try:

        async def place(number: int) -> None:
            envelope = order_placed_event(f"race-{number}", [("HOT", "bl-htx", 1)])
            async with catalog.unit_of_work(caused_by=envelope) as uow:
                await handlers.on_order_placed(uow, envelope)

        await asyncio.gather(*(place(n) for n in range(orders)))

        outcomes = list((await reservation_outcomes(catalog)).values())
        assert (outcomes.count("reserved"), outcomes.count("failed")) == (units, orders - units)
        assert await fetch_rows(database_url, "SELECT available, reserved FROM catalog.stock_levels") == [(0, units)]
        failures = await published_by_catalog(catalog, StockReservationFailed.TYPE)
        assert len(failures) == orders - units
        assert {(f["problems"][0]["code"], f["problems"][0]["message"]) for f in failures} == {
            ("out_of_stock", "Hết hàng: Miến dong livestream đã bán hết")
        }
        # The ledger accounts for every unit: what was counted in equals what is free plus what is held.
        [(counted, held)] = await fetch_rows(
            database_url, "SELECT sum(available_change), sum(reserved_change) FROM catalog.stock_movements"
        )
        assert (counted + held, held) == (units, units)
    finally:
        await catalog.stop()


async def test_three_consumer_processes_for_the_last_units_never_oversell(
    database_url, kafka_bootstrap, service_env, start_service
):
    orders, units = 300, 40
    catalog = await catalog_on(database_url, kafka_bootstrap, units=units)
    workers = [await start_service("catalog") for _ in range(3)]  # one consumer group, three members
    await asyncio.gather(*(worker.wait_ready(timeout_s=120) for worker in workers))
    try:
        transport = KafkaTransport(kafka_bootstrap, namespace=service_env["VUONMINH_KAFKA_NAMESPACE"])
        producer = transport.producer(client_id="test-orders")
        await producer.start()
        try:
            events = [order_placed_event(f"live-{n:04d}", [("HOT", "bl-htx", 1)]) for n in range(orders)]
            await producer.send([event.to_record() for event in events])
        finally:
            await producer.stop()
            await transport.close()

        async def all_decided():
            outcomes = await reservation_outcomes(catalog)
            return outcomes if len(outcomes) == orders else None

        outcomes = list((await eventually(all_decided, timeout_s=180)).values())
        assert (outcomes.count("reserved"), outcomes.count("failed")) == (units, orders - units)
        assert await fetch_rows(database_url, "SELECT available, reserved FROM catalog.stock_levels") == [(0, units)]
        # Every process took part: the race really ran in parallel.
        consumed = [await worker.metric("vuonminh_events_consumed_total", outcome="applied") for worker in workers]
        assert all(count > 0 for count in consumed), consumed
        assert sum(consumed) >= orders
        answers = await fetch_rows(
            database_url, "SELECT event_type, payload FROM catalog.outbox WHERE event_type LIKE '%stock_reserv%'"
        )
        assert len(answers) == orders
        assert {json.loads(payload)["order_id"] for _, payload in answers} == {f"live-{n:04d}" for n in range(orders)}
    finally:
        await catalog.stop()


async def test_the_seed_command_loads_the_demo_catalog_once(database_url):
    import os
    import subprocess
    import sys

    from vuonminh.wiring.demo import demo_catalog

    def seed() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "vuonminh.wiring.cli", "seed", "demo"],
            env={**os.environ, "DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    data = demo_catalog()
    first = seed()
    assert f"sellers {len(data['sellers'])}, products {len(data['products'])}" in first
    assert "provincial_shops 0, sellers 0, products 0, listings 0, lots 0" in seed()  # idempotent
    [(products, units)] = await fetch_rows(database_url, "SELECT count(*), sum(available) FROM catalog.stock_levels")
    assert (products, units) == (len(data["products"]), sum(p["initial_stock"] for p in data["products"]))
    [(listed,)] = await fetch_rows(
        database_url, "SELECT count(*) FROM catalog.outbox WHERE event_type = 'vuonminh.catalog.listing_published.v1'"
    )
    assert listed == len(data["listings"])
