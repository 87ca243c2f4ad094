"""Traceable lots: the GS1 Digital Link, its QR codes (decoded back), and the public trace page,
also rendered in headless Chromium (screenshots in VUONMINH_SCREENSHOT_DIR, else the test's tmp dir)."""

import asyncio
import io
import os
from pathlib import Path

import pytest
import uvicorn
import zxingcpp
from PIL import Image

from vuonminh.wiring.browser import Browser, chromium_path
from vuonminh.wiring.testing import embedded_client, free_port

DOMAIN = "truyxuat.test.vn"
SELLERS = [
    {
        "seller_id": "bl-co-ba-hong",
        "name": "Miến dong Cô Ba Hồng",
        "kind": "trader",
        "aggregates_others": True,
        "province_code": "12",
        "ward_code": "03390",
        "contact_name": "Lò Thị Hồng",
        "contact_phone": "0912000111",
    },
    {
        "seller_id": "bl-ho-tan-a-chu",
        "name": "Hộ Tẩn A Chu",
        "kind": "household",
        "province_code": "12",
        "ward_code": "03390",
        "contact_phone": "0988777666",
    },
]
PRODUCT = {
    "sku": "MIEN-DONG-500",
    "seller_id": "bl-co-ba-hong",
    "name": "Miến dong Bình Lư 500 g",
    "category": "miến dong",
    "unit": "gói",
    "unit_weight_g": 500,
    "price_vnd": 65000,
    "gtin": "8936012345674",
    "ocop_stars": 3,
    "ocop_score": 68,
    "ocop_certificate_no": "123/QĐ-UBND",
    "ocop_certificate_expires_on": "2027-12-31",
}
LOT = {
    "lot_code": "BL2611A",
    "harvested_on": "2026-10-25",
    "produced_on": "2026-11-02",
    "best_before": "2027-11-02",
    "quantity": 400,
    "sources": [
        {"seller_id": "bl-ho-tan-a-chu", "weight_g": 120000},
        {"household_name": "Hộ Vàng Thị Sáy", "ward_code": "03390", "weight_g": 85500},
        {"household_name": "Hộ Lò Văn Pâng", "weight_g": 64000},
    ],
}
LINK = f"https://{DOMAIN}/01/08936012345674/10/BL2611A"


@pytest.fixture
async def stack(tmp_path):
    async with embedded_client(tmp_path, trace_domain=DOMAIN) as (client, platform):
        for seller in SELLERS:
            assert (await client.post("/v1/sellers", json=seller)).status_code == 201
        assert (await client.post("/v1/products", json=PRODUCT)).status_code == 201
        yield client, platform


async def test_a_lot_gets_its_gs1_digital_link(stack):
    client, _ = stack
    created = await client.post("/v1/products/MIEN-DONG-500/lots", json=LOT)
    assert created.status_code == 201, created.text
    assert created.json()["digital_link"] == LINK
    assert (await client.post("/v1/products/MIEN-DONG-500/lots", json=LOT)).status_code == 200  # a retry
    changed = await client.post("/v1/products/MIEN-DONG-500/lots", json={**LOT, "quantity": 401})
    assert changed.status_code == 409
    assert [lot["lot_code"] for lot in (await client.get("/v1/products/MIEN-DONG-500/lots")).json()] == ["BL2611A"]


@pytest.mark.parametrize(
    ("lot", "field"),
    [
        ({**LOT, "lot_code": "BL 26/11"}, "lot_code"),
        ({**LOT, "sources": [{"weight_g": 10}]}, "sources[0]"),
        ({**LOT, "sources": [{"seller_id": "nobody", "weight_g": 10}]}, "sources[0].seller_id"),
        (
            {**LOT, "sources": [{"household_name": "Hộ A", "ward_code": "99999", "weight_g": 10}]},
            "sources[0].ward_code",
        ),
        ({**LOT, "quantity": 0}, "quantity"),
    ],
)
async def test_bad_lots_are_refused_naming_the_field(stack, lot, field):
    client, _ = stack
    response = await client.post("/v1/products/MIEN-DONG-500/lots", json=lot)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith(field) if isinstance(detail, str) else any(field in e["loc"] for e in detail), detail


async def test_a_lot_needs_a_product_with_a_gtin(stack):
    client, _ = stack
    await client.post("/v1/products", json={**PRODUCT, "sku": "NO-GTIN", "gtin": None})
    response = await client.post("/v1/products/NO-GTIN/lots", json=LOT)
    assert response.status_code == 422 and response.json()["detail"].startswith("gtin")


