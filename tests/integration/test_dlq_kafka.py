"""`vuonminh dlq` against the real Kafka: records a consumer cannot handle are parked on
`<topic>.dlq`, listed by group and topic, shown, and replayed into their topic once the cause is
mended; the groups that had applied the event skip the replay (inbox), and replaying the same
dead letter again is reported instead of sent."""

import asyncio
import json
import os
import sys

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from vuonminh.shared.dlq import DeadLetters, KafkaDeadLetterLog
from vuonminh.wiring.testing import asyncpg_dsn, encode, eventually, operator_headers, order_body, signed_headers

pytestmark = pytest.mark.integration

ORDER_PLACED = "vuonminh.orders.order_placed.v1"


async def _sql(database_url: str, statement: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def test_dead_letters_are_listed_shown_and_replayed_on_kafka(
    start_stack, seed_catalog_via, count_rows, service_env, database_url
):
    namespace = service_env["VUONMINH_KAFKA_NAMESPACE"]
    bootstrap = service_env["KAFKA_BOOTSTRAP_SERVERS"]
    stack = await start_stack()
    await seed_catalog_via(stack["catalog"])
    # A fault an operator can mend: a constraint that refuses big sales in analytics' table.
    await _sql(
        database_url,
        "ALTER TABLE analytics.seller_order_facts ADD CONSTRAINT block_big_sales CHECK (gmv_vnd < 1000000)",
    )
    big = encode(order_body("BIG-1", items=[{"sku": "MIEN-DONG-500", "quantity": 20, "unit_price_vnd": 65000}]))
    async with httpx.AsyncClient(headers=operator_headers(), base_url=stack["orders"].url) as orders:
        for raw in (big, encode(order_body("SMALL-1"))):
            assert (
                await orders.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
            ).status_code == 202
    # And a record that is no event at all: every group reading the topic (catalog, logistics,
    # analytics) parks it.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    await producer.send_and_wait(namespace + "orders.orders", b"not json", key=b"junk")
    await producer.stop()

    box = DeadLetters(KafkaDeadLetterLog(bootstrap, namespace=namespace))

    async def parked():
        found = await box.load(["orders.orders"])
        return found if len(found) == 4 else None

    dead_letters = await eventually(parked, timeout_s=60, interval_s=0.5)
    refused = [d for d in dead_letters if d.event_type == ORDER_PLACED]
    assert len(refused) == 1 and refused[0].group == "vuonminh.analytics"
    assert "block_big_sales" in refused[0].error
    assert {d.group for d in dead_letters if d.event_type is None} == {
        "vuonminh.analytics",
        "vuonminh.logistics",
        "vuonminh.catalog",
    }
    assert await stack["analytics"].metric("vuonminh_dead_lettered_total", group="vuonminh.analytics") == 2
    assert await stack["logistics"].metric("vuonminh_dead_lettered_total", topic="orders.orders") == 1

    env = {**os.environ, **service_env}

    async def vuonminh(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vuonminh.wiring.cli",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        return process.returncode, out.decode(), err.decode()

    code, out, err = await vuonminh("dlq", "list", "--json", "--group", "analytics")
    assert code == 0, err
    assert f"Kafka at {bootstrap} (namespace '{namespace}')" in err
    assert sorted(json.loads(line)["ref"] for line in out.splitlines()) == sorted(
        d.ref for d in dead_letters if d.group == "vuonminh.analytics"
    )
    code, out, _ = await vuonminh("dlq", "list", "--event-id", refused[0].event_id, "--since", "1h")
    assert code == 0 and refused[0].ref in out and len(out.strip().splitlines()) == 2  # header + one row
    code, out, err = await vuonminh("dlq", "show", refused[0].ref)
    assert code == 0, err
    assert "block_big_sales" in out and "dlq_original_topic: orders.orders" in out

    # The operator mends the table and replays what analytics parked with an order event.
    await _sql(database_url, "ALTER TABLE analytics.seller_order_facts DROP CONSTRAINT block_big_sales")
    code, out, err = await vuonminh("dlq", "replay", "--group", "analytics", "--event-id", refused[0].event_id)
    assert code == 0, err
    assert f"replayed {refused[0].ref} -> orders.orders" in out and "1 replayed" in out

    order_id = json.loads(refused[0].value)["order_id"]

    async def counted() -> bool:
        return await count_rows("SELECT count(*) FROM analytics.seller_order_facts WHERE order_id = $1", order_id) == 1

    await eventually(counted, timeout_s=60, interval_s=0.2)

    async def logistics_skipped_it() -> bool:
        return (
            await stack["logistics"].metric(
                "vuonminh_events_consumed_total",
                group="vuonminh.logistics",
                event_type=ORDER_PLACED,
                outcome="duplicate",
            )
            == 1
        )

    await eventually(logistics_skipped_it, timeout_s=60, interval_s=0.2)
    assert await count_rows("SELECT count(*) FROM logistics.shipments WHERE order_id = $1", order_id) == 1

    # Replaying it again is reported, not sent.
    code, out, err = await vuonminh("dlq", "replay", refused[0].ref)
    assert code == 0, err
    assert f"skipped {refused[0].ref}: already replayed" in out and "0 replayed" in out
    replayed = [d for d in await box.load(["orders.orders"]) if d.ref == refused[0].ref]
    assert len(replayed) == 1 and len(replayed[0].replays) == 1
    await box.log.close()
