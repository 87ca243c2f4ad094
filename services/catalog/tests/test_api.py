import pytest

from vuonminh.wiring.testing import embedded_client

SELLER = {
    "seller_id": "bl-ho-a",
    "name": "Hộ Lò Thị Mai",
    "kind": "household",
    "province_code": "12",
    "ward_code": "03390",
}
PRODUCT = {
    "sku": "MIEN-DONG-500",
    "seller_id": "bl-ho-a",
    "name": "Miến dong 500 g",
    "unit_weight_g": 500,
    "ocop_stars": 3,
}


@pytest.fixture
async def client(tmp_path):
    async with embedded_client(tmp_path) as (client, _platform):
        yield client


async def test_registering_a_seller_names_its_commune(client):
    created = await client.post("/v1/sellers", json=SELLER)

    assert created.status_code == 201
    assert created.json()["ward_name"] == "Xã Bình Lư" and created.json()["province_name"] == "Lai Châu"
    assert [s["seller_id"] for s in (await client.get("/v1/sellers", params={"ward_code": "03390"})).json()] == [
        "bl-ho-a"
    ]
    assert (await client.get("/v1/sellers", params={"ward_code": "05503"})).json() == []


async def test_a_repeated_registration_is_a_retry_but_a_different_one_conflicts(client):
    assert (await client.post("/v1/sellers", json=SELLER)).status_code == 201
    assert (await client.post("/v1/sellers", json=SELLER)).status_code == 200
    conflict = await client.post("/v1/sellers", json={**SELLER, "name": "Someone else"})
    assert conflict.status_code == 409 and "other details" in conflict.json()["detail"]


async def test_a_ward_outside_its_province_is_refused(client):
    response = await client.post("/v1/sellers", json={**SELLER, "province_code": "19"})
    assert response.status_code == 422
    assert "not in province 19" in response.json()["detail"]


async def test_products_need_a_registered_seller_and_positive_grams(client):
    assert (await client.post("/v1/products", json=PRODUCT)).status_code == 422
    await client.post("/v1/sellers", json=SELLER)
    assert (await client.post("/v1/products", json={**PRODUCT, "unit_weight_g": 0})).status_code == 422
    assert (await client.post("/v1/products", json={**PRODUCT, "ocop_stars": 6})).status_code == 422

    created = await client.post("/v1/products", json=PRODUCT)

    assert created.status_code == 201
    assert (await client.get("/v1/products/MIEN-DONG-500")).json()["unit_weight_g"] == 500
    assert (await client.get("/v1/products/NOPE")).status_code == 404


async def test_catalog_changes_are_published_through_the_outbox(client, tmp_path):
    await client.post("/v1/sellers", json=SELLER)
    await client.post("/v1/products", json=PRODUCT)
    import sqlite3

    from vuonminh.shared.transport.local import LocalLog  # noqa: F401 - the log file is the proof

    def published(topic):
        with sqlite3.connect(tmp_path / "log.sqlite3") as conn:
            return conn.execute("SELECT key FROM records WHERE topic = ?", (topic,)).fetchall()

    from vuonminh.wiring.testing import eventually

    async def both():
        return published("catalog.sellers") == [(b"bl-ho-a",)] and published("catalog.products") == [
            (b"MIEN-DONG-500",)
        ]

    assert await eventually(both)


FULL_PRODUCT = {
    **PRODUCT,
    "category": "miến dong",
    "unit": "gói",
    "price_vnd": 65000,
    "gtin": "8936012345674",
    "ocop_stars": 4,
    "ocop_score": 78,
    "ocop_certificate_no": "OCOP-LC-2024-031",
    "ocop_certificate_expires_on": "2027-08-31",
    "photo_urls": ["https://anh.example.vn/mien-dong.jpg"],
    "initial_stock": 120,
}


async def test_a_product_with_all_its_details(client):
    await client.post("/v1/sellers", json=SELLER)
    created = await client.post("/v1/products", json=FULL_PRODUCT)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["gtin"] == "08936012345674"  # stored as GTIN-14
    assert body["ocop"] == {
        "stars": 4,
        "score": 78,
        "certificate_no": "OCOP-LC-2024-031",
        "certificate_expires_on": "2027-08-31",
        "valid": True,
    }
    assert (body["available"], body["reserved"], body["version"], body["orderable"]) == (120, 0, 1, True)
    assert (await client.post("/v1/products", json=FULL_PRODUCT)).status_code == 200  # a retry


async def test_an_expired_certificate_is_not_shown_as_ocop(client):
    await client.post("/v1/sellers", json=SELLER)
    body = (
        await client.post("/v1/products", json={**FULL_PRODUCT, "ocop_certificate_expires_on": "2024-01-01"})
    ).json()
    assert body["ocop_stars"] is None and body["ocop"]["valid"] is False


