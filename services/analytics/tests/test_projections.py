"""Every KPI on a constructed history fed through the real consumer (figures counted by hand in
conftest.py's terms): cancellations, a rejection, a return, duplicates, a late event."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from vuonminh.analytics.tests.conftest import BINH_LU, SIN_HO, all_consumed, analytics_alone, publish
from vuonminh.shared.auth import Role
from vuonminh.shared.records import OutgoingRecord
from vuonminh.wiring.testing import auth_headers, eventually

WEEK = {"from": "2026-11-14", "to": "2026-11-20"}
# s-hong: 80 orders on the 16th..19th + 22 counted on the 20th (22 live orders less one cancelled and
# one returned, plus both-1 and the late one), each 2 × 65,000 VND and 1 kg. s-mai: 80 × 150,000 VND,
# 3 kg. s-chu: one counted order of 3 × 100,000 VND, 3 kg (its order of the 20th was rejected).
HONG, MAI, CHU = 102, 80, 1


@pytest.fixture
async def fed(tmp_path, history):
    async with analytics_alone(tmp_path) as (client, platform):
        await publish(platform, history.envelopes)
        await eventually(lambda: all_consumed(platform.transport), timeout_s=60)
        yield client, tmp_path


async def get(client, path, **params):
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_commune_sales_count_each_order_once_and_leave_out_cancelled_rejected_and_returned(fed):
    client, _ = fed
    kpis = await get(client, f"/v1/kpis/communes/{BINH_LU}", **WEEK)

    assert kpis["orders"] == HONG + MAI + CHU
    assert kpis["gmv_vnd"] == HONG * 130000 + MAI * 150000 + CHU * 300000
    assert kpis["kg_sold"] == HONG * 1.0 + MAI * 3.0 + CHU * 3.0
    assert kpis["items"] == HONG * 2 + MAI + CHU * 3
    assert kpis["active_sellers"] == 3
    assert (kpis["cancelled_orders"], kpis["returned_orders"]) == (2, 1)
    by_day = {d["day"]: d["orders"] for d in kpis["daily"]}
    # The late order (00:30 on the 20th in Vietnam, 17:30 UTC on the 19th) counts on the 20th.
    assert by_day == {
        "2026-11-15": 1,
        "2026-11-16": 20,
        "2026-11-17": 40,
        "2026-11-18": 40,
        "2026-11-19": 40,
        "2026-11-20": 42,
    }
    assert kpis["shipments"] == 5


async def test_weeks_and_months_fold_the_same_days(fed):
    client, _ = fed
    weekly = await get(
        client, f"/v1/kpis/communes/{BINH_LU}", **{"from": "2026-11-01", "to": "2026-11-30", "granularity": "week"}
    )
    assert [p["period"] for p in weekly["series"]] == [
        "2026-10-26",
        "2026-11-02",
        "2026-11-09",
        "2026-11-16",
        "2026-11-23",
        "2026-11-30",
    ]
    by_week = {p["period"]: p["orders"] for p in weekly["series"]}
    assert by_week["2026-11-09"] == 1 and by_week["2026-11-16"] == HONG + MAI
    monthly = await get(
        client, f"/v1/kpis/communes/{BINH_LU}", **{"from": "2026-11-01", "to": "2026-11-30", "granularity": "month"}
    )
    assert [(p["period"], p["orders"], p["active_sellers"]) for p in monthly["series"]] == [
        ("2026-11-01", HONG + MAI + CHU, 3)
    ]


async def test_province_ranks_its_communes_and_counts_a_two_commune_order_once(fed):
    client, _ = fed
    province = await get(client, "/v1/kpis/provinces/12", **WEEK)

    assert [(c["rank"], c["ward_code"], c["orders"]) for c in province["communes"]] == [
        (1, BINH_LU, 183),
        (2, SIN_HO, 1),
    ]
    assert province["communes"][1]["kg_sold"] == 5.0
    assert province["totals"]["orders"] == 183  # both-1 is one order of the province
    assert province["totals"]["gmv_vnd"] == HONG * 130000 + MAI * 150000 + CHU * 300000 + 175000


async def test_seller_and_product_kpis(fed):
    client, _ = fed
    seller = await get(client, "/v1/kpis/sellers/s-hong", **WEEK)
    assert (seller["seller_name"], seller["totals"]["orders"], seller["totals"]["kg_sold"]) == (
        "Miến dong Cô Ba Hồng",
        HONG,
        HONG * 1.0,
    )
    assert seller["top_products"][0]["sku"] == "MIEN-500"
    product = await get(client, "/v1/kpis/products/KHOAI-5KG", **WEEK)
    assert (product["totals"]["orders"], product["totals"]["kg_sold"], product["totals"]["tonnes_sold"]) == (
        1,
        5.0,
        0.005,
    )


async def test_core_sellers_against_the_communes_target(fed):
    client, _ = fed
    target = await client.put(
        f"/v1/kpis/communes/{BINH_LU}/core-seller-target", json={"core_sellers_target": 2, "due_on": "2026-12-31"}
    )
    assert target.status_code == 204
    core = await get(client, f"/v1/kpis/communes/{BINH_LU}/core-sellers", on="2026-11-20")

    # s-hong: 20+ orders on 5 of the last 7 days (the cancel and the return leave 22 on the 20th);
    # s-mai: on 4 only.
    assert [(s["seller_id"], s["days_at_threshold"]) for s in core["sellers"]] == [("s-hong", 5)]
    assert (core["core_sellers"], core["target"], core["progress"]) == (1, 2, 0.5)
    earlier = await get(client, f"/v1/kpis/communes/{BINH_LU}/core-sellers", on="2026-11-19")
    assert earlier["core_sellers"] == 0


async def test_ocop_share_counts_valid_certificates_with_a_live_listing(fed):
    client, _ = fed
    share = await get(client, f"/v1/kpis/communes/{BINH_LU}/ocop-share", on="2026-11-20")

    # MIEN-500 (listed) and MAT-ONG (withdrawn; the older publication came late) have valid
    # certificates; DAO-CAY's expired.
    assert (share["ocop_products"], share["online"], share["share"], share["offline_skus"]) == (2, 1, 0.5, ["MAT-ONG"])


async def test_livestream_results(fed):
    client, _ = fed
    live = await get(client, "/v1/kpis/livestreams/live-1")

    # 20 counted orders on its shop within the window, plus both-1 which the platform tagged.
    assert live["orders"] == 21
    assert live["gmv_vnd"] == 20 * 130000 + 130000 + 175000
    assert live["kg_sold"] == 20 * 1.0 + 1.0 + 5.0
    assert (live["peak_minute"], live["peak_minute_orders"]) == ("2026-11-20T06:00:00Z", 3)
    assert live["minutes"] == 240.0 and live["orders_per_minute"] == round(21 / 240, 2)
    assert [b["sku"] for b in live["best_sellers"]] == ["MIEN-500", "KHOAI-5KG"]


async def test_fulfilment_times_success_returns_fees_and_cod(fed):
    client, _ = fed
    f = await get(client, f"/v1/kpis/communes/{BINH_LU}/fulfilment", **WEEK)

    assert (f["shipments"], f["picked_up"], f["delivered"], f["returned"]) == (5, 4, 2, 1)
    assert (f["hours_to_pickup_p50"], f["hours_to_pickup_p90"]) == (3.0, 6.0)  # of 2, 3, 4, 6
    assert (f["hours_to_delivery_p50"], f["hours_to_delivery_p90"]) == (26.0, 50.0)
    assert f["delivery_success_rate"] == round(2 / 3, 4)
    assert f["shipping_fee_vnd"] == 90000 and f["shipping_fee_share"] == round(90000 / 390000, 4)
    assert f["cod_outstanding_vnd"] == 2 * 130000  # sh-5 (picked up) and sh-6 (not yet)


async def test_channel_mix(fed):
    client, _ = fed
    mix = await get(client, f"/v1/kpis/communes/{BINH_LU}/channels", **WEEK)
    assert [(c["channel"], c["orders"]) for c in mix["channels"]] == [
        ("tiktok_shop", 0),
        ("shopee", 0),
        ("lazada", 0),
        ("direct", HONG + MAI + CHU),
    ]


async def test_no_buyer_personal_data_is_stored(fed):
    _, data_dir = fed
    stored = (data_dir / "analytics.sqlite3").read_bytes() + (data_dir / "analytics.sqlite3-wal").read_bytes()
    for personal in ("Nguyễn Thu Hà", "0912345678", "Phan Đình Phùng"):
        assert personal.encode() not in stored


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/v1/kpis/sellers/nobody", WEEK, 404, "no seller has id 'nobody'"),
        ("/v1/kpis/provinces/99", WEEK, 404, "no 2025 province"),
        ("/v1/kpis/products/NOPE", WEEK, 404, "no product"),
        ("/v1/kpis/livestreams/nope", {}, 404, "no livestream"),
        ("/v1/kpis/communes/99999/core-sellers", {}, 404, "no 2025 commune"),
        ("/v1/kpis/provinces/12", {"from": "2026-11-20", "to": "2026-11-01"}, 422, "'to' is before 'from'"),
        ("/v1/kpis/sellers/s-hong", {"from": "2025-01-01", "to": "2026-11-01"}, 422, "longer than 366 days"),
        ("/v1/kpis/provinces/12", {**WEEK, "granularity": "year"}, 422, "granularity"),
    ],
)
async def test_bad_input_is_named(fed, path, params, status, message):
    client, _ = fed
    response = await client.get(path, params=params)
    assert response.status_code == status
    assert message in str(response.json()["detail"])


BINH_LU_OFFICIAL = {"role": Role.commune_official, "ward_codes": {BINH_LU}}
TAN_CUONG_OFFICIAL = {"role": Role.commune_official, "ward_codes": {"05503"}}
LAI_CHAU_OFFICIAL = {"role": Role.province_official, "province_codes": {"12"}}
SELLER_HONG = {"role": Role.seller, "seller_ids": {"s-hong"}}


SCOPE_CASES = [
    (BINH_LU_OFFICIAL, "GET", f"/v1/kpis/communes/{BINH_LU}", 200),
    (BINH_LU_OFFICIAL, "GET", f"/v1/kpis/communes/{BINH_LU}/fulfilment", 200),
    (TAN_CUONG_OFFICIAL, "GET", f"/v1/kpis/communes/{BINH_LU}", 404),  # another commune: as if unknown
    (TAN_CUONG_OFFICIAL, "GET", f"/v1/kpis/communes/{BINH_LU}/core-sellers", 404),
    (LAI_CHAU_OFFICIAL, "GET", f"/v1/kpis/communes/{BINH_LU}", 200),
    (LAI_CHAU_OFFICIAL, "GET", "/v1/kpis/provinces/12", 200),
    (LAI_CHAU_OFFICIAL, "GET", "/v1/kpis/provinces/19", 404),
    (BINH_LU_OFFICIAL, "GET", "/v1/kpis/provinces/12", 403),  # the ranking is the province's
    (BINH_LU_OFFICIAL, "GET", "/v1/kpis/sellers/s-hong", 200),
    (TAN_CUONG_OFFICIAL, "GET", "/v1/kpis/sellers/s-hong", 404),
    (SELLER_HONG, "GET", "/v1/kpis/sellers/s-hong", 200),
    (SELLER_HONG, "GET", "/v1/kpis/sellers/s-mai", 404),
    (SELLER_HONG, "GET", "/v1/kpis/products/MIEN-500", 200),
    (SELLER_HONG, "GET", "/v1/kpis/products/DAO-CAY", 404),
    (SELLER_HONG, "GET", "/v1/kpis/livestreams/live-1", 200),
    (TAN_CUONG_OFFICIAL, "GET", "/v1/kpis/livestreams/live-1", 404),
    (SELLER_HONG, "GET", f"/v1/kpis/communes/{BINH_LU}", 403),
    (BINH_LU_OFFICIAL, "PUT", f"/v1/kpis/communes/{BINH_LU}/core-seller-target", 403),
    (LAI_CHAU_OFFICIAL, "PUT", f"/v1/kpis/communes/{BINH_LU}/core-seller-target", 204),
    (LAI_CHAU_OFFICIAL, "PUT", "/v1/kpis/communes/05503/core-seller-target", 404),
]


async def test_officials_read_their_places_and_sellers_their_own(fed):
    client, _ = fed
    answered = []
    for caller, method, path, _status in SCOPE_CASES:
        headers = auth_headers(caller["role"], **{k: v for k, v in caller.items() if k != "role"})
        body = {"core_sellers_target": 3, "due_on": "2026-12-31"} if method == "PUT" else None
        response = await client.request(method, path, params=WEEK, json=body, headers=headers)
        answered.append(response.status_code)
    assert answered == [status for *_case, status in SCOPE_CASES]


async def test_no_credentials_no_kpis(fed):
    client, _ = fed
    response = await client.get(f"/v1/kpis/communes/{BINH_LU}", params=WEEK, headers={"Authorization": ""})
    assert response.status_code == 401


async def test_province_report_exports_as_csv_and_xlsx(fed):
    client, _ = fed
    report = await get(client, "/v1/kpis/provinces/12", **WEEK)
    expected = [
        [
            c["rank"],
            c["ward_code"],
            c["ward_name"],
            c["orders"],
            c["items"],
            c["gmv_vnd"],
            c["kg_sold"],
            c["active_sellers"],
        ]
        for c in report["communes"]
    ]

    as_csv = await client.get("/v1/kpis/provinces/12/report.csv", params=WEEK)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert 'filename="bao-cao-tinh-12-2026-11-14-2026-11-20.csv"' in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Hạng", "Mã xã", "Xã/phường"]
    assert [
        [int(r[0]), r[1], r[2], int(r[3]), int(r[4]), int(r[5]), float(r[6]), int(r[7])] for r in rows[1:]
    ] == expected

    as_xlsx = await client.get("/v1/kpis/provinces/12/report.xlsx", params=WEEK)
    assert as_xlsx.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content)).active
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert list(values[1][:3]) == ["Hạng", "Mã xã", "Xã/phường"]
    assert values[2 : 2 + len(expected)] == expected
    assert values[2 + len(expected)][2:4] == ["Cả tỉnh", report["totals"]["orders"]]


async def test_a_record_no_handler_can_read_is_dead_lettered_and_changes_nothing(tmp_path, history):
    async with analytics_alone(tmp_path) as (client, platform):
        await publish(platform, history.envelopes)
        await eventually(lambda: all_consumed(platform.transport), timeout_s=60)
        before = await get(client, f"/v1/kpis/communes/{BINH_LU}", **WEEK)
        good = history.envelopes[-1].to_record()  # an order_placed
        bad = OutgoingRecord(
            topic=good.topic,
            key=good.key,
            value=b'{"order_id": "broken", "lines": "not a list"}',
            headers=tuple((n, b"e-broken" if n == "ce_id" else v) for n, v in good.headers),
        )
        await platform.transport.log.append([bad])
        await eventually(lambda: all_consumed(platform.transport), timeout_s=60)
        parked = await platform.transport.log.read("orders.orders.dlq", 0, 10)
        assert [r.header("ce_id") for r in parked] == ["e-broken"]
        assert await get(client, f"/v1/kpis/communes/{BINH_LU}", **WEEK) == before
