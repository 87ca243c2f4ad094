import pytest

from vuonminh.wiring.testing import embedded_client, encode, eventually, order_body, seed_catalog, signed_headers


@pytest.fixture
async def client(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        await seed_catalog(client, platform)
        yield client


async def test_kpis_add_up_the_communes_sales_and_ignore_other_communes(client):
    orders = [
        order_body("K-1", items=[{"sku": "MIEN-DONG-500", "quantity": 4, "unit_price_vnd": 65000}]),
        order_body(
            "K-2",
            items=[
                {"sku": "KHOAI-SAM-5KG", "quantity": 2, "unit_price_vnd": 175000},
                {"sku": "CHE-200", "quantity": 1, "unit_price_vnd": 180000},
            ],
        ),
        order_body(
            "K-3",
            placed_at="2026-11-21T10:00:00+07:00",
            items=[{"sku": "MIEN-DONG-500", "quantity": 1, "unit_price_vnd": 65000}],
        ),
    ]
    for body in orders:
        raw = encode(body)
        assert (await client.post("/v1/webhooks/direct", content=raw, headers=signed_headers(raw))).status_code == 202

    async def settled():
        kpis = (await client.get("/v1/kpis/communes/03390", params={"from": "2026-11-20", "to": "2026-11-21"})).json()
        return kpis if kpis["orders"] == 3 else None

    kpis = await eventually(settled)

    assert kpis["gmv_vnd"] == 4 * 65000 + 2 * 175000 + 65000  # the tea belongs to Tân Cương
    assert kpis["kg_sold"] == 2.0 + 10.0 + 0.5
    assert kpis["active_sellers"] == 1
    assert kpis["from"] == "2026-11-20"
    assert [(d["day"], d["orders"]) for d in kpis["daily"]] == [("2026-11-20", 2), ("2026-11-21", 1)]
    one_day = (await client.get("/v1/kpis/communes/03390", params={"from": "2026-11-21", "to": "2026-11-21"})).json()
    assert one_day["orders"] == 1 and one_day["gmv_vnd"] == 65000


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/kpis/communes/99999", {"from": "2026-11-01", "to": "2026-11-30"}, 404),
        ("/v1/kpis/communes/03390", {"from": "2026-11-30", "to": "2026-11-01"}, 422),
        ("/v1/kpis/communes/03390", {"from": "30/11/2026", "to": "2026-11-30"}, 422),
        ("/v1/kpis/communes/03390", {"to": "2026-11-30"}, 422),
    ],
)
async def test_bad_queries_get_clear_errors(client, path, params, status):
    response = await client.get(path, params=params)
    assert response.status_code == status
    assert response.json()["detail"]