async def test_out_of_season_products_are_not_orderable(client):
    await client.post("/v1/sellers", json=SELLER)
    body = (
        await client.post(
            "/v1/products", json={**PRODUCT, "season_starts_on": "2020-01-20", "season_ends_on": "2020-02-12"}
        )
    ).json()
    assert (body["in_season"], body["orderable"]) == (False, False)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gtin": "8936012345673"}, "gtin"),
        ({"ocop_stars": 2}, "ocop_stars"),
        ({"ocop_stars": 6}, "ocop_stars"),
        ({"season_starts_on": "2027-02-12", "season_ends_on": "2027-01-20"}, "season_ends_on"),
        ({"initial_stock": -1}, "initial_stock"),
        ({"initial_stock": 1.5}, "initial_stock"),
        ({"unit": "thùng lớn"}, "unit"),
        ({"seller_id": "nobody"}, "seller_id"),
    ],
)
async def test_bad_product_input_is_refused_naming_the_field(client, change, field):
    await client.post("/v1/sellers", json=SELLER)
    response = await client.post("/v1/products", json={**FULL_PRODUCT, **change})
    assert response.status_code == 422
    detail = response.json()["detail"]
    named = detail.startswith(field) if isinstance(detail, str) else any(field in e["loc"] for e in detail)
    assert named, detail


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ward_code": "99999"}, "ward_code"),
        ({"ward_code": "0339"}, "ward_code"),
        ({"kind": "middleman"}, "kind"),
        ({"provincial_shop_id": "no-such-shop"}, "provincial_shop_id"),
    ],
)
async def test_bad_seller_input_is_refused_naming_the_field(client, change, field):
    response = await client.post("/v1/sellers", json={**SELLER, **change})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert (field in detail) if isinstance(detail, str) else any(field in e["loc"] for e in detail), detail


async def test_sellers_of_every_kind_are_published_as_v2(client, tmp_path):
    trader = {**SELLER, "seller_id": "bl-co-ba-hong", "kind": "trader", "aggregates_others": True}
    assert (await client.post("/v1/sellers", json=trader)).status_code == 201
    old_style = {**SELLER, "seller_id": "bl-old", "kind": "aggregator"}
    assert (await client.post("/v1/sellers", json=old_style)).json()["kind"] == "trader"
    assert (await client.post("/v1/sellers", json=old_style)).status_code == 200  # still a retry

    from vuonminh.wiring.testing import published_by_catalog

    platform = client._transport.app.state.platform
    published = await published_by_catalog(platform.service("catalog"), "vuonminh.catalog.seller_registered.v2")
    assert [(p["seller_id"], p["kind"], p["aggregates_others"]) for p in published] == [
        ("bl-co-ba-hong", "trader", True),
        ("bl-old", "trader", True),
    ]


async def test_a_provincial_shop_groups_its_producers(client):
    shop = {"shop_id": "tn-che", "name": "Gian hàng chè Thái Nguyên", "province_code": "19"}
    assert (await client.post("/v1/provincial-shops", json=shop)).status_code == 201
    for seller_id in ("tc-htx", "tc-ho-a"):
        seller = {**SELLER, "seller_id": seller_id, "province_code": "19", "ward_code": "05503"}
        assert (await client.post("/v1/sellers", json={**seller, "provincial_shop_id": "tn-che"})).status_code == 201
    assert (await client.get("/v1/provincial-shops/tn-che")).json()["seller_ids"] == ["tc-ho-a", "tc-htx"]
    assert (
        await client.post("/v1/provincial-shops", json={**shop, "shop_id": "x", "province_code": "00"})
    ).status_code == 422


async def test_an_edit_on_a_stale_version_is_refused(client):
    await client.post("/v1/sellers", json=SELLER)
    await client.post("/v1/products", json=FULL_PRODUCT)

    first = await client.patch("/v1/products/MIEN-DONG-500", json={"version": 1, "price_vnd": 70000})
    assert first.status_code == 200 and (first.json()["price_vnd"], first.json()["version"]) == (70000, 2)
    stale = await client.patch("/v1/products/MIEN-DONG-500", json={"version": 1, "price_vnd": 60000})
    assert stale.status_code == 409 and "version 2" in stale.json()["detail"]
    assert (await client.get("/v1/products/MIEN-DONG-500")).json()["price_vnd"] == 70000
    bad = await client.patch(
        "/v1/products/MIEN-DONG-500",
        json={"version": 2, "season_starts_on": "2027-02-12", "season_ends_on": "2027-01-01"},
    )
    assert bad.status_code == 422 and bad.json()["detail"].startswith("season_ends_on")
    assert (await client.patch("/v1/products/NOPE", json={"version": 1})).status_code == 404


