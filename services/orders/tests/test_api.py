"""orders' API on the embedded platform, through its ASGI app."""

import json
import time

import pytest

from vuonminh.orders.intake import lookup_of
from vuonminh.wiring.testing import embedded_client, encode, eventually, order_body, seed_catalog, signed_headers


@pytest.fixture
async def client(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        await seed_catalog(client, platform)
        client.platform = platform
        yield client


async def _orders(client, order_id):
    response = await client.get("/v1/orders", params={"shop_id": "shop-1", "order_id": order_id})
    assert response.status_code == 200
    return response.json()


async def _confirmed(client, order_id):
    found = await _orders(client, order_id)
    return found if found and found[0]["status"] == "confirmed" else None


async def test_a_signed_order_is_accepted_then_stored(client):
    body = encode(order_body("TT-1"))

    response = await client.post("/v1/webhooks/direct", content=body, headers=signed_headers(body))

    assert response.status_code == 202
    orders = await eventually(lambda: _orders(client, "TT-1"))
    assert len(orders) == 1 and orders[0]["status"] in ("placed", "confirmed")
    assert orders[0]["total_vnd"] == 130000 and orders[0]["total_weight_g"] == 1000
    one = await client.get(f"/v1/orders/{orders[0]['id']}")
    assert one.status_code == 200 and one.json()["lines"][0]["seller_id"] == "co-ba-hong"


async def test_the_same_order_sent_again_is_acknowledged_and_changes_nothing(client):
    body = order_body("TT-2")
    raw = encode(body)
    for _ in range(3):
        assert (await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))).status_code == 202
    first = (await eventually(lambda: _confirmed(client, "TT-2")))[0]  # catalog reserved its stock
    # The shop re-serialises the same order: other bytes, same content.
    reserialised = json.dumps(body, indent=2, sort_keys=True).encode()
    again = await client.post("/v1/webhooks/direct", content=reserialised, headers=signed_headers(reserialised))
    assert again.status_code == 202
    marker = encode(order_body("TT-2-after"))
    await client.post("/v1/webhooks/direct", content=marker, headers=signed_headers(marker))

    await eventually(lambda: _orders(client, "TT-2-after"))
    orders = await _orders(client, "TT-2")

    assert orders == [first]  # one order, unchanged, no conflict recorded


async def test_a_placed_order_sent_with_other_content_gets_409_naming_what_differs(client):
    raw = encode(order_body("TT-2B"))
    assert (await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))).status_code == 202
    placed = (await eventually(lambda: _confirmed(client, "TT-2B")))[0]
    # Intake knows final orders from memory (no read per webhook): wait for its pass that saw this one.
    lookup = lookup_of(client.platform.service("orders"))

    async def known() -> bool:
        return "direct:shop-1:TT-2B" in lookup.final_keys

    await eventually(known)
    changed = order_body("TT-2B", items=[{"sku": "MIEN-DONG-500", "quantity": 9, "unit_price_vnd": 65000}])
    changed["buyer"]["phone"] = "0987654321"
    raw_changed = encode(changed)

    response = await client.post("/v1/webhooks/direct", content=raw_changed, headers=signed_headers(raw_changed))

    assert response.status_code == 409
    assert response.json()["differs"] == ["buyer.phone", "items[0].quantity"]
    assert response.json()["order_id"] == placed["id"]
    assert "already placed" in response.json()["detail"]
    assert (await _orders(client, "TT-2B")) == [placed]


async def test_an_unknown_sku_parks_the_order_naming_it(client):
    body = encode(order_body("TT-3", items=[{"sku": "NOT-SOLD-HERE", "quantity": 1, "unit_price_vnd": 1000}]))
    assert (await client.post("/v1/webhooks/direct", content=body, headers=signed_headers(body))).status_code == 202

    orders = await eventually(lambda: _orders(client, "TT-3"))

    assert orders[0]["status"] == "awaiting_catalog"
    assert orders[0]["awaiting_catalog"]["skus"] == ["NOT-SOLD-HERE"]
    assert orders[0]["awaiting_catalog"]["seller_ids"] == []
    assert orders[0]["rejection_reasons"] == [] and orders[0]["lines"] == []
    parked = await client.get("/v1/orders", params={"status": "awaiting_catalog"})
    assert [order["order_id"] for order in parked.json()] == ["TT-3"]


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"content-type": "application/json"}, "missing"),
        ({"X-VuonMinh-Signature": "t=1,v1=00"}, "replay"),
        ({"X-VuonMinh-Signature": f"t={int(time.time())},v1={'0' * 64}"}, "does not match"),
    ],
)
async def test_bad_signatures_get_401(client, headers, fragment):
    response = await client.post("/v1/webhooks/direct", content=encode(order_body("TT-4")), headers=headers)
    assert response.status_code == 401
    assert fragment in response.json()["detail"]


@pytest.mark.parametrize(
    ("mutate", "loc"),
    [
        (lambda b: b.pop("shop_id"), ["shop_id"]),
        (lambda b: b["items"][0].update(quantity=0), ["items", 0, "quantity"]),
        (lambda b: b["items"][0].update(unit_price_vnd=12.5), ["items", 0, "unit_price_vnd"]),
        (lambda b: b.update(placed_at="2026-11-20T09:15:00"), ["placed_at"]),
        (lambda b: b["payment"].update(method="crypto"), ["payment", "method"]),
        (lambda b: b.update(items=[]), ["items"]),
        (lambda b: b["buyer"]["address"].update(ward_code="99999"), ["buyer", "address", "ward_code"]),
        (lambda b: b["buyer"]["address"].update(province_code="19"), ["buyer", "address", "ward_code"]),
    ],
)
async def test_malformed_orders_get_422_naming_the_field(client, mutate, loc):
    body = order_body("TT-5")
    mutate(body)
    raw = encode(body)

    response = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


async def test_invalid_json_gets_422(client):
    raw = b'{"shop_id": '
    response = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
    assert response.status_code == 422


async def test_a_body_over_256_kib_gets_413(client):
    raw = encode(order_body("TT-6", buyer={"name": "x" * (300 * 1024)}))
    response = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
    assert response.status_code == 413


async def test_a_chunked_body_over_256_kib_gets_413(client):
    async def chunks():
        for _ in range(40):
            yield b"x" * 8192

    response = await client.post("/v1/webhooks/direct", content=chunks(), headers={"X-VuonMinh-Signature": "t=1,v1=0"})
    assert response.status_code == 413


async def test_unknown_order_id_is_404(client):
    response = await client.get("/v1/orders/nope")
    assert response.status_code == 404 and "not found" in response.json()["detail"]


async def test_when_the_log_is_unavailable_the_shop_is_told_to_retry_and_nothing_is_kept(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        await seed_catalog(client, platform)
        orders = platform.service("orders")
        working_send = orders.producer.send

        async def broken_send(records):
            raise ConnectionError("log unreachable")

        orders.producer.send = broken_send
        raw = encode(order_body("TT-DOWN"))
        refused = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
        orders.producer.send = working_send
        retried = await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))

        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert retried.status_code == 202
        stored = await eventually(lambda: _orders(client, "TT-DOWN"))
        assert len(stored) == 1
