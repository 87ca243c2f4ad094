"""The carrier simulator drives logistics on Kafka and PostgreSQL: it reads the per-carrier dispatch
topics, sends each carrier's own callbacks over HTTP (repeats and swaps included), and every shipment
ends where its carrier says, each move applied and published once."""

import asyncio

import httpx
import pytest

from vuonminh.shared.transport.kafka import KafkaTransport
from vuonminh.wiring.carrier_simulator import CarrierSecrets, CarrierSimulator, Noise
from vuonminh.wiring.testing import encode, eventually, operator_headers, order_body, signed_headers

pytestmark = pytest.mark.integration

BUYERS = [("12", "03478"), ("01", "00004"), ("19", "05503")]


async def test_simulated_carriers_on_kafka_and_postgres(start_service, seed_catalog_via, count_rows, service_env):
    secrets = CarrierSecrets()
    catalog, orders, logistics = await asyncio.gather(
        start_service("catalog"), start_service("orders"), start_service("logistics", extra_env=secrets.env())
    )
    await asyncio.gather(catalog.wait_ready(), orders.wait_ready(), logistics.wait_ready())
    await seed_catalog_via(catalog)

    transport = KafkaTransport(
        service_env["KAFKA_BOOTSTRAP_SERVERS"], namespace=service_env["VUONMINH_KAFKA_NAMESPACE"]
    )
    async with httpx.AsyncClient(base_url=logistics.url, timeout=10) as callbacks:
        simulator = CarrierSimulator(callbacks, secrets=secrets, noise=Noise(0.3, 0.4, 0.4), step_s=0.05, seed=5)
        consuming = asyncio.create_task(simulator.consume(transport))
        try:
            async with httpx.AsyncClient(headers=operator_headers(), base_url=orders.url) as client:
                for n in range(12):
                    province, ward = BUYERS[n % len(BUYERS)]
                    body = order_body(
                        f"CAR-{n:02d}", items=[{"sku": "MIEN-DONG-500", "quantity": 1, "unit_price_vnd": 65000}]
                    )
                    body["buyer"]["address"].update(province_code=province, ward_code=ward)
                    raw = encode(body)
                    assert (
                        await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
                    ).status_code == 202

            async def all_taken() -> bool:
                return len(simulator.parcels) == 12

            await eventually(all_taken, timeout_s=90)
            await simulator.settle(timeout_s=90)
        finally:
            consuming.cancel()
            await asyncio.gather(consuming, return_exceptions=True)
            await simulator.close()
            await transport.close()

    assert set(simulator.answers) == {200}
    delivered = sum(1 for p in simulator.parcels.values() if p.final_step == "delivered")
    returned = len(simulator.parcels) - delivered
    assert await count_rows("SELECT count(*) FROM logistics.shipments WHERE status = 'delivered'") == delivered
    assert await count_rows("SELECT count(*) FROM logistics.shipments WHERE status = 'returned'") == returned
    assert await count_rows("SELECT count(*) FROM logistics.carrier_callbacks") == simulator.callbacks_sent
    applied = await count_rows("SELECT count(*) FROM logistics.carrier_callbacks WHERE outcome = 'applied'")
    published = await count_rows(
        "SELECT count(*) FROM logistics.outbox WHERE event_type = 'vuonminh.logistics.shipment_status_changed.v1'"
    )
    assert applied == published > 0  # every move published once, the repeats and late ones never
    assert await count_rows("SELECT count(*) FROM logistics.carrier_callbacks WHERE outcome = 'duplicate'") > 0

    # orders follows the shipments: delivered orders are delivered there too.
    async def orders_follow() -> bool:
        return await count_rows("SELECT count(*) FROM orders.orders WHERE status = 'delivered'") == delivered

    await eventually(orders_follow, timeout_s=60)
