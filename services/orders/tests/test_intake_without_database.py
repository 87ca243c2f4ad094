"""Intake takes orders while orders' database does not answer; a conflict it could not see is recorded."""

import asyncio
import json
from contextlib import asynccontextmanager

from vuonminh.orders import intake
from vuonminh.shared import db
from vuonminh.shared.runtime import ServiceRuntime
from vuonminh.wiring.testing import (
    embedded_client,
    encode,
    eventually,
    metric_value,
    order_body,
    register_shop,
    seed_catalog,
    signed_headers,
)


@asynccontextmanager
async def database_not_answering(runtime: ServiceRuntime):
    """Points intake's reads at a server that accepts connections and never answers, like a
    PostgreSQL stuck in recovery or behind a dead network path."""

    async def hold(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent = db.postgres_engine(f"postgresql://nobody@127.0.0.1:{port}/orders", schema="orders")
    lookup = intake.lookup_of(runtime)
    working_engine, working_reader = runtime.engine, lookup.reader
    runtime.engine, lookup.reader = silent, db.PointReader(silent, schema="orders")
    try:
        yield
    finally:
        await lookup.reader.close()
        runtime.engine, lookup.reader = working_engine, working_reader
        await silent.dispose()
        server.close()


async def _post(client, body: dict, secret: str):
    raw = encode(body)
    return await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw, secret))


async def _lookups(client) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    return {
        outcome: metric_value(text, "vuonminh_intake_order_lookups_total", outcome=outcome)
        for outcome in ("failed", "skipped", "not_final_in_memory")
    }


async def _conflicts(client) -> float:
    text = (await client.get("/metrics")).text
    return metric_value(text, "vuonminh_order_conflicts_total", channel="direct", detected_by="consumer")


async def _order(client, order_id: str):
    found = (await client.get("/v1/orders", params={"order_id": order_id})).json()
    return found[0] if found and found[0]["status"] in ("placed", "confirmed") else None


async def test_a_registered_shop_is_answered_202_while_the_database_does_not_answer(tmp_path):
    async with embedded_client(tmp_path, direct_secret=None, intake_lookup_timeout_s=0.3) as (client, platform):
        await seed_catalog(client, platform)
        secret = await register_shop(platform, "tts-binh-lu")
        orders = platform.service("orders")
        before = await _lookups(client)

        async with database_not_answering(orders):
            first = await _post(client, order_body("DOWN-1", shop_id="tts-binh-lu"), secret)
            second = await _post(client, order_body("DOWN-2", shop_id="tts-binh-lu"), secret)
            unknown = await _post(client, order_body("DOWN-3", shop_id="nobody"), secret)

        assert (first.status_code, second.status_code) == (202, 202)
        assert unknown.status_code == 401
        after = await _lookups(client)
        # New orders are not among the final ones intake holds in memory: no read, nothing to wait for.
        assert after["not_final_in_memory"] - before["not_final_in_memory"] == 2
        assert after["failed"] == before["failed"] and after["skipped"] == before["skipped"]
        assert await eventually(lambda: _order(client, "DOWN-2"))


async def test_a_conflicting_version_intake_could_not_check_is_recorded_on_the_order(tmp_path):
    async with embedded_client(tmp_path, intake_lookup_timeout_s=0.3) as (client, platform):
        await seed_catalog(client, platform)
        from vuonminh.wiring.testing import TEST_SECRET

        assert (await _post(client, order_body("CONFLICT-1"), TEST_SECRET)).status_code == 202
        placed = await eventually(lambda: _order(client, "CONFLICT-1"))
        changed = order_body("CONFLICT-1", items=[{"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000}])

        conflicts_before = await _conflicts(client)
        async with database_not_answering(platform.service("orders")):
            accepted = await _post(client, changed, TEST_SECRET)
            raw_again = json.dumps(changed, indent=1).encode()  # the same version, re-serialised
            again = await client.post("/v1/webhooks/direct", content=raw_again, headers=signed_headers(raw_again))
        assert accepted.status_code == 202 and again.status_code == 202
        assert (await _post(client, order_body("CONFLICT-MARK"), TEST_SECRET)).status_code == 202
        await eventually(lambda: _order(client, "CONFLICT-MARK"))  # one partition: both versions came first

        async def recorded():
            order = (await client.get(f"/v1/orders/{placed['id']}")).json()
            return order if order["conflicts"] else None

        order = await eventually(recorded)
        assert len(order["conflicts"]) == 1  # the same conflicting version twice is one conflict
        assert order["conflicts"][0]["event_id"] == accepted.json()["event_id"]
        assert order["conflicts"][0]["differs"] == ["items[0].sku", "items[0].quantity", "items[0].unit_price_vnd"]
        # The placed version stands.
        assert order["lines"] == placed["lines"] and order["status"] in ("placed", "confirmed")
        assert await _conflicts(client) == conflicts_before + 1
