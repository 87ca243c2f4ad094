"""The stock step of the order saga on the embedded platform: events fed to catalog's consumer
through the local log, and the race for the last units through concurrent transactions."""

import asyncio

import pytest

from vuonminh.catalog import handlers
from vuonminh.shared.events import StockReservationFailed, StockReserved
from vuonminh.wiring.testing import (
    embedded_client,
    eventually,
    order_cancelled_event,
    order_placed_event,
    published_by_catalog,
    reservation_outcomes,
    shipment_picked_up_event,
)

SELLERS = [
    {
        "seller_id": "bl-htx",
        "name": "HTX Miến dong Bình Lư",
        "kind": "cooperative",
        "province_code": "12",
        "ward_code": "03390",
    },
    {
        "seller_id": "sh-htx",
        "name": "HTX Khoai sâm Sìn Hồ",
        "kind": "cooperative",
        "province_code": "12",
        "ward_code": "03478",
    },
]


@pytest.fixture
async def stack(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        for seller in SELLERS:
            assert (await client.post("/v1/sellers", json=seller)).status_code == 201
        for sku, seller, stock in (("MIEN", "bl-htx", 10), ("KHOAI", "sh-htx", 5), ("HOT", "bl-htx", 7)):
            product = {
                "sku": sku,
                "seller_id": seller,
                "name": sku.title(),
                "unit_weight_g": 500,
                "initial_stock": stock,
            }
            assert (await client.post("/v1/products", json=product)).status_code == 201
        yield client, platform


async def feed(platform, *envelopes):
    """Appends events to the log as their producers would; catalog's consumer takes them from there."""
    await platform.service("orders").producer.send([envelope.to_record() for envelope in envelopes])


async def stock_of(client, sku):
    body = (await client.get(f"/v1/products/{sku}/stock")).json()
    return body["available"], body["reserved"]


async def decided(platform, count):
    async def enough():
        outcomes = await reservation_outcomes(platform.service("catalog"))
        return outcomes if len(outcomes) >= count else None

    return await eventually(enough, timeout_s=30)


async def test_an_order_reserves_then_its_sellers_shipments_take_the_units(stack):
    client, platform = stack
    placed = order_placed_event("o-1", [("MIEN", "bl-htx", 3), ("KHOAI", "sh-htx", 2), ("MIEN", "bl-htx", 1)])
    await feed(platform, placed, placed)  # delivered twice: applied once

    assert await decided(platform, 1) == {"o-1": "reserved"}
    assert await stock_of(client, "MIEN") == (6, 4) and await stock_of(client, "KHOAI") == (3, 2)
    [reserved] = await published_by_catalog(platform.service("catalog"), StockReserved.TYPE)
    assert reserved["order_id"] == "o-1" and reserved["lines"] == [
        {"sku": "KHOAI", "quantity": 2},
        {"sku": "MIEN", "quantity": 4},
    ]

    # One shipment per seller: Bình Lư's parcel is picked up first, then Sìn Hồ's.
    bl_pickup = shipment_picked_up_event("o-1", "bl-htx")
    await feed(platform, shipment_picked_up_event("o-1", "bl-htx", status="in_transit"), bl_pickup, bl_pickup)

    async def bl_shipped():
        return await stock_of(client, "MIEN") == (6, 0)

    await eventually(bl_shipped)
    assert await stock_of(client, "KHOAI") == (3, 2)
    await feed(platform, shipment_picked_up_event("o-1", "sh-htx"))

    async def all_shipped():
        return await stock_of(client, "KHOAI") == (3, 0)

    await eventually(all_shipped)
    # A cancellation after pickup gives back nothing that already left.
    await feed(platform, order_cancelled_event("o-1"))
    await eventually(lambda: _outcome_is(platform, "o-1", "released"))
    assert await stock_of(client, "MIEN") == (6, 0) and await stock_of(client, "KHOAI") == (3, 0)

    ledger = (await client.get("/v1/products/MIEN/stock")).json()["movements"]
    assert [(m["kind"], m["available_change"], m["reserved_change"], m["order_id"]) for m in ledger] == [
        ("adjustment", 10, 0, None),
        ("reservation", -4, 4, "o-1"),
        ("shipment", 0, -4, "o-1"),
    ]


async def _outcome_is(platform, order_id, outcome):
    return (await reservation_outcomes(platform.service("catalog"))).get(order_id) == outcome


async def test_a_cancelled_order_gives_its_units_back(stack):
    client, platform = stack
    await feed(platform, order_placed_event("o-2", [("KHOAI", "sh-htx", 5)]))
    await decided(platform, 1)
    assert await stock_of(client, "KHOAI") == (0, 5)
    cancelled = order_cancelled_event("o-2")
    await feed(platform, cancelled, cancelled)

    async def released():
        return await stock_of(client, "KHOAI") == (5, 0)

    await eventually(released)
    assert await _outcome_is(platform, "o-2", "released")
    kinds = [m["kind"] for m in (await client.get("/v1/products/KHOAI/stock")).json()["movements"]]
    assert kinds == ["adjustment", "reservation", "release"]


async def test_nothing_is_held_when_one_line_cannot_be(stack):
    client, platform = stack
    await feed(platform, order_placed_event("o-3", [("MIEN", "bl-htx", 2), ("KHOAI", "sh-htx", 6), ("NOPE", "x", 1)]))
    assert await decided(platform, 1) == {"o-3": "failed"}
    assert await stock_of(client, "MIEN") == (10, 0) and await stock_of(client, "KHOAI") == (5, 0)
    [failed] = await published_by_catalog(platform.service("catalog"), StockReservationFailed.TYPE)
    assert [(p["sku"], p["code"], p["requested"], p["available"]) for p in failed["problems"]] == [
        ("KHOAI", "out_of_stock", 6, 5),
        ("NOPE", "not_orderable", 1, 0),
    ]
    assert failed["problems"][0]["message"] == "Không đủ hàng: Khoai chỉ còn 5, đơn đặt 6"


async def test_an_out_of_season_product_is_refused_as_not_orderable(stack):
    client, platform = stack
    product = await client.get("/v1/products/MIEN")
    edit = {"version": product.json()["version"], "season_starts_on": "2027-01-20", "season_ends_on": "2027-02-12"}
    assert (await client.patch("/v1/products/MIEN", json=edit)).status_code == 200
    await feed(
        platform,
        order_placed_event("in-season", [("MIEN", "bl-htx", 1)], placed_at="2027-02-01T03:00:00Z"),
        order_placed_event("too-late", [("MIEN", "bl-htx", 1)], placed_at="2027-02-12T17:30:00Z"),  # 13/02 in Vietnam
    )
    assert await decided(platform, 2) == {"in-season": "reserved", "too-late": "failed"}
    [failed] = await published_by_catalog(platform.service("catalog"), StockReservationFailed.TYPE)
    assert failed["problems"][0]["code"] == "not_orderable" and "ngoài mùa vụ" in failed["problems"][0]["message"]


async def test_a_rejected_order_placed_again_is_tried_again(stack):
    client, platform = stack
    await feed(platform, order_placed_event("o-4", [("KHOAI", "sh-htx", 9)]))
    assert await decided(platform, 1) == {"o-4": "failed"}
    await client.post("/v1/products/KHOAI/stock", json={"change": 4, "reason": "Thu hoạch thêm"})
    await feed(platform, order_placed_event("o-4", [("KHOAI", "sh-htx", 9)]))  # the shop's new version
    await eventually(lambda: _outcome_is(platform, "o-4", "reserved"))
    assert await stock_of(client, "KHOAI") == (0, 9)


@pytest.mark.parametrize(("orders", "units"), [(40, 7)])
async def test_concurrent_orders_for_the_last_units_never_oversell(stack, orders, units):
    """N transactions race for the last K units through the handler the consumer runs: K win."""
    client, platform = stack
    catalog = platform.service("catalog")
    assert await stock_of(client, "HOT") == (units, 0)

    async def place(number):
        envelope = order_placed_event(f"race-{number}", [("HOT", "bl-htx", 1)])
        async with catalog.unit_of_work(caused_by=envelope) as uow:
            await handlers.on_order_placed(uow, envelope)

    await asyncio.gather(*(place(n) for n in range(orders)))

    outcomes = await reservation_outcomes(catalog)
    assert sorted(outcomes.values()).count("reserved") == units
    assert sorted(outcomes.values()).count("failed") == orders - units
    assert await stock_of(client, "HOT") == (0, units)
    failures = await published_by_catalog(catalog, StockReservationFailed.TYPE)
    assert len(failures) == orders - units
    assert {f["problems"][0]["code"] for f in failures} == {"out_of_stock"}
    assert {f["problems"][0]["message"] for f in failures} == {"Hết hàng: Hot đã bán hết"}


async def test_a_burst_through_the_log_is_decided_in_runs_and_never_oversells(stack):
    """The consumer hands a poll's order_placed events to the handler as one run: one lock, set-based writes."""
    client, platform = stack
    burst = [order_placed_event(f"burst-{n:03d}", [("HOT", "bl-htx", 2 if n % 3 == 0 else 1)]) for n in range(30)]
    again = order_placed_event("burst-000", [("HOT", "bl-htx", 2)])  # republished with a new event id
    await feed(platform, *burst, again)

    outcomes = await decided(platform, 30)
    # 7 units: burst-000 takes 2, 001 and 002 one each, 003 two, 004 one: 7; the rest find none left.
    assert sorted(o for o, outcome in outcomes.items() if outcome == "reserved") == [
        "burst-000",
        "burst-001",
        "burst-002",
        "burst-003",
        "burst-004",
    ]
    assert await stock_of(client, "HOT") == (0, 7)
    catalog = platform.service("catalog")
    reserved = await published_by_catalog(catalog, StockReserved.TYPE)
    assert [r["order_id"] for r in reserved].count("burst-000") == 2  # answered again, held once
    ledger = (await client.get("/v1/products/HOT/stock")).json()["movements"]
    assert [m["available_after"] for m in ledger] == [7, 5, 4, 3, 1, 0]
    assert len(await published_by_catalog(catalog, StockReservationFailed.TYPE)) == 25
