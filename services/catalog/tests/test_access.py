"""Who may do what in the catalog: sellers change only their own products, stock, listings and lots;
officials read their commune or province; the trace page is public on purpose."""

import pytest

from vuonminh.shared.auth import Role
from vuonminh.wiring.testing import auth_headers, embedded_client

BINH_LU, SIN_HO = "03390", "03478"
SELLERS = [
    {"seller_id": "bl-a", "name": "Hộ A Bình Lư", "kind": "household", "province_code": "12", "ward_code": BINH_LU},
    {"seller_id": "sh-b", "name": "HTX B Sìn Hồ", "kind": "cooperative", "province_code": "12", "ward_code": SIN_HO},
]
PRODUCTS = [
    {
        "sku": "A-1",
        "seller_id": "bl-a",
        "name": "Miến dong",
        "unit_weight_g": 500,
        "gtin": "8936012345674",
        "initial_stock": 5,
    },
    {"sku": "B-1", "seller_id": "sh-b", "name": "Khoai sâm", "unit_weight_g": 5000, "initial_stock": 5},
]
SELLER_A = auth_headers(Role.seller, seller_ids={"bl-a"})
SELLER_B = auth_headers(Role.seller, seller_ids={"sh-b"})
BINH_LU_OFFICIAL = auth_headers(Role.commune_official, ward_codes={BINH_LU})
LAI_CHAU_OFFICIAL = auth_headers(Role.province_official, province_codes={"12"})
ANONYMOUS = {"Authorization": ""}


@pytest.fixture
async def client(tmp_path):
    async with embedded_client(tmp_path) as (client, _platform):  # the operator sets the catalog up
        for seller in SELLERS:
            assert (await client.post("/v1/sellers", json=seller)).status_code == 201
        for product in PRODUCTS:
            assert (await client.post("/v1/products", json=product)).status_code == 201
        lot = {"lot_code": "L1", "produced_on": "2026-11-01", "quantity": 5, "sources": []}
        assert (await client.post("/v1/products/A-1/lots", json=lot)).status_code == 201
        yield client


WRITES = [
    ("patch", "/v1/products/{sku}", {"version": 1, "price_vnd": 1}),
    ("post", "/v1/products/{sku}/stock", {"change": 1, "reason": "Kiểm kê"}),
    ("post", "/v1/products/{sku}/listings", {"channel": "shopee", "platform_product_id": "1", "platform_sku": "1"}),
    ("post", "/v1/products/{sku}/lots", {"lot_code": "L2", "produced_on": "2026-11-01", "quantity": 1}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_a_seller_changes_only_its_own_products(client, method, path, body):
    others = await client.request(method.upper(), path.format(sku="B-1"), json=body, headers=SELLER_A)
    assert others.status_code == 404 and "not found" in others.json()["detail"]
    own = await client.request(method.upper(), path.format(sku="A-1"), json=body, headers=SELLER_A)
    assert own.status_code in (200, 201, 422), own.text  # 422: lots need a GTIN, B's product has none
    assert own.status_code != 422 or "gtin" in own.json()["detail"]
    assert (await client.get("/v1/products/B-1/stock")).json()["available"] == 5  # untouched


async def test_a_seller_cannot_list_a_product_for_another_seller(client):
    product = {"sku": "A-2", "seller_id": "sh-b", "name": "Giả mạo", "unit_weight_g": 100}
    assert (await client.post("/v1/products", json=product, headers=SELLER_A)).status_code == 404
    taken = {**PRODUCTS[1], "seller_id": "bl-a"}  # B's SKU under A's name
    assert (await client.post("/v1/products", json=taken, headers=SELLER_A)).status_code == 409
    own = {"sku": "A-2", "seller_id": "bl-a", "name": "Miến dong khoai sâm", "unit_weight_g": 500}
    assert (await client.post("/v1/products", json=own, headers=SELLER_A)).status_code == 201


async def test_only_the_operator_registers_sellers_and_shops(client):
    seller = {**SELLERS[0], "seller_id": "bl-new"}
    assert (await client.post("/v1/sellers", json=seller, headers=SELLER_A)).status_code == 403
    shop = {"shop_id": "s", "name": "Gian hàng", "province_code": "12"}
    assert (await client.post("/v1/provincial-shops", json=shop, headers=LAI_CHAU_OFFICIAL)).status_code == 403


async def test_sellers_read_their_own_and_officials_their_commune(client):
    async def skus(headers):
        return [p["sku"] for p in (await client.get("/v1/products", headers=headers)).json()]

    assert await skus(SELLER_A) == ["A-1"]
    assert await skus(BINH_LU_OFFICIAL) == ["A-1"]
    assert await skus(LAI_CHAU_OFFICIAL) == ["A-1", "B-1"]
    sellers = (await client.get("/v1/sellers", headers=BINH_LU_OFFICIAL)).json()
    assert [s["seller_id"] for s in sellers] == ["bl-a"]
    for path in ("/v1/products/B-1", "/v1/products/B-1/stock", "/v1/products/B-1/listings", "/v1/sellers/sh-b"):
        assert (await client.get(path, headers=BINH_LU_OFFICIAL)).status_code == 404, path
        assert (await client.get(path, headers=SELLER_A)).status_code == 404, path
        assert (await client.get(path, headers=SELLER_B)).status_code == 200, path
    assert (await client.get("/v1/products/A-1/lots/L1/qr.png", headers=SELLER_B)).status_code == 404
    assert (await client.get("/v1/products/A-1/lots/L1/qr.png", headers=BINH_LU_OFFICIAL)).status_code == 200


async def test_officials_only_read(client):
    response = await client.post("/v1/products/A-1/stock", json={"change": 1, "reason": "x"}, headers=BINH_LU_OFFICIAL)
    assert response.status_code == 403


async def test_the_catalog_needs_credentials_but_the_trace_page_does_not(client):
    assert (await client.get("/v1/products", headers=ANONYMOUS)).status_code == 401
    assert (await client.get("/v1/products/A-1/lots/L1/qr.png", headers=ANONYMOUS)).status_code == 401
    page = await client.get("/01/08936012345674/10/L1", headers=ANONYMOUS)
    assert page.status_code == 200 and "Miến dong" in page.text
