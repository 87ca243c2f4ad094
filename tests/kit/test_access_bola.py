"""Object-level access across the four services: each caller sees its own, nothing else (404),
and buyers' personal data is masked for every role but the operator, the selling seller and the
carrier delivering it (OWASP API1 broken object level authorisation, API3 excessive exposure)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from vuonminh.shared.auth import Role
from vuonminh.wiring.testing import (
    auth_headers,
    embedded_client,
    encode,
    eventually,
    order_body,
    seed_catalog,
    signed_headers,
)

PHONE, NAME, LINE = "0912345678", "Nguyễn Thu Hà", "12 Phan Đình Phùng"
SELLER_A = auth_headers(Role.seller, seller_ids={"co-ba-hong"})  # Bình Lư, Lai Châu (12), ward 03390
SELLER_B = auth_headers(Role.seller, seller_ids={"htx-che"})  # Tân Cương, Thái Nguyên (19), ward 05503
BINH_LU = auth_headers(Role.commune_official, ward_codes={"03390"})
TAN_CUONG = auth_headers(Role.commune_official, ward_codes={"05503"})
LAI_CHAU = auth_headers(Role.province_official, province_codes={"12"})
VIETTEL_POST = auth_headers(Role.carrier, carrier="viettel_post")
GHTK = auth_headers(Role.carrier, carrier="ghtk")
SHOP_1 = auth_headers(Role.platform, shop_ids={"shop-1"})


@pytest.fixture
async def stack(tmp_path: Path):
    """Two orders: A's miến dong to a Hà Nội buyer (Viettel Post), B's tea to a Thái Nguyên buyer (GHTK)."""
    async with embedded_client(tmp_path) as (client, platform):
        await seed_catalog(client, platform)
        to_ha_noi = order_body("A-1", shop_id="shop-1")
        to_thai_nguyen = order_body(
            "B-1",
            shop_id="shop-2",
            items=[{"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000}],
        )
        to_thai_nguyen["buyer"]["address"] = {"province_code": "19", "ward_code": "05503", "line": LINE}
        for body in (to_ha_noi, to_thai_nguyen):
            raw = encode(body)
            assert (
                await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))
            ).status_code == 202

        async def shipped():
            found = (await client.get("/v1/shipments")).json()
            return found if len(found) == 2 else None

        shipments = {s["seller_id"]: s for s in await eventually(shipped, timeout_s=30)}
        orders = {o["order_id"]: o for o in (await client.get("/v1/orders")).json()}
        yield client, tmp_path, orders, shipments


async def _ids(client: httpx.AsyncClient, path: str, headers: dict, key: str) -> set[str]:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return {item[key] for item in response.json()}


async def test_a_seller_sees_and_changes_only_its_own_products_and_sellers(stack) -> None:
    client, *_ = stack
    assert await _ids(client, "/v1/products", SELLER_A, "sku") == {"MIEN-DONG-500", "KHOAI-SAM-5KG"}
    assert await _ids(client, "/v1/products", SELLER_B, "sku") == {"CHE-200"}
    assert await _ids(client, "/v1/sellers", SELLER_A, "seller_id") == {"co-ba-hong"}
    # Another seller's objects do not exist for it.
    assert (await client.get("/v1/products/CHE-200", headers=SELLER_A)).status_code == 404
    assert (await client.get("/v1/sellers/htx-che", headers=SELLER_A)).status_code == 404
    assert (await client.get("/v1/products", params={"seller_id": "htx-che"}, headers=SELLER_A)).json() == []
    # Nor can it list products for another seller, or take over another seller's SKU.
    product = {"sku": "CHE-FAKE", "seller_id": "htx-che", "name": "Chè giả", "unit_weight_g": 100}
    response = await client.post("/v1/products", json=product, headers=SELLER_A)
    assert response.status_code == 404 and "htx-che" in response.json()["detail"]
    taken = {"sku": "CHE-200", "seller_id": "co-ba-hong", "name": "Chè", "unit_weight_g": 250}
    response = await client.post("/v1/products", json=taken, headers=SELLER_A)
    assert response.status_code == 409 and "another seller" in response.json()["detail"]
    own = {"sku": "MIEN-DONG-1KG", "seller_id": "co-ba-hong", "name": "Miến dong 1 kg", "unit_weight_g": 1000}
    assert (await client.post("/v1/products", json=own, headers=SELLER_A)).status_code == 201
    # Registering sellers is the operator's.
    seller = {"seller_id": "x", "name": "X", "kind": "household", "province_code": "12", "ward_code": "03390"}
    response = await client.post("/v1/sellers", json=seller, headers=SELLER_A)
    assert response.status_code == 403 and "allowed: operator" in response.json()["detail"]


async def test_a_seller_sees_only_its_orders_and_shipments(stack) -> None:
    client, _, orders, shipments = stack
    assert await _ids(client, "/v1/orders", SELLER_A, "order_id") == {"A-1"}
    assert await _ids(client, "/v1/orders", SELLER_B, "order_id") == {"B-1"}
    assert (await client.get(f"/v1/orders/{orders['B-1']['id']}", headers=SELLER_A)).status_code == 404
    assert (await client.get(f"/v1/orders/{orders['A-1']['id']}", headers=SELLER_A)).status_code == 200
    assert await _ids(client, "/v1/shipments", SELLER_A, "seller_id") == {"co-ba-hong"}
    other = shipments["htx-che"]["id"]
    assert (await client.get(f"/v1/shipments/{other}", headers=SELLER_A)).status_code == 404
    assert (await client.get("/v1/shipments", params={"seller_id": "htx-che"}, headers=SELLER_A)).json() == []


async def test_a_platform_integration_sees_only_its_shops_orders(stack) -> None:
    client, _, orders, _ = stack
    assert await _ids(client, "/v1/orders", SHOP_1, "order_id") == {"A-1"}
    assert (await client.get(f"/v1/orders/{orders['B-1']['id']}", headers=SHOP_1)).status_code == 404
    assert (await client.get("/v1/shipments", headers=SHOP_1)).status_code == 403


async def test_an_official_reads_only_its_commune_or_province(stack) -> None:
    client, _, orders, shipments = stack
    period = {"from": "2026-01-01", "to": "2026-12-31"}
    assert (await client.get("/v1/kpis/communes/03390", params=period, headers=BINH_LU)).status_code == 200
    response = await client.get("/v1/kpis/communes/05503", params=period, headers=BINH_LU)
    assert response.status_code == 404
    assert (await client.get("/v1/kpis/communes/05503", params=period, headers=TAN_CUONG)).status_code == 200
    assert (await client.get("/v1/kpis/communes/03390", params=period, headers=LAI_CHAU)).status_code == 200
    assert (await client.get("/v1/kpis/communes/05503", params=period, headers=LAI_CHAU)).status_code == 404
    assert await _ids(client, "/v1/orders", BINH_LU, "order_id") == {"A-1"}
    assert (await client.get(f"/v1/orders/{orders['B-1']['id']}", headers=BINH_LU)).status_code == 404
    assert await _ids(client, "/v1/shipments", TAN_CUONG, "seller_id") == {"htx-che"}
    assert (await client.get(f"/v1/shipments/{shipments['co-ba-hong']['id']}", headers=TAN_CUONG)).status_code == 404
    assert await _ids(client, "/v1/sellers", LAI_CHAU, "seller_id") == {"co-ba-hong"}
    assert await _ids(client, "/v1/products", TAN_CUONG, "sku") == {"CHE-200"}


async def test_a_carrier_sees_only_the_shipments_it_carries(stack) -> None:
    client, _, _, shipments = stack
    assert {s["carrier"] for s in shipments.values()} == {"viettel_post", "ghtk"}
    assert await _ids(client, "/v1/shipments", VIETTEL_POST, "seller_id") == {"co-ba-hong"}
    assert await _ids(client, "/v1/shipments", GHTK, "seller_id") == {"htx-che"}
    assert (await client.get(f"/v1/shipments/{shipments['htx-che']['id']}", headers=VIETTEL_POST)).status_code == 404
    response = await client.get("/v1/orders", headers=VIETTEL_POST)
    assert response.status_code == 403 and "role carrier may not call this route" in response.json()["detail"]


@pytest.mark.parametrize(
    ("who", "headers", "sees_buyer"),
    [
        ("operator", auth_headers(Role.operator), True),
        ("selling seller", SELLER_A, True),
        ("commune official", BINH_LU, False),
        ("province official", LAI_CHAU, False),
        ("platform integration", SHOP_1, False),
    ],
)
async def test_the_buyer_of_an_order_is_masked_for_whoever_must_not_see_it(stack, who, headers, sees_buyer) -> None:
    client, _, orders, _ = stack
    buyer = (await client.get(f"/v1/orders/{orders['A-1']['id']}", headers=headers)).json()["buyer"]
    if sees_buyer:
        assert (buyer["name"], buyer["phone"], buyer["address"]["line"], buyer["masked"]) == (NAME, PHONE, LINE, False)
    else:
        assert buyer["phone"] == "09******78" and buyer["masked"] is True
        assert buyer["name"] == "N*** T*** H***" and buyer["address"]["line"] == "***"
        assert buyer["address"]["ward_code"] == "00004"  # the codes officials count by stay


@pytest.mark.parametrize(
    ("who", "headers", "sees_recipient"),
    [
        ("operator", auth_headers(Role.operator), True),
        ("selling seller", SELLER_A, True),
        ("its carrier", VIETTEL_POST, True),
        ("commune official", BINH_LU, False),
    ],
)
async def test_a_shipments_recipient_is_shown_to_seller_carrier_and_operator_only(stack, who, headers, sees_recipient):
    client, _, _, shipments = stack
    shipment = (await client.get(f"/v1/shipments/{shipments['co-ba-hong']['id']}", headers=headers)).json()
    recipient = shipment["recipient"]
    assert recipient["masked"] is not sees_recipient
    assert (recipient["phone"] == PHONE) is sees_recipient
    assert recipient["phone"] in (PHONE, "09******78")


async def test_analytics_keeps_no_buyer_data(stack) -> None:
    client, data_dir, *_ = stack

    async def counted():
        kpis = await client.get("/v1/kpis/communes/03390", params={"from": "2026-01-01", "to": "2026-12-31"})
        return kpis.json()["shipments"] == 1

    await eventually(counted, timeout_s=30)
    with sqlite3.connect(data_dir / "analytics.sqlite3") as conn:
        dump = "\n".join(conn.iterdump())
    assert "seller_order_facts" in dump and "A-1" not in dump  # facts are there, by our ids
    for personal in (PHONE, NAME, LINE, "Phan Đình Phùng"):
        assert personal not in dump


async def test_writes_leave_an_audit_trail_naming_who_wrote_what_and_when(stack) -> None:
    client, data_dir, *_ = stack
    seller = auth_headers(Role.seller, seller_ids={"co-ba-hong"}, subject="seller:co-ba-hong", token_id="audit-1")
    product = {"sku": "MIEN-DONG-2KG", "seller_id": "co-ba-hong", "name": "Miến dong 2 kg", "unit_weight_g": 2000}
    assert (await client.post("/v1/products", json=product, headers=seller)).status_code == 201
    refused = {**product, "sku": "X-1", "seller_id": "htx-che"}
    assert (await client.post("/v1/products", json=refused, headers=seller)).status_code == 404
    with sqlite3.connect(data_dir / "catalog.sqlite3") as conn:
        rows = conn.execute(
            "SELECT topic, payload FROM outbox WHERE event_type = 'vuonminh.access.write_audited.v1'"
        ).fetchall()
    trail = [json.loads(payload) for _topic, payload in rows]
    assert {row[0] for row in rows} == {"access.audit"}
    mine = [entry for entry in trail if entry["credential_id"] == "audit-1"]
    assert len(mine) == 1  # the refused write changed nothing and left no entry
    assert mine[0] | {"at": None} == {
        "service": "catalog",
        "action": "list_product",
        "target_type": "product",
        "target_id": "MIEN-DONG-2KG",
        "outcome": "created",
        "actor_role": "seller",
        "actor_subject": "seller:co-ba-hong",
        "credential_id": "audit-1",
        "at": None,
    }
    # The seeding (as the operator) is in the trail too.
    assert {e["target_id"] for e in trail if e["actor_role"] == "operator"} >= {"co-ba-hong", "htx-che", "CHE-200"}


async def test_orders_and_analytics_writes_are_in_the_trail_too(stack) -> None:
    client, data_dir, *_ = stack
    seller = auth_headers(Role.seller, seller_ids={"co-ba-hong"}, subject="seller:co-ba-hong", token_id="audit-2")
    live = {
        "livestream_id": "tet-binh-lu",
        "seller_id": "co-ba-hong",
        "channel": "tiktok_shop",
        "shop_id": "7495001",
        "title": "Miến dong đón Tết",
        "starts_at": "2026-12-20T12:00:00Z",
        "ends_at": "2026-12-20T14:00:00Z",
    }
    assert (await client.post("/v1/livestreams", json=live, headers=seller)).status_code == 201
    target = {"core_sellers_target": 12, "due_on": "2026-12-31"}
    put = await client.put("/v1/kpis/communes/03390/core-seller-target", json=target, headers=LAI_CHAU)
    assert put.status_code == 204
    # Another province's commune: refused, and nothing written or audited.
    assert (
        await client.put("/v1/kpis/communes/05503/core-seller-target", json=target, headers=LAI_CHAU)
    ).status_code == 404

    def trail(service: str) -> list[dict]:
        with sqlite3.connect(data_dir / f"{service}.sqlite3") as conn:
            rows = conn.execute(
                "SELECT payload FROM outbox WHERE event_type = 'vuonminh.access.write_audited.v1'"
            ).fetchall()
        return [json.loads(payload) for (payload,) in rows]

    (livestream,) = [e for e in trail("orders") if e["action"] == "schedule_livestream"]
    assert (livestream["target_id"], livestream["credential_id"]) == ("tet-binh-lu", "audit-2")
    (targets,) = trail("analytics")
    assert (targets["action"], targets["target_id"], targets["actor_role"]) == (
        "set_core_seller_target",
        "03390",
        "province_official",
    )
