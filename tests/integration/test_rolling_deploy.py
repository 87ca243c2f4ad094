"""A producer newer than a consumer (a rolling deploy half done): the consumer holds, never dead-letters."""

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from vuonminh.wiring.testing import dead_letters, encode, eventually, operator_headers, order_body, signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NEWER_TYPE = "vuonminh.orders.order_received.v99"
ORDERS = 30


async def test_an_event_type_newer_than_the_consumer_holds_its_partition_and_is_not_dead_lettered(
    start_service, seed_catalog_via, count_rows, kafka_bootstrap, service_env
):
    namespace = service_env["VUONMINH_KAFKA_NAMESPACE"]
    catalog = await start_service("catalog")
    orders = await start_service("orders", extra_env={"VUONMINH_UNKNOWN_TYPE_HOLD_S": "1"})
    await catalog.wait_ready()
    await orders.wait_ready()
    await seed_catalog_via(catalog)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{namespace}orders.intake",
            key=b"newer-key",
            value=b'{"order_id": "from-a-newer-producer"}',
            partition=0,
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"newer-event-1"),
                ("ce_type", NEWER_TYPE.encode()),
                ("ce_source", b"/vuonminh/orders"),
                ("ce_time", b"2026-11-23T00:00:00+00:00"),
            ],
        )
    finally:
        await producer.stop()

    async with httpx.AsyncClient(headers=operator_headers(), base_url=orders.url) as client:
        for n in range(ORDERS):
            body = encode(order_body(f"ROLLING-{n}"))
            response = await client.post("/v1/webhooks/direct", content=body, headers=signed_headers(body))
            assert response.status_code == 202

        async def holding() -> dict | None:
            body = (await client.get("/readyz")).json()
            consumer = body["checks"]["orders"].get("consumer", "")
            return body if "holding" in consumer and NEWER_TYPE in consumer else None

        readiness = await eventually(holding, timeout_s=30)
        assert any(u.startswith("orders.worker needs consumer") for u in readiness["unready"])

    async def other_partitions_flow() -> bool:
        return await count_rows("SELECT count(*) FROM orders.orders") > 0

    await eventually(other_partitions_flow, timeout_s=30)
    # The keys spread over 3 partitions: those on partition 0 wait behind the hold (all 30 missing it: p < 1e-5).
    assert await count_rows("SELECT count(*) FROM orders.orders") < ORDERS
    assert await orders.metric("vuonminh_consumer_held_partitions", group="vuonminh.orders") == 1
    assert await dead_letters(kafka_bootstrap, namespace, timeout_s=5) == []
