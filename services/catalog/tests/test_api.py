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
