"""Liveness, readiness, metrics and API docs of the embedded platform."""

import json
import re

from vuonminh.wiring.testing import embedded_client, encode, eventually, order_body, seed_catalog, signed_headers


async def _ready(client):
    async def ready():
        response = await client.get("/readyz")
        return response if response.status_code == 200 else None

    return (await eventually(ready)).json()


async def test_ready_once_every_database_answers_and_every_consumer_polls(tmp_path):
    async with embedded_client(tmp_path) as (client, _platform):
        body = await _ready(client)
        assert body["mode"] == "embedded"
        assert body["role"] == "all" and body["unready"] == []
        for service in ("catalog", "orders", "logistics", "analytics"):  # every one consumes now
            assert body["checks"][service] == {"database": "ok", "log": "ok", "consumer": "ok"}, service
        assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_not_ready_when_a_database_is_gone(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        await _ready(client)
        await platform.service("logistics").engine.dispose()
        # A directory where the database file was: no connection can open it.
        (tmp_path / "logistics.sqlite3").unlink()
        (tmp_path / "logistics.sqlite3").mkdir()

        response = await client.get("/readyz")

        assert response.status_code == 503
        body = response.json()
        assert body["checks"]["logistics"]["database"].startswith("unreachable")
        assert "logistics.api needs database" in body["unready"]
        assert any(u.startswith("logistics.worker needs") and "database" in u for u in body["unready"])
        assert not any(u.startswith("orders.") for u in body["unready"])  # orders' own database is fine


async def test_metrics_count_webhooks_and_consumed_events(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        await seed_catalog(client, platform)
        raw = encode(order_body("M-1"))
        await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
        await client.post("/v1/webhooks/direct", content=raw, headers={"X-VuonMinh-Signature": "t=1,v1=0"})

        placed_applied = (
            'vuonminh_events_consumed_total{event_type="vuonminh.orders.order_placed.v1",'
            'group="vuonminh.logistics",outcome="applied"}'
        )

        async def counted():
            text = (await client.get("/metrics")).text
            return text if placed_applied in text else None

        text = await eventually(counted)
        assert 'vuonminh_webhooks_total{channel="direct",status="202"}' in text
        assert 'vuonminh_webhooks_total{channel="direct",status="401"}' in text


async def test_the_api_is_described_for_its_users(tmp_path):
    async with embedded_client(tmp_path) as (client, _platform):
        schema = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")

    assert docs.status_code == 200
    assert {
        "/v1/webhooks/direct",
        "/v1/orders",
        "/v1/orders/{id}",
        "/v1/sellers",
        "/v1/products",
        "/v1/shipments",
        "/v1/kpis/communes/{ward_code}",
        "/healthz",
        "/readyz",
    } <= set(schema["paths"])
    webhook_body = schema["paths"]["/v1/webhooks/direct"]["post"]["requestBody"]["content"]["application/json"]
    assert webhook_body["schema"]["$ref"] == "#/components/schemas/DirectOrderWebhook"
    body_schema = schema["components"]["schemas"]["DirectOrderWebhook"]
    assert {"shop_id", "order_id", "placed_at", "buyer", "items", "payment"} <= set(body_schema["properties"])
    assert "Buyer" in schema["components"]["schemas"]
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(schema)))
    assert refs <= set(schema["components"]["schemas"])  # every reference resolves