async def test_concurrent_edits_of_one_version_let_exactly_one_through(client):
    import asyncio

    await client.post("/v1/sellers", json=SELLER)
    await client.post("/v1/products", json=FULL_PRODUCT)
    answers = await asyncio.gather(
        *(client.patch("/v1/products/MIEN-DONG-500", json={"version": 1, "price_vnd": 60000 + i}) for i in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409]
    assert (await client.get("/v1/products/MIEN-DONG-500")).json()["version"] == 2


async def test_stock_adjustments_are_kept_in_a_ledger(client):
    await client.post("/v1/sellers", json=SELLER)
    await client.post("/v1/products", json=FULL_PRODUCT)

    added = await client.post("/v1/products/MIEN-DONG-500/stock", json={"change": 30, "reason": "Nhập lô mới"})
    assert added.status_code == 200 and added.json()["available"] == 150
    spoiled = await client.post("/v1/products/MIEN-DONG-500/stock", json={"change": -10, "reason": "Hỏng do ẩm"})
    assert spoiled.json()["available"] == 140
    too_many = await client.post("/v1/products/MIEN-DONG-500/stock", json={"change": -141, "reason": "Kiểm kê"})
    assert too_many.status_code == 422 and too_many.json()["detail"].startswith("change:")
    fraction = await client.post("/v1/products/MIEN-DONG-500/stock", json={"change": 0.5, "reason": "Kiểm kê"})
    assert fraction.status_code == 422 and fraction.json()["detail"][0]["loc"][-1] == "change"
    no_reason = await client.post("/v1/products/MIEN-DONG-500/stock", json={"change": 1})
    assert no_reason.status_code == 422 and no_reason.json()["detail"][0]["loc"][-1] == "reason"
    assert (await client.post("/v1/products/NOPE/stock", json={"change": 1, "reason": "x"})).status_code == 404

    ledger = (await client.get("/v1/products/MIEN-DONG-500/stock")).json()
    assert [(m["kind"], m["available_change"], m["available_after"], m["reason"]) for m in ledger["movements"]] == [
        ("adjustment", 120, 120, "Tồn kho ban đầu"),
        ("adjustment", 30, 150, "Nhập lô mới"),
        ("adjustment", -10, 140, "Hỏng do ẩm"),
    ]
    page = (await client.get("/v1/products/MIEN-DONG-500/stock", params={"limit": 2})).json()
    assert len(page["movements"]) == 2
    rest = (
        await client.get("/v1/products/MIEN-DONG-500/stock", params={"after_id": page["next_after_id"], "limit": 2})
    ).json()
    assert [m["reason"] for m in rest["movements"]] == ["Hỏng do ẩm"] and rest["next_after_id"] is None

    from vuonminh.wiring.testing import published_by_catalog

    platform = client._transport.app.state.platform
    adjusted = await published_by_catalog(platform.service("catalog"), "vuonminh.catalog.stock_adjusted.v1")
    assert [(a["change"], a["available"], a["reason"]) for a in adjusted] == [
        (30, 150, "Nhập lô mới"),
        (-10, 140, "Hỏng do ẩm"),
    ]


async def test_listings_are_published_for_orders(client):
    await client.post("/v1/sellers", json=SELLER)
    await client.post("/v1/products", json=FULL_PRODUCT)
    listing = {"channel": "tiktok_shop", "platform_product_id": "1729384756", "platform_sku": "1729000111"}

    assert (await client.post("/v1/products/MIEN-DONG-500/listings", json=listing)).status_code == 201
    assert (await client.post("/v1/products/MIEN-DONG-500/listings", json=listing)).status_code == 200  # no change
    withdrawn = await client.post("/v1/products/MIEN-DONG-500/listings", json={**listing, "active": False})
    assert withdrawn.status_code == 201 and withdrawn.json()["active"] is False
    bad = await client.post("/v1/products/MIEN-DONG-500/listings", json={**listing, "channel": "amazon"})
    assert bad.status_code == 422

    await client.post("/v1/products", json={**PRODUCT, "sku": "OTHER"})
    taken = await client.post("/v1/products/OTHER/listings", json=listing)
    assert taken.status_code == 409 and taken.json()["detail"].startswith("platform_sku")

    from vuonminh.wiring.testing import published_by_catalog

    platform = client._transport.app.state.platform
    published = await published_by_catalog(platform.service("catalog"), "vuonminh.catalog.listing_published.v1")
    assert [(p["sku"], p["channel"], p["platform_sku"], p["seller_id"], p["active"]) for p in published] == [
        ("MIEN-DONG-500", "tiktok_shop", "1729000111", "bl-ho-a", True),
        ("MIEN-DONG-500", "tiktok_shop", "1729000111", "bl-ho-a", False),
    ]
