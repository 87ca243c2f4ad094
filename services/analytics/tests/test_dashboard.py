"""The dashboard in real headless Chromium, on the constructed history: each page's numbers equal
the API's, the charts are drawn, the livestream page follows new orders; screenshots are saved
under test-artifacts/dashboard/ (a phone's width, and a desktop's for the commune)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from vuonminh.analytics.pages import show
from vuonminh.analytics.tests.conftest import BINH_LU, LIVE_STARTS, History, all_consumed, analytics_alone, publish
from vuonminh.shared.auth import Role
from vuonminh.wiring.browser import Browser, chromium_path
from vuonminh.wiring.testing import auth_headers, eventually, free_port

pytestmark = pytest.mark.skipif(
    chromium_path() is None and os.environ.get("CI") != "true",
    reason="no Chromium (apt-get install chromium, or scripts/bootstrap --test)",
)
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "dashboard"
DAY = "2026-11-20"
READ_CARDS = """(scope => Object.fromEntries([...document.querySelectorAll(scope + ' [data-kpi]')]
    .map(el => [el.dataset.kpi, {value: el.dataset.value, text: el.textContent}])))"""


@pytest.fixture
async def site(tmp_path, history):
    port = free_port()
    async with analytics_alone(tmp_path, serve_port=port) as (client, platform):
        await publish(platform, history.envelopes)
        await eventually(lambda: all_consumed(platform.transport), timeout_s=60)
        target = {"core_sellers_target": 2, "due_on": "2026-12-31"}
        assert (await client.put(f"/v1/kpis/communes/{BINH_LU}/core-seller-target", json=target)).status_code == 204
        # The province official of Lai Châu: every page of the history is in its scope.
        async with Browser(headers=auth_headers(Role.province_official, province_codes={"12"})) as browser:
            yield f"http://127.0.0.1:{port}", client, platform, browser


async def api(client, path, **params):
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def cards(browser, scope: str) -> dict:
    return await browser.evaluate(f"{READ_CARDS}({scope!r})")


def assert_cards_show(shown: dict, expected: dict, formats: dict | None = None) -> None:
    for kpi, value in expected.items():
        if value is None:
            assert shown[kpi]["value"] == "", kpi
        else:  # the page's script writes 30.0 as "30"
            assert float(shown[kpi]["value"]) == value, kpi
        assert shown[kpi]["text"] == show(value, (formats or {}).get(kpi, "number")), kpi


MONEY = {"gmv_vnd": "vnd", "kg_sold": "kg"}


async def test_commune_page_shows_the_apis_numbers(site):
    base, client, _platform, browser = site
    await browser.open(f"{base}/dashboard/communes/{BINH_LU}?on={DAY}")

    today = await api(client, f"/v1/kpis/communes/{BINH_LU}", **{"from": DAY, "to": DAY})
    week = await api(client, f"/v1/kpis/communes/{BINH_LU}", **{"from": "2026-11-16", "to": DAY})
    keys = ("orders", "gmv_vnd", "kg_sold", "active_sellers")
    assert_cards_show(await cards(browser, "#today"), {k: today[k] for k in keys}, MONEY)
    assert_cards_show(
        await cards(browser, "#week"),
        {k: week[k] for k in (*keys, "cancelled_orders", "returned_orders")},
        MONEY,
    )
    assert today["orders"] == 42  # not an empty page that trivially matches

    core = await api(client, f"/v1/kpis/communes/{BINH_LU}/core-sellers", on=DAY)
    assert_cards_show(await cards(browser, "#core"), {"core_sellers": core["core_sellers"], "target": core["target"]})
    ocop = await api(client, f"/v1/kpis/communes/{BINH_LU}/ocop-share", on=DAY)
    assert_cards_show(await cards(browser, "#ocop"), {"online": ocop["online"], "ocop_products": ocop["ocop_products"]})

    month = {"from": "2026-10-22", "to": DAY}
    top = await api(client, f"/v1/kpis/communes/{BINH_LU}/top-products", limit=5, **month)
    shown_skus = await browser.evaluate(
        "[...document.querySelectorAll('#top-products tr[data-sku]')].map(r => r.dataset.sku)"
    )
    assert shown_skus == [p["sku"] for p in top]
    channels = await api(client, f"/v1/kpis/communes/{BINH_LU}/channels", **month)
    drawn = await browser.evaluate("Chart.getChart('channel-mix').data.datasets[0].data")
    assert drawn == [c["orders"] for c in channels["channels"]]
    series = await api(client, f"/v1/kpis/communes/{BINH_LU}", **month)
    assert await browser.evaluate("Chart.getChart('daily-orders').data.datasets[0].data") == [
        p["orders"] for p in series["series"]
    ]
    # Nothing wider than the phone's screen.
    assert await browser.evaluate("document.documentElement.scrollWidth") <= browser.width

    await browser.screenshot(ARTIFACTS / "commune-phone.png")
    official = auth_headers(Role.commune_official, ward_codes={BINH_LU})
    async with Browser(width=1200, height=900, headers=official) as desktop:
        await desktop.open(f"{base}/dashboard/communes/{BINH_LU}?on={DAY}")
        await desktop.screenshot(ARTIFACTS / "commune-desktop.png")


async def test_province_page_ranks_the_communes_as_the_api_does(site):
    base, client, _platform, browser = site
    await browser.open(f"{base}/dashboard/provinces/12?on={DAY}")

    report = await api(client, "/v1/kpis/provinces/12", **{"from": "2026-10-22", "to": DAY})
    rows = await browser.evaluate(
        "[...document.querySelectorAll('#ranking tr[data-ward]')].map(r => [r.dataset.ward,"
        " Number(r.querySelector('[data-col=orders]').dataset.value),"
        " Number(r.querySelector('[data-col=gmv_vnd]').dataset.value)])"
    )
    assert rows == [[c["ward_code"], c["orders"], c["gmv_vnd"]] for c in report["communes"]]
    assert len(rows) == 2
    totals = report["totals"]
    assert_cards_show(
        await cards(browser, "#totals"),
        {k: totals[k] for k in ("orders", "gmv_vnd", "tonnes_sold", "active_sellers")},
        MONEY,
    )
    assert await browser.evaluate("document.documentElement.scrollWidth") <= browser.width
    await browser.screenshot(ARTIFACTS / "province-phone.png")


async def test_seller_page(site):
    base, client, _platform, browser = site
    await browser.open(f"{base}/dashboard/sellers/s-hong?on={DAY}")

    kpis = await api(client, "/v1/kpis/sellers/s-hong", **{"from": "2026-10-22", "to": DAY})
    assert_cards_show(
        await cards(browser, "#totals"),
        {k: kpis["totals"][k] for k in ("orders", "gmv_vnd", "kg_sold", "cancelled_orders")},
        MONEY,
    )
    assert kpis["totals"]["orders"] == 102
    await browser.screenshot(ARTIFACTS / "seller-phone.png")


async def test_livestream_page_follows_new_orders(site):
    base, client, platform, browser = site
    await browser.open(f"{base}/dashboard/livestreams/live-1")
    before = await api(client, "/v1/kpis/livestreams/live-1")
    shown = await cards(browser, "#results")
    assert shown["orders"]["value"] == str(before["orders"]) == "21"

    more = History(prefix="more")  # new event ids: the inbox would drop repeated ones
    for i in range(4):
        more.order(f"live-more-{i}", LIVE_STARTS + timedelta(minutes=200), {"MIEN-500": 2}, shop_id="shop-hong")
    await publish(platform, more.envelopes)
    await eventually(lambda: all_consumed(platform.transport), timeout_s=60)
    after = await api(client, "/v1/kpis/livestreams/live-1")
    assert after["orders"] == 25

    async def page_caught_up() -> bool:
        return (await cards(browser, "#results"))["orders"]["value"] == "25"

    await eventually(page_caught_up, timeout_s=30, interval_s=0.5)  # the page polls every 5 s
    assert_cards_show(
        await cards(browser, "#results"),
        {k: after[k] for k in ("orders", "gmv_vnd", "kg_sold", "orders_per_minute", "peak_minute_orders")},
        MONEY,
    )
    shown = await cards(browser, "#results")
    assert datetime.fromisoformat(shown["peak_minute"]["value"]) == datetime.fromisoformat(after["peak_minute"])
    assert sum(await browser.evaluate("Chart.getChart('per-minute').data.datasets[0].data")) == 25
    best = await browser.evaluate(
        "[...document.querySelectorAll('#best-sellers tr[data-sku]')].map(r => [r.dataset.sku, r.cells[1].textContent])"
    )
    assert best == [[p["sku"], show(p["orders"])] for p in after["best_sellers"]]
    assert best[0] == ["MIEN-500", "25"]
    await browser.screenshot(ARTIFACTS / "livestream-phone.png")


async def test_pages_need_credentials_and_keep_to_the_callers_scope(site):
    _base, client, _platform, _browser = site
    response = await client.get("/dashboard/communes/99999")
    assert response.status_code == 404
    assert "Không tìm thấy" in response.json()["detail"]
    assert (await client.get(f"/dashboard/communes/{BINH_LU}", headers={"Authorization": ""})).status_code == 401
    tan_cuong = auth_headers(Role.commune_official, ward_codes={"05503"})
    assert (await client.get(f"/dashboard/communes/{BINH_LU}", headers=tan_cuong)).status_code == 404
    assert (await client.get("/dashboard/livestreams/live-1", headers=tan_cuong)).status_code == 404
    assert (await client.get("/dashboard/static/chart.umd.min.js", headers={"Authorization": ""})).status_code == 200


async def test_an_official_signs_in_on_a_phone_and_the_live_page_keeps_polling(site):
    base, client, platform, _browser = site
    credential = auth_headers(Role.province_official, province_codes={"12"})["Authorization"].removeprefix("Bearer ")
    async with Browser() as phone:  # no header: a person's browser
        await phone.send("Page.navigate", {"url": f"{base}/dashboard/livestreams/live-1"})

        async def on_sign_in() -> bool:
            return await phone.evaluate("location.pathname") == "/dashboard/login" and await phone.evaluate(
                "document.readyState === 'complete'"
            )

        await eventually(on_sign_in, timeout_s=30, interval_s=0.2)
        assert "next=%2Fdashboard%2Flivestreams%2Flive-1" in await phone.evaluate("location.search")
        await phone.screenshot(ARTIFACTS / "login-phone.png")
        # A wrong code first: the form comes back with the reason.
        await phone.evaluate(
            "document.getElementById('credential').value = 'vmk_wrong_code'; document.forms[0].submit()"
        )

        async def refused() -> str | None:
            return await phone.evaluate("document.getElementById('problem')?.textContent || null")

        assert "không hợp lệ" in await eventually(refused, timeout_s=30, interval_s=0.2)
        await phone.evaluate(
            f"document.getElementById('credential').value = {credential!r}; document.forms[0].submit()"
        )

        async def on_live_page() -> bool:
            return await phone.evaluate("location.pathname") == "/dashboard/livestreams/live-1" and bool(
                await phone.evaluate("document.querySelector('#results [data-kpi=orders]') !== null")
            )

        await eventually(on_live_page, timeout_s=30, interval_s=0.2)
        shown = await cards(phone, "#results")
        assert shown["orders"]["value"] == str((await api(client, "/v1/kpis/livestreams/live-1"))["orders"])
        # The page's polling reads the API with the cookie alone.
        await eventually(
            lambda: phone.evaluate("Number(document.body.dataset.refreshes || 0) >= 1"), timeout_s=30, interval_s=0.5
        )
        assert await phone.evaluate("document.cookie") == ""  # HttpOnly: scripts never see the credential