async def test_the_qr_codes_carry_the_digital_link(stack):
    client, _ = stack
    await client.post("/v1/products/MIEN-DONG-500/lots", json=LOT)

    png = await client.get("/v1/products/MIEN-DONG-500/lots/BL2611A/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert decoded.format == zxingcpp.BarcodeFormat.QRCode and decoded.text == LINK

    svg = await client.get("/v1/products/MIEN-DONG-500/lots/BL2611A/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in svg.content
    assert (await client.get("/v1/products/MIEN-DONG-500/lots/NOPE/qr.png")).status_code == 404


async def test_the_trace_page_answers_json_without_personal_data(stack):
    client, _ = stack
    await client.post("/v1/products/MIEN-DONG-500/lots", json=LOT)

    for gtin in ("08936012345674", "8936012345674"):  # GTIN-14 or the printed EAN-13
        response = await client.get(f"/01/{gtin}/10/BL2611A", headers={"accept": "application/json"})
        assert response.status_code == 200
    trace = response.json()
    assert trace["product"]["name"] == "Miến dong Bình Lư 500 g" and trace["ocop_stars"] == 3
    assert trace["certificate"] == {
        "stars": 3,
        "score": 68,
        "number": "123/QĐ-UBND",
        "expires_on": "2027-12-31",
        "valid": True,
    }
    assert trace["seller"] == {
        "name": "Miến dong Cô Ba Hồng",
        "kind": "trader",
        "commune": "Xã Bình Lư",
        "province": "Lai Châu",
    }
    assert trace["producers"] == [{"name": "Hộ Tẩn A Chu", "commune": "Xã Bình Lư", "weight_kg": 120.0}]
    assert trace["other_households"] == {"count": 2, "weight_kg": 149.5}
    assert trace["total_weight_kg"] == 269.5
    text = response.text
    for private in ("Vàng Thị Sáy", "Lò Văn Pâng", "Lò Thị Hồng", "0912000111", "0988777666"):
        assert private not in text

    missing = await client.get("/01/08936012345674/10/OTHER", headers={"accept": "application/json"})
    assert missing.status_code == 404 and "Không tìm thấy lô OTHER" in missing.json()["detail"]


async def test_the_trace_page_is_html_by_default_and_404_is_a_page(stack):
    client, _ = stack
    await client.post("/v1/products/MIEN-DONG-500/lots", json=LOT)
    page = await client.get("/01/08936012345674/10/BL2611A", headers={"accept": "text/html,application/json;q=0.9"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Miến dong Bình Lư 500 g" in page.text and "Còn hiệu lực" in page.text and "2 hộ khác" in page.text
    assert "Vàng Thị Sáy" not in page.text
    for url in ("/01/08936012345674/10/NOPE", "/01/123/10/BL2611A"):
        missing = await client.get(url)
        assert missing.status_code == 404 and "Không tìm thấy lô hàng" in missing.text


async def test_an_expired_certificate_shows_as_expired(stack):
    client, _ = stack
    await client.patch("/v1/products/MIEN-DONG-500", json={"version": 1, "ocop_certificate_expires_on": "2025-06-30"})
    await client.post("/v1/products/MIEN-DONG-500/lots", json=LOT)
    trace = (await client.get("/01/08936012345674/10/BL2611A", headers={"accept": "application/json"})).json()
    assert trace["ocop_stars"] is None and trace["certificate"]["valid"] is False
    page = await client.get("/01/08936012345674/10/BL2611A")
    assert "Đã hết hạn" in page.text


# --- in a real browser -------------------------------------------------------------------------------------


@pytest.mark.skipif(
    chromium_path() is None and os.environ.get("CI") != "true",
    reason="no Chromium (apt-get install chromium, or scripts/bootstrap --test)",
)
async def test_the_trace_page_in_headless_chromium(stack, tmp_path):
    client, platform = stack
    await client.post("/v1/products/MIEN-DONG-500/lots", json=LOT)
    app = client._transport.app
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve())
    shots = Path(os.environ.get("VUONMINH_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        async with Browser(width=412, height=1500) as browser:  # a phone scanning the package
            await browser.open(f"{base}/01/08936012345674/10/BL2611A")
            dom = await browser.evaluate("document.documentElement.outerHTML")
            assert "Miến dong Bình Lư 500 g" in dom and "3 sao" in dom and "Xã Bình Lư" in dom and "269,5 kg" in dom
            assert "Vàng Thị Sáy" not in dom
            for name, url in (
                ("trace-lot.png", "/01/08936012345674/10/BL2611A"),
                ("trace-404.png", "/01/08936012345674/10/NOPE"),
            ):
                await browser.open(f"{base}{url}")
                image = Image.open(await browser.screenshot(shots / name, full_page=False))
                assert image.size == (412, 1500)
                assert len(set(image.convert("RGB").resize((41, 150)).getdata())) > 10  # rendered, not blank
    finally:
        server.should_exit = True
        await serving
