"""Kill -9 services between an effect and its acknowledgement; every effect happens once.

The crash points (VUONMINH_CRASH_POINT, see shared/faults.py) make the process SIGKILL itself
at the worst moment: after the consumer committed its effects to PostgreSQL but before it
committed the offsets to Kafka, or after the outbox relay sent events but before it marked
them sent. Both leave work that will be delivered again.
"""

import asyncio
import signal

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from vuonminh.wiring.testing import encode, eventually, operator_headers, order_body, signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORDERS = 6
TWO_SELLERS = [
    {"sku": "MIEN-DONG-500", "quantity": 2, "unit_price_vnd": 65000},
    {"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000},
]


async def _send(stack, prefix):
    async with httpx.AsyncClient(headers=operator_headers(), base_url=stack["orders"].url) as orders:
        for n in range(ORDERS):
            body = encode(order_body(f"{prefix}-{n}", items=TWO_SELLERS))
            # Like a shop, retry until acknowledged: orders may be down for a restart.
            for _attempt in range(120):
                try:
                    response = await orders.post("/v1/webhooks/direct", content=body, headers=signed_headers(body))
                    if response.status_code == 202:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.25)
            else:
                raise AssertionError(f"order {prefix}-{n} was never acknowledged")


async def _assert_every_effect_once(count_rows):
    async def all_counted():
        return await count_rows("SELECT count(*) FROM analytics.shipment_facts") == 2 * ORDERS

    await eventually(all_counted, timeout_s=60)
    await asyncio.sleep(1)  # anything still in flight would show up as an extra row
    assert await count_rows("SELECT count(*) FROM orders.orders") == ORDERS
    assert await count_rows("SELECT count(*) FROM logistics.shipments") == 2 * ORDERS
    # Per shipment: its dispatch event and the carrier's create-order request, once each.
    for event_type in ("vuonminh.logistics.shipment_dispatched.v1", "vuonminh.logistics.%_dispatch_requested.v1"):
        assert (
            await count_rows("SELECT count(*) FROM logistics.outbox WHERE event_type LIKE $1", event_type) == 2 * ORDERS
        )
    assert await count_rows("SELECT count(*) FROM analytics.seller_order_facts") == 2 * ORDERS
    assert await count_rows("SELECT count(*) FROM analytics.shipment_facts") == 2 * ORDERS


async def test_consumer_killed_after_its_effect_before_its_offset_commit(
    start_stack, start_service, seed_catalog_via, count_rows
):
    stack = await start_stack(crash=("logistics", "vuonminh.logistics:after-effect-before-commit"))
    await seed_catalog_via(stack["catalog"])

    await _send(stack, "KILL-CONSUMER")

    assert await stack["logistics"].wait_exit(timeout_s=60) == -signal.SIGKILL
    # The effect was committed, the offset was not: the placed orders kept (or already shipped).
    effects_before_restart = await count_rows(
        "SELECT (SELECT count(*) FROM logistics.awaiting_confirmation) + (SELECT count(*) FROM logistics.shipments)"
    )
    assert effects_before_restart > 0
    restarted = await start_service("logistics")
    await restarted.wait_ready()
    await _assert_every_effect_once(count_rows)
    # The redelivered records were recognised by the inbox, not re-applied.
    duplicates = await restarted.metric(
        "vuonminh_events_consumed_total", group="vuonminh.logistics", outcome="duplicate"
    )
    assert duplicates >= 1


async def test_outbox_relay_killed_after_sending_before_marking(
    start_stack, start_service, seed_catalog_via, count_rows
):
    stack = await start_stack(crash=("orders", "orders:outbox-after-send-before-mark"))
    await seed_catalog_via(stack["catalog"])

    sending = asyncio.create_task(_send(stack, "KILL-RELAY"))

    assert await stack["orders"].wait_exit(timeout_s=60) == -signal.SIGKILL
    restarted = await start_service("orders", port=stack["orders"].port)
    await restarted.wait_ready()
    await sending
    # The accepted webhooks were in Kafka all along; the restarted orders finishes them and
    # publishes the unmarked outbox rows a second time.
    await _assert_every_effect_once(count_rows)
    duplicates = await stack["logistics"].metric(
        "vuonminh_events_consumed_total", group="vuonminh.logistics", outcome="duplicate"
    )
    assert duplicates >= 1


async def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_consumer_moves_on(
    start_stack, seed_catalog_via, count_rows, kafka_bootstrap, service_env
):
    namespace = service_env["VUONMINH_KAFKA_NAMESPACE"]
    stack = await start_stack(("catalog", "orders"))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(f"{namespace}orders.intake", key=b"x", value=b"\x00 not an event")
    finally:
        await producer.stop()

    await seed_catalog_via(stack["catalog"])
    await _send(stack, "AFTER-POISON")

    async def all_stored():
        return await count_rows("SELECT count(*) FROM orders.orders") == ORDERS

    await eventually(all_stored, timeout_s=30)
    consumer = AIOKafkaConsumer(
        f"{namespace}orders.intake.dlq", bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    parked = [m for messages in batches.values() for m in messages]
    assert [m.value for m in parked] == [b"\x00 not an event"]
    headers = {k: v.decode() for k, v in parked[0].headers}
    assert headers["dlq_consumer_group"] == "vuonminh.orders"
    assert "not a CloudEvent" in headers["dlq_error"]


async def test_consumer_killed_in_the_middle_of_a_batch(start_stack, start_service, seed_catalog_via, count_rows):
    # logistics starts after a backlog exists, so its first poll brings several records per partition.
    stack = await start_stack(("catalog", "orders", "analytics"))
    await seed_catalog_via(stack["catalog"])
    await _send(stack, "KILL-MID-BATCH")

    async def all_decided():
        return await count_rows("SELECT count(*) FROM orders.outbox WHERE published_at IS NOT NULL") >= ORDERS

    await eventually(all_decided, timeout_s=60)
    logistics = await start_service("logistics", extra_env={"VUONMINH_CRASH_POINT": "vuonminh.logistics:mid-batch"})

    assert await logistics.wait_exit(timeout_s=60) == -signal.SIGKILL
    # The batch's transaction never committed: nothing of it is there.
    assert await count_rows("SELECT count(*) FROM logistics.processed_events") == 0
    restarted = await start_service("logistics")
    await restarted.wait_ready()
    await _assert_every_effect_once(count_rows)
